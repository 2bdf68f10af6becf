// net.ipv6.conf.all.forwarding through the first procfs root that can set it (src/kernel/links.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureIpv6Forwarding } from '../../src/kernel/links';

function root(base: string, name: string, value?: string): string {
  const r = join(base, name);
  mkdirSync(join(r, 'net/ipv6/conf/all'), { recursive: true });
  if (value !== undefined) writeFileSync(join(r, 'net/ipv6/conf/all/forwarding'), value);
  return r;
}

test('the first root that can is used: missing file → next root; 0 → written 1; 1 → already', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'sysctl6-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const none = join(base, 'none'); // no such file (a read-only /proc/sys fails with EROFS the same way: next root)
  const off = root(base, 'off', '0\n');
  assert.deepEqual(await ensureIpv6Forwarding([none, off]), { state: 'set', path: join(off, 'net/ipv6/conf/all/forwarding') });
  assert.equal(readFileSync(join(off, 'net/ipv6/conf/all/forwarding'), 'utf8').trim(), '1');
  assert.deepEqual(await ensureIpv6Forwarding([off]), { state: 'already', path: join(off, 'net/ipv6/conf/all/forwarding') });
});

test('no root can: UNAVAILABLE naming the sysctl and every path tried', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'sysctl6-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  await assert.rejects(ensureIpv6Forwarding([join(base, 'a'), join(base, 'b')]), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'UNAVAILABLE');
    assert.match(e.message, /sysctl -w net\.ipv6\.conf\.all\.forwarding=1/);
    assert.match(e.message, /a\/net\/ipv6\/conf\/all\/forwarding: ENOENT; .*b\/net\/ipv6\/conf\/all\/forwarding: ENOENT/);
    return true;
  });
});
