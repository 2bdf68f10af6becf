/**
 * mcast-probe.ts — multicast datagrams at a fixed rate, for the overlay benchmark (issue 17).
 * Run with the host's node inside a container's network namespace (nsenter), like udp-echo.ts.
 *
 *   node --import tsx bench/mcast-probe.ts recv GROUP PORT SECONDS             join GROUP, count for SECONDS
 *   node --import tsx bench/mcast-probe.ts send GROUP PORT RATE COUNT SIZE     COUNT datagrams of SIZE bytes at RATE/s
 *
 * Design note: each datagram carries its sequence number (u32) and the sender's
 * process.hrtime.bigint() (CLOCK_MONOTONIC, one clock for every namespace of the machine), so a
 * receiver gets one-way latency without clock sync; sender and receivers run on one machine. The
 * sender paces in 1 ms steps against the monotonic clock (a burst of RATE/1000 per step), so a
 * late step catches up instead of lowering the rate. The receiver prints "ready" once joined and,
 * 1.5 s after the last datagram (or after SECONDS if none came), one JSON line: received, unique,
 * duplicates, latency avg/p50/p99 (µs). Bounded:
 * COUNT ≤ 1 000 000, SECONDS ≤ 600.
 */
import dgram from 'node:dgram';

function recv(group: string, port: number, seconds: number): void {
  const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  const seen = new Map<number, number>();
  const lat: number[] = [];
  let total = 0;
  s.on('message', (m) => {
    if (m.length < 12) return;
    total++;
    const seq = m.readUInt32BE(0);
    seen.set(seq, (seen.get(seq) ?? 0) + 1);
    lat.push(Number(process.hrtime.bigint() - m.readBigUInt64BE(4)) / 1000);
  });
  let idle: NodeJS.Timeout | undefined;
  s.bind(port, () => {
    s.addMembership(group);
    s.setRecvBufferSize(4 << 20);
    process.stdout.write('ready\n');
  });
  // Done 1.5 s after the last datagram (the sender's start-up is not counted), or at the deadline.
  s.on('message', () => {
    clearTimeout(idle);
    idle = setTimeout(report, 1500);
  });
  const report = () => {
    lat.sort((a, b) => a - b);
    const q = (p: number) => (lat.length ? Math.round(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!) : null);
    const avg = lat.length ? Math.round(lat.reduce((a, b) => a + b, 0) / lat.length) : null;
    process.stdout.write(`${JSON.stringify({ received: total, unique: seen.size, duplicates: total - seen.size, latUs: { avg, p50: q(0.5), p99: q(0.99) } })}\n`);
    process.exit(0);
  };
  setTimeout(report, Math.min(seconds, 600) * 1000);
}

function send(group: string, port: number, rate: number, count: number, size: number): void {
  const s = dgram.createSocket('udp4');
  const n = Math.min(count, 1_000_000);
  s.bind(() => {
    s.setMulticastTTL(8);
    const t0 = process.hrtime.bigint();
    let sent = 0;
    const step = () => {
      const due = Math.min(n, Math.floor((Number(process.hrtime.bigint() - t0) / 1e9) * rate) + 1);
      while (sent < due) {
        const b = Buffer.alloc(Math.max(size, 12));
        b.writeUInt32BE(sent, 0);
        b.writeBigUInt64BE(process.hrtime.bigint(), 4);
        s.send(b, port, group);
        sent++;
      }
      if (sent < n) setTimeout(step, 1);
      else setTimeout(() => {
        process.stdout.write(`${JSON.stringify({ sent, seconds: Number(process.hrtime.bigint() - t0) / 1e9 })}\n`);
        process.exit(0);
      }, 100);
    };
    step();
  });
}

const [mode, group = '', ...rest] = process.argv.slice(2);
if (mode === 'recv') recv(group, Number(rest[0]), Number(rest[1]));
else if (mode === 'send') send(group, Number(rest[0]), Number(rest[1]), Number(rest[2]), Number(rest[3]));
else {
  process.stderr.write('usage: mcast-probe.ts recv GROUP PORT SECONDS | send GROUP PORT RATE COUNT SIZE\n');
  process.exit(2);
}
