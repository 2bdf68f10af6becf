/**
 * Path probes (issue 20): every few seconds this host sends one small UDP datagram
 * (domain/path-stats.ts) to every peer of each vxlan or wireguard overlay, at the peer's overlay
 * address (its subnet's .0, the address flannel puts on the peer's flannel.<VNI> or flannel-wg), from a socket
 * bound to its own .0 at PROBE_PORT, and echoes the peers' probes. So a reply means the whole
 * overlay path works both ways: routes, neighbour and FDB entries (wireguard: the peer entries and
 * the handshake), the underlay, the peer's device.
 *
 * Design note.
 * - Bounded: one round per {@link PROBE_INTERVAL_MS}, at most {@link MAX_PEERS} peers a round per
 *   overlay, one probe per peer; replies to others' probes at most {@link MAX_REPLIES_PER_SEC}
 *   a second. At 200 peers: 100 probes/s out, 100 replies/s in, and the peers' 100 probes/s in
 *   and 100 replies/s out: 400 datagrams/s of 16 bytes (+ 28 IP/UDP + 50 vxlan) ≈ 37 kB/s.
 * - host-gw and alloc overlays are not probed (no overlay address on the host to send from or to).
 * - The socket is (re)bound when this host's lease changes; until its .0 exists (the device comes
 *   with the first full sync) the bind fails and the next round tries again (`error` says why).
 */
import { createSocket, type Socket } from 'node:dgram';
import type { Logger } from 'pino';
import { decodeProbe, encodeProbe, PathWindow, PROBE_TIMEOUT_MS, type PathSummary } from '../domain/path-stats';
import { errorText } from '../errors';
import { formatCidr, formatIPv4 } from '../domain/ipv4';
import type { OverlayAgent } from './overlay-agent';

export const PROBE_INTERVAL_MS = 2000;
export const MAX_PEERS = 256;
export const MAX_REPLIES_PER_SEC = 1000;

/** What the prober needs of one overlay (the daemon reads it from the agents each round). */
export interface ProbeTarget {
  overlay: string;
  /** This host's overlay address (its subnet's .0), or null while it holds no lease. */
  own: string | null;
  peers: { subnet: string; publicIP: string; address: string }[];
}

export interface PathPeer extends PathSummary {
  subnet: string;
  publicIP: string;
  address: string;
}

export interface PathsOfOverlay {
  overlay: string;
  /** The address:port probes go from and are answered at (null: not bound). */
  bound: string | null;
  error: string | null;
  peers: PathPeer[];
}

interface OverlayProbe {
  socket: Socket | null;
  own: string | null;
  error: string | null;
  windows: Map<string, PathWindow>;
  pending: Map<number, { address: string; timer: NodeJS.Timeout; at: number }>;
  peers: ProbeTarget['peers'];
}

export class PathProber {
  private readonly overlays = new Map<string, OverlayProbe>();
  private timer: NodeJS.Timeout | null = null;
  private seq = 0;
  private replies = { second: 0, count: 0 };

