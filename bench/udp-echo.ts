/**
 * udp-echo.ts — UDP request/response latency probe of the overlay benchmark (iperf3 has no RR
 * test). Run with the host's node inside a path's network namespace (nsenter, pinned by taskset).
 *
 *   node --import tsx bench/udp-echo.ts server PORT LIFETIME_S [6]  echo every datagram back; exit after LIFETIME_S
 *   node --import tsx bench/udp-echo.ts client IP PORT COUNT       COUNT sequential probes; prints JSON
 *
 * The client's family follows IP; a server with `6` is IPv6-only, so it shares PORT with an IPv4
 * server in the same namespace (the v4 and v6 rows of one --ipv6 network).
 *
 * Design note: the client sends one 32-byte datagram, waits for its echo (at most 1 s, then counts
 * it lost) and sends the next, so exactly one request is in flight. Times are process.hrtime
 * (monotonic, ns) around send → receive, reported in microseconds. 20 warm-up probes (ARP/neighbour
 * resolution, first-packet costs) are sent first and not reported. Bounded: COUNT ≤ 100 000 and
 * each probe waits ≤ 1 s; the server exits after its lifetime even if nobody stops it.
 * Output: `{"rttUs":[…],"lost":N}` on one line.
 */
import dgram from 'node:dgram';

const WARMUP = 20;

function server(port: number, lifetimeS: number, v6: boolean): void {
  const s = v6 ? dgram.createSocket({ type: 'udp6', ipv6Only: true }) : dgram.createSocket('udp4');
  s.on('message', (msg, rinfo) => s.send(msg, rinfo.port, rinfo.address));
  s.bind(port, () => process.stdout.write(`listening ${port}\n`));
  setTimeout(() => process.exit(0), lifetimeS * 1000).unref();
  // Keep the process alive only through the socket; the timer above ends it.
}

async function client(ip: string, port: number, count: number): Promise<void> {
  const s = dgram.createSocket(ip.includes(':') ? 'udp6' : 'udp4');
  await new Promise<void>((r) => s.bind(0, r));
  let waiting: ((seq: number) => void) | undefined;
  s.on('message', (msg) => waiting?.(msg.readUInt32BE(0)));
  const probe = (seq: number): Promise<number | undefined> =>
    new Promise((resolve) => {
      const buf = Buffer.alloc(32);
      buf.writeUInt32BE(seq, 0);
      const timer = setTimeout(() => {
        waiting = undefined;
        resolve(undefined);
      }, 1000);
      const t0 = process.hrtime.bigint();
      waiting = (got) => {
        if (got !== seq) return; // a late echo of a lost probe
        clearTimeout(timer);
        waiting = undefined;
        resolve(Number(process.hrtime.bigint() - t0) / 1000);
      };
      s.send(buf, port, ip);
    });
  const rttUs: number[] = [];
  let lost = 0;
  for (let i = 0; i < WARMUP + count; i++) {
    const rtt = await probe(i);
    if (i < WARMUP) continue;
    if (rtt === undefined) lost++;
    else rttUs.push(Math.round(rtt * 10) / 10);
  }
  s.close();
  process.stdout.write(`${JSON.stringify({ rttUs, lost })}\n`);
}

function main(): void {
  const [mode, a, b, c] = process.argv.slice(2);
  if (mode === 'server' && a && b) return server(Number(a), Number(b), c === '6');
  if (mode === 'client' && a && b && c) {
    const count = Number(c);
    if (!(count > 0 && count <= 100_000)) throw new Error(`udp-echo: COUNT ${c} not in 1..100000`);
    client(a, Number(b), count).catch((e: unknown) => {
      console.error(e);
      process.exit(1);
    });
    return;
  }
  console.error('usage: udp-echo.ts server PORT LIFETIME_S [6] | client IP PORT COUNT');
  process.exit(2);
}

main();
