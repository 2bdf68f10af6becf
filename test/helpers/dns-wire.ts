/**
 * Test-side DNS and IPv4/UDP packet builders: queries as Docker's resolver sends them, and the
 * IPv4 packets the kernel queues (header + UDP + payload), so tests can state their inputs as
 * values. Checksums are zero: nothing on the queue path checks them.
 */
export const u16 = (n: number): number[] => [n >> 8, n & 0xff];
export const wireName = (name: string): number[] => [...name.split('.').filter(Boolean).flatMap((l) => [l.length, ...Buffer.from(l, 'latin1')]), 0];

export interface QueryShape {
  id?: number;
  flags?: number;
  qd?: number;
  an?: number;
  ns?: number;
  ar?: number;
}
export const dnsHeader = (o: QueryShape = {}): number[] => [...u16(o.id ?? 0x1234), ...u16(o.flags ?? 0x0100), ...u16(o.qd ?? 1), ...u16(o.an ?? 0), ...u16(o.ns ?? 0), ...u16(o.ar ?? 0)];

/** One question (class IN), optionally followed by `extra` bytes (e.g. an OPT record). */
export const dnsQuery = (name: string, qtype = 1, o: QueryShape = {}, extra: number[] = []): Uint8Array =>
  Uint8Array.from([...dnsHeader(o), ...wireName(name), ...u16(qtype), ...u16(1), ...extra]);

/** An IPv4 packet carrying one UDP datagram from `src` to `dst`:`dport`. */
export function ipv4Udp(src: string, dst: string, dport: number, payload: Uint8Array, o: { fragment?: number; protocol?: number; totalLength?: number } = {}): Buffer {
  const total = 20 + 8 + payload.length;
  const ip = [0x45, 0, ...u16(o.totalLength ?? total), 0, 1, ...u16(o.fragment ?? 0x4000), 64, o.protocol ?? 17, 0, 0, ...src.split('.').map(Number), ...dst.split('.').map(Number)];
  const udp = [...u16(40000), ...u16(dport), ...u16(8 + payload.length), 0, 0];
  return Buffer.from([...ip, ...udp, ...payload]);
}
