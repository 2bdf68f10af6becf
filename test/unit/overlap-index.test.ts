// overlapIndex (src/domain/subnet-choice.ts) answers exactly as the brute-force cidrsOverlap scan.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cidr, cidrsOverlap, type Cidr } from '../../src/domain/ipv4';
import { overlapIndex } from '../../src/domain/subnet-choice';

test('overlapIndex equals taken.some(cidrsOverlap) for mixed prefix lengths', () => {
  let seed = 42;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const inNet = () => (0x0a000000 + Math.floor(rnd() * 2 ** 19)) >>> 0; // inside 10.0.0.0/13
  for (let round = 0; round < 50; round++) {
    const taken: Cidr[] = Array.from({ length: 30 }, () => cidr(inNet(), 14 + Math.floor(rnd() * 19)));
    const has = overlapIndex(taken, 24);
    for (let i = 0; i < 200; i++) {
      const c = cidr(inNet(), 24);
      assert.equal(has(c), taken.some((t) => cidrsOverlap(t, c)));
    }
  }
});
