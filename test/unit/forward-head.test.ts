// The head block of FORWARD (src/domain/forward-head.ts): which rules, in what order, and when the
// chain as it stands has them in place, as tables.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { forwardHeadRules, headPlacement, intraComment, isolationComment, type ChainRule } from '../../src/domain/forward-head';

const text = (networks: string[]): string[] => forwardHeadRules(networks).map((r) => `-s ${r.src} -d ${r.dst} -j ${r.verdict.toUpperCase()}`);

test('forwardHeadRules: intra-overlay accepts first, then the drops between every two; nested Networks accept after the drops', () => {
  const rows: [string[], string[]][] = [
    [[], []],
    [['10.1.0.0/16'], ['-s 10.1.0.0/16 -d 10.1.0.0/16 -j ACCEPT']],
    [
      ['10.2.0.0/16', '10.1.0.0/16', '10.2.0.0/16'],
      ['-s 10.1.0.0/16 -d 10.1.0.0/16 -j ACCEPT', '-s 10.2.0.0/16 -d 10.2.0.0/16 -j ACCEPT', '-s 10.1.0.0/16 -d 10.2.0.0/16 -j DROP', '-s 10.2.0.0/16 -d 10.1.0.0/16 -j DROP'],
    ],
    [
      // 10.5/16 inside 10.0/8: their accepts must not let 10.0/8 reach 10.5/16 before the drops.
      ['10.0.0.0/8', '10.5.0.0/16', '172.16.0.0/16'],
      [
        '-s 172.16.0.0/16 -d 172.16.0.0/16 -j ACCEPT',
        '-s 10.0.0.0/8 -d 10.5.0.0/16 -j DROP',
        '-s 10.0.0.0/8 -d 172.16.0.0/16 -j DROP',
        '-s 10.5.0.0/16 -d 10.0.0.0/8 -j DROP',
        '-s 10.5.0.0/16 -d 172.16.0.0/16 -j DROP',
        '-s 172.16.0.0/16 -d 10.0.0.0/8 -j DROP',
        '-s 172.16.0.0/16 -d 10.5.0.0/16 -j DROP',
        '-s 10.0.0.0/8 -d 10.0.0.0/8 -j ACCEPT',
        '-s 10.5.0.0/16 -d 10.5.0.0/16 -j ACCEPT',
      ],
    ],
  ];
  for (const [nets, want] of rows) assert.deepEqual(text(nets), want, nets.join(' '));
});

test('headPlacement: in place only right after the DOCKER-USER jump (Docker isolation jumps may sit between), complete, in order, contiguous', () => {
  const nets = ['10.1.0.0/16', '10.2.0.0/16'];
  const ours: ChainRule[] = forwardHeadRules(nets).map((r) => ({ comment: r.comment }));
  const user: ChainRule = { jump: 'DOCKER-USER' };
  const iso: ChainRule = { jump: 'DOCKER-ISOLATION-STAGE-1' };
  const bridge: ChainRule[] = [{ comment: undefined }, { jump: 'DOCKER' }, {}];
  const tail: ChainRule[] = [{ comment: 'overlay-flannel 10.1.0.0/16 src' }];
  const rows: [string, ChainRule[], ReturnType<typeof headPlacement>][] = [
    ['Docker host, block after DOCKER-USER', [user, ...ours, iso, ...bridge, ...tail], { inPlace: true }],
    ['Docker moved its isolation jump above ours', [user, iso, ...ours, ...bridge, ...tail], { inPlace: true }],
    ['a new bridge network inserted above ours', [user, iso, ...bridge, ...ours, ...tail], { inPlace: false, anchor: 'after-docker-user' }],
    ['block above the DOCKER-USER jump (written before Docker arranged it)', [...ours, user, iso], { inPlace: false, anchor: 'after-docker-user' }],
    ['rules of an admin inserted at the top stay above', [{}, {}, user, ...ours, iso], { inPlace: true }],
    ['no Docker: at the head', [...ours, {}], { inPlace: true }],
    ['no Docker, someone else first', [{}, ...ours], { inPlace: false, anchor: 'head' }],
    ['nothing of ours yet', [user, iso, ...bridge], { inPlace: false, anchor: 'after-docker-user' }],
    ['one rule missing', [user, ...ours.slice(1), iso], { inPlace: false, anchor: 'after-docker-user' }],
    ['out of order', [user, ours[1]!, ours[0]!, ...ours.slice(2)], { inPlace: false, anchor: 'after-docker-user' }],
    ['split by a foreign rule', [user, ...ours.slice(0, 2), {}, ...ours.slice(2)], { inPlace: false, anchor: 'after-docker-user' }],
    ['a stale rule of ours (a Network changed)', [user, ...ours, { comment: isolationComment('10.1.0.0/16', '10.9.0.0/16') }], { inPlace: false, anchor: 'after-docker-user' }],
  ];
  for (const [what, chain, want] of rows) assert.deepEqual(headPlacement(chain, forwardHeadRules(nets)), want, what);
  assert.deepEqual(headPlacement([user, { comment: intraComment('10.1.0.0/16') }], []), { inPlace: false, anchor: 'after-docker-user' }, 'no overlays left: ours must go');
  assert.deepEqual(headPlacement([user, iso], []), { inPlace: true });
});
