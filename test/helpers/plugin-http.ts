/**
 * plugin-http.ts — HTTP clients of the plugin's unix socket, for tests that talk to it directly
 * (unit tests on a socket of their own, the Docker labs on the managed plugin's socket):
 * post (node's http client), rawRequest (bytes no client library would send) and rawPost (large
 * bodies written the way Docker's Go client writes them). Each resolves with the status and body
 * of the answer, status 0 when none came; none rejects, and each gives up after 15 s.
 */
import { request } from 'node:http';
import net from 'node:net';

export interface Answer {
  status: number;
  body: string;
}

/** One HTTP request on a unix socket; resolves with the status and body (status 0 + error text if none came). */
export function post(sock: string, path: string, body?: string | Buffer, method = 'POST'): Promise<Answer> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (a: Answer): void => {
      if (!done) resolve(a);
      done = true;
    };
    const req = request({ socketPath: sock, path, method, agent: false, timeout: 15_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => finish({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (e) => finish({ status: 0, body: `response error: ${e.message}` }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => finish({ status: 0, body: `request error: ${e.message}` }));
    req.end(body);
  });
}

/** Raw bytes on the socket (malformed HTTP); the status line and body of what comes back. */
export function rawRequest(sock: string, bytes: string): Promise<Answer> {
  return new Promise((resolve) => {
    const s = net.connect({ path: sock });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => s.destroy(), 15_000);
    s.on('connect', () => s.write(bytes));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('utf8');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : 0, body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
  });
}

/** How rawPost sends its body. */
export interface RawPostOptions {
  /** Transfer-Encoding: chunked (64 KiB chunks, no length) instead of a Content-Length. */
  chunked?: boolean;
  /** The body's byte (default a space). */
  fill?: number;
  /** Send `Connection: close` (default: keep-alive, HTTP/1.1's default, as Docker's client does). */
  connectionClose?: boolean;
  /**
   * Read nothing until the whole body is written (a simpler client than Docker's): it reads its
   * answer only if the server read on until then; a write error then ends it without an answer.
   */
  readAfterWriting?: boolean;
}

/**
 * POST `size` bytes of `fill` on a raw connection, with a Content-Length or chunked (no length), the
 * way Docker's Go client behaves: it writes the body in 64 KiB pieces, each as soon as the previous
 * one was taken (so a server that closes early makes a write fail at once), stops writing as soon
 * as an answer arrives (a server may answer before reading everything), ignores write errors, and
 * returns the status and body of whatever answer came before the connection closed.
 */
export function rawPost(sock: string, path: string, size: number, opts: RawPostOptions = {}): Promise<Answer> {
  return new Promise((resolve) => {
    const s = net.connect({ path: sock });
    const got: Buffer[] = [];
    const timer = setTimeout(() => s.destroy(), 15_000);
    const piece = Buffer.alloc(64 * 1024, opts.fill ?? 0x20);
    const framing = `${opts.chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${size}`}${opts.connectionClose ? '\r\nConnection: close' : ''}`;
    let left = size;
    let headSent = false;
    let finished = false;
    const next = (): Buffer | null => {
      if (!headSent) {
        headSent = true;
        return Buffer.from(`POST ${path} HTTP/1.1\r\nHost: plugin\r\n${framing}\r\n\r\n`);
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
      else if (opts.readAfterWriting) s.resume(); // all written: now read the answer
    };
    s.on('connect', () => {
      if (opts.readAfterWriting) s.pause();
      pump();
    });
    s.on('data', (c: Buffer) => {
      got.push(c);
      // A complete answer (headers and Content-Length bytes of body): done, like a client that got its reply.
      const text = Buffer.concat(got).toString('utf8');
      const head = text.indexOf('\r\n\r\n');
      const len = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, Math.max(head, 0)));
      if (head >= 0 && len && Buffer.byteLength(text.slice(head + 4)) >= Number(len[1])) s.destroy();
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(got).toString('utf8');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : 0, body: m ? text.slice(text.indexOf('\r\n\r\n') + 4) : `no answer (${text.length} bytes)` });
    });
  });
}
