/**
 * Step 3b of docker-ipv6.test.ts, the fast path's IPv6 half on two real dockerds (FASTPATH on,
 * the default; docs/ipv6.md §5): 40 ping6s c1 → c2 go through to6-/from6- on both hosts (their
 * counters move ≥ 40, reply hop limit 62, raw PREROUTING's inner NOTRACK rule sees < 4 of them);
 * a 2 MiB TCP download over IPv6 completes both ways (the containers' MTU is above flannel-v6's,
 * `fwd` checks none, so to6- leaves longer packets to routing); with the table deleted on both
 * hosts ping6 passes, routed (a try counts only if the table was absent before and after it);
 * then the keeper writes the table again. Kept apart to hold the lab file under 400 lines.
 */
import assert from 'node:assert/strict';
import type { DockerHost } from '../helpers/docker-lab';
import type { Host } from '../helpers/netns-lab';
import { waitFor } from '../helpers/wait';

export interface V6FastpathLab {
  h1: Host;
  h2: Host;
  d1: DockerHost;
  d2: DockerHost;
  vni: number;
  network6: string;
  /** c1's (on h1) and c2's (on h2) GlobalIPv6Address. */
  ip6: { c1: string; c2: string };
  ping6Ok: (d: DockerHost, from: string, ip: string) => Promise<unknown>;
  ip6Packets: (h: Host, table: string, chain: string, mark: string) => Promise<number>;
  diagnostic: (m: string) => void;
}

export async function checkV6Fastpath({ h1, h2, d1, d2, vni, network6, ip6, ping6Ok, ip6Packets, diagnostic }: V6FastpathLab): Promise<void> {
  const n6 = network6;
  const notrack = `-s ${n6} -d ${n6} -m comment --comment "overlay-flannel notrack ${n6}"`;
  const nft = async (h: Host, args: string[]): Promise<{ code: number; stdout: string }> => h.exec('nft', args);
  const ruleCount = async (h: Host, chain: string): Promise<number> => {
    const r = await nft(h, ['list', 'chain', 'netdev', 'overlay-flannel', chain]);
    return r.code === 0 ? Number(/counter packets (\d+)/.exec(r.stdout)?.[1] ?? NaN) : NaN;
  };
  for (const [h, a] of [[h1, ip6.c1], [h2, ip6.c2]] as const) {
    await waitFor(async () => {
      const r = await nft(h, ['list', 'map', 'netdev', 'overlay-flannel', `endpoints6-${vni}`]);
      return r.code === 0 && r.stdout.includes(`${a} : "ofh`);
    }, { timeoutMs: 20_000, intervalMs: 250, what: `${a} in the v6 fast path map of ${h.ns}` });
  }
  const snapshot = async () => Promise.all([h1, h2].map(async (h) => ({ to6: await ruleCount(h, `to6-${vni}`), from6: await ruleCount(h, `from6-${vni}`), inner: await ip6Packets(h, 'raw', 'PREROUTING', notrack) })));
  const before = await snapshot();
  const ping = await d1.dockerOk(['exec', 'c1', 'ping6', '-c', '40', '-i', '0.02', '-W', '2', ip6.c2], { timeoutMs: 30_000 });
  assert.match(ping.stdout, /40 packets transmitted, 40 (packets )?received/);
  assert.match(ping.stdout, /ttl=62 /, 'reply hop limit 64 − 2: fwd ip6 decremented it on both hosts, as routing does');
  const after = await snapshot();
  diagnostic(`counters before ${JSON.stringify(before)} after ${JSON.stringify(after)}`);
  for (const [i, h] of [h1, h2].entries()) {
    assert.ok(after[i]!.to6 - before[i]!.to6 >= 40, `${h.ns}: to6-${vni} forwarded ≥ 40 packets (${JSON.stringify([before[i], after[i]])})`);
    assert.ok(after[i]!.from6 - before[i]!.from6 >= 40, `${h.ns}: from6-${vni} forwarded ≥ 40 packets`);
    assert.ok(after[i]!.inner - before[i]!.inner < 4, `${h.ns}: inner v6 packets must not be routed by the host (${JSON.stringify([before[i], after[i]])})`);
  }
  // TCP, full-size segments both ways: the containers' MTU (1450) is above flannel-v6's (1430),
  // and `fwd` checks no MTU; to6- leaves longer packets to routing (Packet Too Big), so a 2 MiB
  // download must complete (before that check it stalled: the bench's v6 TCP rows were empty).
  for (const [d, c] of [[d1, 'c1'], [d2, 'c2']] as const) await d.dockerOk(['exec', c, 'sh', '-c', 'mkdir -p /www6 && dd if=/dev/zero of=/www6/big bs=1024 count=2048 2>/dev/null && httpd -p [::]:8081 -h /www6']);
  for (const [d, c, from] of [[d1, 'c1', ip6.c2], [d2, 'c2', ip6.c1]] as const) {
    const r = await d.docker(['exec', c, 'sh', '-c', `printf 'GET /big HTTP/1.0\\r\\n\\r\\n' | nc -w 10 ${from} 8081 | wc -c`], { timeoutMs: 30_000 });
    assert.ok(Number(r.stdout.trim()) > 2 * 1024 * 1024, `${c} downloaded 2 MiB over TCP/IPv6 from [${from}]:8081: got ${r.stdout.trim()} bytes ${r.stderr}`);
  }
  // Fallback: without the table the same ping6s are routed. The keeper rewrites the table within
  // its 5 s tick, so a try counts only when the table was absent on both hosts before and after.
  let routed = false;
  for (let attempt = 0; attempt < 5 && !routed; attempt++) {
    for (const h of [h1, h2]) await nft(h, ['delete', 'table', 'netdev', 'overlay-flannel']);
    const inner0 = await ip6Packets(h1, 'raw', 'PREROUTING', notrack);
    const r1 = await d1.docker(['exec', 'c1', 'ping6', '-c', '1', '-W', '2', ip6.c2], { timeoutMs: 10_000 });
    const r2 = await d2.docker(['exec', 'c2', 'ping6', '-c', '1', '-W', '2', ip6.c1], { timeoutMs: 10_000 });
    const absent = (await Promise.all([h1, h2].map((h) => nft(h, ['list', 'table', 'netdev', 'overlay-flannel'])))).every((r) => r.code !== 0);
    if (!absent) continue; // rewritten meanwhile: try again
    assert.equal(r1.code, 0, `ping6 c1 → c2 without the fast path table: ${r1.stdout}`);
    assert.equal(r2.code, 0, `ping6 c2 → c1 without the fast path table: ${r2.stdout}`);
    assert.ok((await ip6Packets(h1, 'raw', 'PREROUTING', notrack)) - inner0 >= 2, 'without the table, h1 routed the ping6s (its NOTRACK rule counted them)');
    routed = true;
  }
  assert.ok(routed, 'the table was rewritten before every one of 5 fallback pings: could not observe the routed fallback');
  for (const h of [h1, h2]) {
    await waitFor(async () => (await ruleCount(h, `to6-${vni}`)) >= 0, { timeoutMs: 20_000, intervalMs: 250, what: `the keeper writes ${h.ns}'s fast path table again` });
  }
  await ping6Ok(d1, 'c1', ip6.c2);
}
