/**
 * `overlay-flannel status --paths`: this host's paths through the overlay to every vxlan (or wireguard) peer,
 * measured now: from a socket on this host's overlay address (its lease's .0, an ephemeral port,
 * so a running daemon's prober keeps PROBE_PORT), {@link PROBES} probes to each peer's PROBE_PORT
 * (the daemons' echo, reconcile/path-prober.ts), {@link GAP_MS} apart, each lost after
 * domain/path-stats.ts's timeout. At most 256 peers, so a run sends ≤ 768 datagrams in ~2 s.
 * Prints PEER, SUBNET, RTT (median), LOSS, STATE (`unreachable` when no probe came back).
 */
import { createSocket } from 'node:dgram';
import { formatCidr, formatIPv4 } from '../domain/ipv4';
import type { Lease } from '../domain/lease';
import { decodeProbe, encodeProbe, PathWindow, PROBE_TIMEOUT_MS } from '../domain/path-stats';
import { errorText } from '../errors';
import { columns } from './containers';

const PROBES = 3;
const GAP_MS = 200;
const MAX_PEERS = 256;

export interface PathsInput {
  leases: Lease[];
  ownIP: string | undefined;
  port: number;
  json: boolean;
}

export async function printPaths(p: PathsInput, out: (line: string) => void): Promise<number> {
  const own = p.leases.find((l) => l.attrs.publicIP === p.ownIP);
  if (!own) {
    out(`this host (${p.ownIP ?? 'public IP unknown: set PUBLIC_IP or IFACE'}) holds no lease on this overlay: no overlay address to probe from`);
    return 1;
  }
  const type = own.attrs.backendType;
  if (type !== 'vxlan' && type !== 'wireguard') {
    out(`this overlay's backend is ${type || 'alloc'}: path probes go through vxlan and wireguard overlays only`);
    return 1;
  }
  const peers = p.leases.filter((l) => l !== own && l.attrs.backendType === type).slice(0, MAX_PEERS);
  const from = formatIPv4(own.subnet.base);
  const windows = new Map(peers.map((l) => [formatIPv4(l.subnet.base), new PathWindow()]));
  const pending = new Map<number, { to: string; at: number }>();
  const sock = createSocket('udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(0, from, () => resolve());
    });
  } catch (e) {
    out(`cannot probe from ${from} (this host's overlay address; is the daemon running?): ${errorText(e)}`);
    sock.close();
    return 1;
  }
  sock.on('message', (msg, rinfo) => {
    const r = decodeProbe(msg);
    const sent = r?.kind === 'reply' ? pending.get(r.seq) : undefined;
    if (!sent || sent.to !== rinfo.address) return;
    pending.delete(r!.seq);
    windows.get(sent.to)?.replied(Math.round((performance.now() - sent.at) * 1000) / 1000, Date.now());
  });
  let seq = 0;
  for (let i = 0; i < PROBES; i++) {
    for (const to of windows.keys()) {
      seq++;
      pending.set(seq, { to, at: performance.now() });
      sock.send(encodeProbe({ kind: 'request', seq, sentMs: Date.now() >>> 0 }), p.port, to);
    }
    await new Promise((r) => setTimeout(r, GAP_MS));
  }
  await new Promise((r) => setTimeout(r, PROBE_TIMEOUT_MS));
  sock.close();
  for (const s of pending.values()) windows.get(s.to)?.lost();
  const rows = peers.map((l) => {
    const s = windows.get(formatIPv4(l.subnet.base))!.summary();
    return { publicIP: l.attrs.publicIP, subnet: formatCidr(l.subnet), address: formatIPv4(l.subnet.base), state: s.rttMs === null ? 'unreachable' : 'reachable', rttMs: s.rttMs, loss: s.loss, probes: s.probes };
  });
  if (p.json) out(JSON.stringify({ from: `${from} (${p.ownIP})`, port: p.port, peers: rows }, null, 2));
  else if (rows.length === 0) out('no vxlan peers on this overlay');
  else {
    out(`from ${from} (this host, ${p.ownIP}) to each peer's ${p.port}/udp, ${PROBES} probes each:`);
    const rtt = (ms: number | null) => (ms === null ? '-' : `${ms < 10 ? ms.toFixed(2) : Math.round(ms)} ms`);
    out(columns(['PEER', 'SUBNET', 'RTT', 'LOSS', 'STATE'], rows.map((r) => [r.publicIP, r.subnet, rtt(r.rttMs), `${Math.round((r.loss ?? 1) * 100)}%`, r.state])));
  }
  return rows.some((r) => r.state === 'unreachable') ? 3 : 0;
}
