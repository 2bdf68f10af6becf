/**
 * hostile-requests.ts — the mix of the hostile-input scenario: docker-plugin-lab.ts's malformed
 * requests (bad JSON, wrong types, unknown paths, methods and ids, garbage HTTP, deep nesting)
 * plus bodies over the plugin's 1 MiB limit, sent three ways: with a Content-Length just over it,
 * with a large Content-Length (8 MiB), and chunked without any length (4 MiB). The plugin answers
 * each of them 413 with an "Err" as soon as it knows the body is too large, then closes the
 * connection without reading the rest (README, "Install on real hosts"). A client still writing
 * when that close comes may lose the answer (its write fails first: EPIPE/ECONNRESET); rawPost
 * reads while it writes, like Docker's Go client, so it nearly always sees the 413.
 */
import net from 'node:net';
import * as L from '../lab/docker-plugin-lab';

const MiB = 1024 * 1024;

/**
 * POST `size` bytes of `fill` on a raw connection, with a Content-Length or chunked (no length), the
 * way Docker's Go client behaves: it writes the body in 64 KiB pieces, stops writing as soon as an
 * answer arrives (a server may answer before reading everything), ignores write errors, and
 * returns the status and body of whatever answer came before the connection closed.
 */
export function rawPost(sock: string, path: string, size: number, opts: { chunked?: boolean; fill?: number } = {}): Promise<L.Answer> {
  return new Promise((resolve) => {
    const s = net.connect({ path: sock });
    const got: Buffer[] = [];
    const timer = setTimeout(() => s.destroy(), 15_000);
    const piece = Buffer.alloc(64 * 1024, opts.fill ?? 0x20);
    const framing = opts.chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${size}`;
    let left = size;
    let headSent = false;
    let finished = false;
    const next = (): Buffer | null => {
      if (!headSent) {
        headSent = true;
        return Buffer.from(`POST ${path} HTTP/1.1\r\nHost: plugin\r\n${framing}\r\nConnection: close\r\n\r\n`);
      }
      if (left > 0) {
        const n = Math.min(left, piece.length);
        left -= n;
        const data = piece.subarray(0, n);
        return opts.chunked ? Buffer.concat([Buffer.from(`${n.toString(16)}\r\n`), data, Buffer.from('\r\n')]) : data;
      }
      if (opts.chunked && !finished) {
        finished = true;
        return Buffer.from('0\r\n\r\n');
      }
      return null;
    };
    const pump = (): void => {
      if (got.length > 0 || s.destroyed) return; // answered: stop sending
      const b = next();
      if (b) s.write(b, (err) => (err ? undefined : pump()));
    };
    s.on('connect', pump);
    s.on('data', (c: Buffer) => got.push(c));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(got).toString('utf8');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : 0, body: m ? text.slice(text.indexOf('\r\n\r\n') + 4) : `no answer (${text.length} bytes)` });
    });
  });
}

/** `count` hostile requests: the malformed mix, with every 1000th one an over-limit body. */
export function hostileRequests(count: number): L.Malformed[] {
  const out = L.malformedRequests(count);
  const huge: L.Malformed[] = [
    { label: 'body 1 MiB + 1 byte', send: (s) => rawPost(s, '/IpamDriver.RequestAddress', MiB + 1) },
    { label: 'body 8 MiB', send: (s) => rawPost(s, '/NetworkDriver.Join', 8 * MiB, { fill: 0x7b }) },
    { label: 'chunked body 4 MiB', send: (s) => rawPost(s, '/NetworkDriver.CreateEndpoint', 4 * MiB, { chunked: true }) },
  ];
  for (let i = 500, k = 0; i < count; i += 1000, k++) out[i] = huge[k % huge.length]!;
  return out;
}

/** Labels of the requests whose body is over the limit. */
export const OVER_LIMIT = new Set(['body 1 MiB + 1 byte', 'body 8 MiB', 'chunked body 4 MiB', '2 MiB body']);

/**
 * How an over-limit body was refused: `413` (the answer, with "Err"), `closed` (the server closed
 * the connection after answering, before this client read the answer: no bytes at all), or
 * `wrong` (anything else, e.g. a 2xx or an answer without "Err").
 */
export function overLimitOutcome(a: L.Answer): '413' | 'closed' | 'wrong' {
  if (a.status === 413 && isErrAnswer(a)) return '413';
  if (a.status === 0) return 'closed';
  return 'wrong';
}

/** A failure the way Docker reads one: a non-2xx status and a JSON body with a string "Err". */
export function isErrAnswer(a: L.Answer): boolean {
  if (a.status < 300) return false; // 0 (no answer) and 2xx
  try {
    const err = (JSON.parse(a.body) as { Err?: unknown }).Err;
    return typeof err === 'string' && err !== '';
  } catch {
    return false;
  }
}
