/**
 * names-probe.ts — the DNS client of the names benchmark, run INSIDE a container's network
 * namespace (`nsenter --net=/proc/<pid>/ns/net node --import tsx bench/names-probe.ts`), where
 * Docker's embedded DNS listens on 127.0.0.11:53 (dockerd's socket lives in that namespace; an
 * iptables rule there sends 127.0.0.11:53 to it). So a query goes exactly the way a container's
 * own resolver sends it, without `docker exec` (≈ 100 ms per call) in the measured time.
 *
 * Protocol: one JSON command per stdin line, one JSON reply per stdout line (same `id`):
 *   {"id":1,"op":"until","name":"web","want":"present"|"absent","intervalMs":10,"deadlineMs":10000}
 *      asks every intervalMs (one query in flight at a time, 1 s timeout each) until an answer
 *      with at least one A record (present) or without any (absent) arrives; replies
 *      {"id":1,"ok":true,"atNs":"<hrtime>","queries":n} — atNs is process.hrtime.bigint() when that
 *      answer was read (CLOCK_MONOTONIC: the same clock as the bench process's hrtime).
 *   {"id":2,"op":"latency","names":[{"name":"web","expect":"10.1.2.3"},…],"count":100,"gapMs":8}
 *      `count` rounds of one query per name, in turn (gapMs between queries: the resolver's budget
 *      of 200 queries/s per container must never be what is measured); replies per name the µs
 *      of every correct answer, and counts of wrong answers and timeouts.
 *   {"id":3,"op":"quit"}
 * Bounded: every wait has a deadline; stdin closing ends the process.
 */
import { createSocket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import { createInterface } from 'node:readline';

const SERVER = '127.0.0.11';
const QUERY_TIMEOUT_MS = 1000;

function encodeQuery(id: number, name: string): Buffer {
  const labels = name.split('.').filter(Boolean).map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'ascii')]));
  const head = Buffer.alloc(12);
  head.writeUInt16BE(id, 0);
  head.writeUInt16BE(0x0100, 2); // RD
  head.writeUInt16BE(1, 4);
  return Buffer.concat([head, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

/** rcode and the A records of an answer; null when it is not a parsable answer. */
function parseAnswer(m: Buffer): { id: number; rcode: number; ips: string[] } | null {
  if (m.length < 12) return null;
  const qd = m.readUInt16BE(4);
  const an = m.readUInt16BE(6);
  let p = 12;
  const skipName = () => {
    while (p < m.length) {
      const n = m[p]!;
      if (n === 0) return void p++;
      if ((n & 0xc0) === 0xc0) return void (p += 2);
      p += 1 + n;
    }
  };
  for (let i = 0; i < qd; i++) {
    skipName();
    p += 4;
  }
  const ips: string[] = [];
  for (let i = 0; i < an && p < m.length; i++) {
    skipName();
    if (p + 10 > m.length) return null;
    const type = m.readUInt16BE(p);
    const len = m.readUInt16BE(p + 8);
    p += 10;
    if (type === 1 && len === 4) ips.push([...m.subarray(p, p + 4)].join('.'));
    p += len;
  }
  return { id: m.readUInt16BE(0), rcode: m[3]! & 0xf, ips };
}

const sock = createSocket('udp4');
let waiting: { id: number; done: (r: { ips: string[]; rcode: number } | null) => void } | null = null;
sock.on('message', (m) => {
  const a = parseAnswer(m);
  if (a && waiting && a.id === waiting.id) {
    const w = waiting;
    waiting = null;
    w.done(a);
  }
});

/** One query, one answer (or null after the timeout); the µs it took. */
function ask(name: string): Promise<{ answer: { ips: string[]; rcode: number } | null; us: number; atNs: bigint }> {
  return new Promise((resolve) => {
    const id = randomInt(1, 65535);
    const t0 = process.hrtime.bigint();
    const timer = setTimeout(() => {
      waiting = null;
      resolve({ answer: null, us: NaN, atNs: process.hrtime.bigint() });
    }, QUERY_TIMEOUT_MS);
    waiting = {
      id,
      done: (answer) => {
        const atNs = process.hrtime.bigint();
        clearTimeout(timer);
        resolve({ answer, us: Number(atNs - t0) / 1000, atNs });
      },
    };
    sock.send(encodeQuery(id, name), 53, SERVER);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Until {
  id: number;
  op: 'until';
  name: string;
  want: 'present' | 'absent';
  intervalMs: number;
  deadlineMs: number;
}
interface Latency {
  id: number;
  op: 'latency';
  names: { name: string; expect?: string }[];
  count: number;
  gapMs: number;
}

async function until(c: Until): Promise<Record<string, unknown>> {
  const end = Date.now() + c.deadlineMs;
  let queries = 0;
  let last = '';
  while (Date.now() < end) {
    const next = Date.now() + c.intervalMs;
    const r = await ask(c.name);
    queries++;
    if (r.answer) {
      const present = r.answer.ips.length > 0;
      last = `rcode ${r.answer.rcode}, ${r.answer.ips.join(',') || 'no address'}`;
      if (present === (c.want === 'present')) return { ok: true, atNs: String(r.atNs), queries, last };
    } else last = 'timeout';
    await sleep(Math.max(0, next - Date.now()));
  }
  return { ok: false, queries, last };
}

async function latency(c: Latency): Promise<Record<string, unknown>> {
  const out = c.names.map((n) => ({ name: n.name, us: [] as number[], wrong: 0, timeouts: 0, lastWrong: '' }));
  for (let i = 0; i < c.count; i++) {
    for (const [k, n] of c.names.entries()) {
      const r = await ask(n.name);
      const o = out[k]!;
      if (!r.answer) o.timeouts++;
      else if (n.expect ? r.answer.ips.includes(n.expect) : r.answer.ips.length > 0) o.us.push(Math.round(r.us * 10) / 10);
      else {
        o.wrong++;
        o.lastWrong = `rcode ${r.answer.rcode} ${r.answer.ips.join(',')}`;
      }
      await sleep(c.gapMs);
    }
  }
  return { ok: true, results: out };
}

sock.bind(0, () => {
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
  const rl = createInterface({ input: process.stdin });
  let chain = Promise.resolve();
  rl.on('line', (line) => {
    chain = chain.then(async () => {
      const c = JSON.parse(line) as Until | Latency | { id: number; op: 'quit' };
      if (c.op === 'quit') process.exit(0);
      const r = c.op === 'until' ? await until(c) : await latency(c);
      process.stdout.write(`${JSON.stringify({ id: c.id, ...r })}\n`);
    });
  });
  rl.on('close', () => process.exit(0));
});
