/**
 * hostile-requests.ts — the mix of the hostile-input scenario: docker-plugin-lab.ts's malformed
 * requests (bad JSON, wrong types, unknown paths, methods and ids, garbage HTTP, deep nesting)
 * plus bodies over the plugin's 1 MiB limit, sent four ways: with a Content-Length just over it,
 * with a large Content-Length (8 MiB), chunked without any length (4 MiB), and with
 * `Connection: close` by a client that reads only after writing its whole body (3 MiB). The plugin
 * answers each of them 413 with an "Err" as soon as it knows the body is too large, then reads and
 * discards the rest (bounded) before closing (README, "Install on real hosts"; src/api/drain-body.ts),
 * so every one of them reads its 413. rawPost (test/helpers/plugin-http.ts) otherwise behaves like
 * Docker's Go client: a keep-alive connection, reading while it writes, done at the first answer.
 */
import * as L from '../lab/docker-plugin-lab';

const rawPost = L.rawPost;

const MiB = 1024 * 1024;

/** `count` hostile requests: the malformed mix, with every 1000th one an over-limit body. */
export function hostileRequests(count: number): L.Malformed[] {
  const out = L.malformedRequests(count);
  const huge: L.Malformed[] = [
    { label: 'body 1 MiB + 1 byte', send: (s) => rawPost(s, '/IpamDriver.RequestAddress', MiB + 1) },
    { label: 'body 8 MiB', send: (s) => rawPost(s, '/NetworkDriver.Join', 8 * MiB, { fill: 0x7b }) },
    { label: 'chunked body 4 MiB', send: (s) => rawPost(s, '/NetworkDriver.CreateEndpoint', 4 * MiB, { chunked: true }) },
    { label: 'body 3 MiB, Connection: close, read after writing', send: (s) => rawPost(s, '/IpamDriver.RequestPool', 3 * MiB, { connectionClose: true, readAfterWriting: true }) },
  ];
  for (let i = 500, k = 0; i < count; i += 1000, k++) out[i] = huge[k % huge.length]!;
  return out;
}

/** Labels of the requests whose body is over the limit. */
export const OVER_LIMIT = new Set(['body 1 MiB + 1 byte', 'body 8 MiB', 'chunked body 4 MiB', 'body 3 MiB, Connection: close, read after writing', '2 MiB body']);

/**
 * How an over-limit body was refused: `413` (the answer, with "Err"), `closed` (the connection
 * closed before this client read any answer: the server closed without draining the body), or
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