  constructor(
    private readonly targets: () => ProbeTarget[],
    private readonly port: number,
    private readonly log: Logger,
    private readonly intervalMs = PROBE_INTERVAL_MS,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.round(), this.intervalMs);
    this.timer.unref();
    this.round();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const o of this.overlays.values()) this.close(o);
    this.overlays.clear();
  }

  /** Every overlay's peers with their RTT, loss and state. */
  paths(): PathsOfOverlay[] {
    return [...this.overlays].map(([overlay, o]) => ({
      overlay,
      bound: o.socket && o.own ? `${o.own}:${this.port}` : null,
      error: o.error,
      peers: o.peers.map((p) => ({ ...p, ...(o.windows.get(p.address)?.summary() ?? new PathWindow().summary()) })),
    }));
  }

  private round(): void {
    const seen = new Set<string>();
    for (const t of this.targets()) {
      seen.add(t.overlay);
      let o = this.overlays.get(t.overlay);
      if (!o) this.overlays.set(t.overlay, (o = { socket: null, own: null, error: null, windows: new Map(), pending: new Map(), peers: [] }));
      o.peers = t.peers.slice(0, MAX_PEERS);
      const keep = new Set(o.peers.map((p) => p.address));
      for (const a of o.windows.keys()) if (!keep.has(a)) o.windows.delete(a);
      if (t.own !== o.own) {
        this.close(o);
        o.own = t.own;
      }
      if (!o.own) continue;
      if (!o.socket) {
        this.bind(o);
        continue; // probes from the next round, once bound
      }
      for (const p of o.peers) this.send(o, p.address);
    }
    for (const [name, o] of this.overlays) if (!seen.has(name)) (this.close(o), this.overlays.delete(name));
  }

  private bind(o: OverlayProbe): void {
    const s = createSocket({ type: 'udp4', reuseAddr: false });
    o.socket = s;
    s.on('error', (e) => {
      o.error = `probe socket on ${o.own}:${this.port}: ${errorText(e)}`;
      this.log.debug({ err: o.error }, 'path probes: socket error; retrying next round');
      if (o.socket === s) this.close(o);
    });
    s.on('message', (msg, from) => this.receive(o, s, msg, from.address, from.port));
    s.bind(this.port, o.own!, () => {
      o.error = null;
      this.log.info({ addr: `${o.own}:${this.port}` }, 'path probes: bound');
    });
  }

  private send(o: OverlayProbe, address: string): void {
    const seq = (this.seq = (this.seq + 1) >>> 0);
    const timer = setTimeout(() => {
      if (o.pending.delete(seq)) this.window(o, address).lost();
    }, PROBE_TIMEOUT_MS);
    timer.unref();
    o.pending.set(seq, { address, timer, at: performance.now() });
    o.socket!.send(encodeProbe({ kind: 'request', seq, sentMs: Date.now() >>> 0 }), this.port, address, (e) => {
      if (e) this.log.debug({ err: errorText(e), to: address }, 'path probe not sent');
    });
  }

  private receive(o: OverlayProbe, s: Socket, msg: Buffer, address: string, port: number): void {
    const p = decodeProbe(msg);
    if (!p) return;
    if (p.kind === 'request') {
      const sec = Math.floor(Date.now() / 1000);
      if (sec !== this.replies.second) this.replies = { second: sec, count: 0 };
      if (++this.replies.count > MAX_REPLIES_PER_SEC) return;
      s.send(encodeProbe({ ...p, kind: 'reply' }), port, address);
      return;
    }
    const pending = o.pending.get(p.seq);
    if (!pending || pending.address !== address) return;
    clearTimeout(pending.timer);
    o.pending.delete(p.seq);
    // Our own monotonic clock (sub-millisecond); the echoed send time is for other tools (rttOf).
    this.window(o, address).replied(Math.round((performance.now() - pending.at) * 1000) / 1000, Date.now());
  }

  private window(o: OverlayProbe, address: string): PathWindow {
    let w = o.windows.get(address);
    if (!w) o.windows.set(address, (w = new PathWindow()));
    return w;
  }

  private close(o: OverlayProbe): void {
    for (const p of o.pending.values()) clearTimeout(p.timer);
    o.pending.clear();
    try {
      o.socket?.close();
    } catch {
      // already closed
    }
    o.socket = null;
  }
}

/** The vxlan and wireguard overlays' probe targets: this host's .0 and every peer's of the same backend (host-gw and alloc: none). */
export function pathTargets(agents: ReadonlyMap<string, Pick<OverlayAgent, 'config' | 'lease' | 'dataplane'>>): ProbeTarget[] {
  const out: ProbeTarget[] = [];
  for (const [overlay, a] of agents) {
    const type = a.config?.backend.type;
    if (type !== 'vxlan' && type !== 'wireguard') continue;
    const own = a.lease();
    if (a.config?.enableIPv4 === false) continue; // IPv6-only: the probes are IPv4 (no v4 address to send from)
    const peers = (a.dataplane?.knownLeases() ?? [])
      .filter((l) => l.attrs.backendType === type && (!own || l.subnet.base !== own.subnet.base))
      .map((l) => ({ subnet: formatCidr(l.subnet), publicIP: l.attrs.publicIP, address: formatIPv4(l.subnet.base) }));
    out.push({ overlay, own: own ? formatIPv4(own.subnet.base) : null, peers });
  }
  return out;
}
