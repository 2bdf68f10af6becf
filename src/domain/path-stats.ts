/**
 * Path probes through the overlay (issue 20): the datagram every host's prober sends and echoes,
 * and what a window of probes to one peer says (RTT, loss, reachable).
 *
 * Design note.
 * - A probe is 16 bytes: "OFPB", a kind byte (1 request, 2 reply), 3 spare, a 32-bit sequence
 *   number and the sender's 32-bit send time in ms (its own clock, echoed back: RTT needs no
 *   synchronised clocks). Anything else at the port is dropped.
 * - One probe per peer per round (2 s): the window keeps the last {@link WINDOW} outcomes.
 *   A probe with no reply after {@link PROBE_TIMEOUT_MS} is lost. A peer is `unreachable` after
 *   {@link LOST_IN_A_ROW} lost in a row (≥ 6 s of silence, shown within 15 s with the page's 5 s
 *   refresh), `reachable` again at the first reply; `unknown` before any outcome.
 * - RTT: the median of the replies in the window (one slow reply does not move it), and the last.
 */

export const PROBE_BYTES = 16;
export const PROBE_TIMEOUT_MS = 1500;
export const WINDOW = 10;
export const LOST_IN_A_ROW = 3;
const MAGIC = 0x4f465042; // "OFPB"

export type ProbeKind = 'request' | 'reply';

export interface Probe {
  kind: ProbeKind;
  seq: number;
  sentMs: number;
}

export function encodeProbe(p: Probe): Buffer {
  const b = Buffer.alloc(PROBE_BYTES);
  b.writeUInt32BE(MAGIC, 0);
  b.writeUInt8(p.kind === 'request' ? 1 : 2, 4);
  b.writeUInt32BE(p.seq >>> 0, 8);
  b.writeUInt32BE(p.sentMs >>> 0, 12);
  return b;
}

/** The probe in `b`, or null for anything else (wrong size, magic or kind). */
export function decodeProbe(b: Buffer): Probe | null {
  if (b.length !== PROBE_BYTES || b.readUInt32BE(0) !== MAGIC) return null;
  const k = b.readUInt8(4);
  if (k !== 1 && k !== 2) return null;
  return { kind: k === 1 ? 'request' : 'reply', seq: b.readUInt32BE(8), sentMs: b.readUInt32BE(12) };
}

/** Milliseconds from a 32-bit send time to `nowMs` (wraps every 49 days). */
export function rttOf(sentMs: number, nowMs: number): number {
  return ((nowMs >>> 0) - sentMs + 2 ** 32) % 2 ** 32;
}

export type PathState = 'unknown' | 'reachable' | 'unreachable';

export interface PathSummary {
  state: PathState;
  /** Median RTT of the replies in the window, ms (null: none). */
  rttMs: number | null;
  lastRttMs: number | null;
  /** Lost / decided probes in the window, 0..1 (null: none decided yet). */
  loss: number | null;
  /** Probes decided in the window (replied or lost). */
  probes: number;
  lastReplyAt: number | null;
}

/** The outcomes of one peer's probes, oldest first: an RTT in ms, or null for lost. */
export class PathWindow {
  private outcomes: (number | null)[] = [];
  private lastReply: number | null = null;

  replied(rttMs: number, atMs: number): void {
    this.push(rttMs);
    this.lastReply = atMs;
  }

  lost(): void {
    this.push(null);
  }

  private push(v: number | null): void {
    this.outcomes.push(v);
    if (this.outcomes.length > WINDOW) this.outcomes.shift();
  }

  summary(): PathSummary {
    const o = this.outcomes;
    const rtts = o.filter((x): x is number => x !== null).sort((a, b) => a - b);
    const lostInARow = o.length - 1 - o.map((x) => x !== null).lastIndexOf(true);
    const state: PathState = o.length === 0 ? 'unknown' : o[o.length - 1] !== null ? 'reachable' : lostInARow >= LOST_IN_A_ROW ? 'unreachable' : rtts.length ? 'reachable' : 'unknown';
    const last = [...o].reverse().find((x) => x !== null);
    return {
      state,
      rttMs: rtts.length ? rtts[Math.floor((rtts.length - 1) / 2)]! : null,
      lastRttMs: last ?? null,
      loss: o.length ? (o.length - rtts.length) / o.length : null,
      probes: o.length,
      lastReplyAt: this.lastReply,
    };
  }
}
