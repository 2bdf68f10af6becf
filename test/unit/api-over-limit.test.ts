// Over-limit bodies on the real unix socket: every one gets its 413, whether the client asked for
// `Connection: close` or keeps its connection alive, with a Content-Length or chunked, whether it
// reads while writing (Docker's client) or only after writing (which no answer reaches if the server
// closes without draining: src/api/drain-body.ts); an endless body is cut off at the drain bound
// (byte or time) and the server goes on serving.
import { test, TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { DrainBounds } from '../../src/api/drain-body';
import { buildApi, closeApi, listenOnSocket } from '../../src/api/server';
import { FakeDriver } from '../fakes/fake-driver';
import { rawPost } from '../helpers/plugin-http';

const silent = pino({ level: 'silent' });
const KiB = 1024;
const LIMIT = 64 * KiB;
const BODY = 2 * 1024 * KiB; // well over the limit, well under limit + the default drain bound (8 MiB)

/** A plugin API on a fresh socket, stopped when test `t` ends (pass or fail: no server left behind). */
async function serve(t: TestContext, overLimitDrain?: DrainBounds): Promise<{ sock: string; driver: FakeDriver }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'of-api-limit-'));
  const sock = path.join(dir, 'p.sock');
  const driver = new FakeDriver();
  const app = buildApi(driver, silent, { bodyLimit: LIMIT, overLimitDrain });
  t.after(async () => {
    await closeApi(app, sock);
    fs.rmSync(dir, { recursive: true });
  });
  await listenOnSocket(app, sock);
  return { sock, driver };
}

/** What one request ended with: the answer, or the client-side error that replaced it. */
interface Outcome {
  status: number;
  body: string;
  connection?: string;
}

/**
 * One over-limit POST with node's http client (a library client, with a keep-alive agent or
 * `Connection: close`): the whole body handed over at once, with a Content-Length or chunked.
 */
function httpClientPost(sock: string, opts: { chunked: boolean; agent?: http.Agent; close: boolean }): Promise<Outcome> {
  return new Promise((resolve) => {
    const piece = Buffer.alloc(64 * KiB, 0x20);
    const headers: Record<string, string | number> = opts.chunked ? {} : { 'Content-Length': BODY };
    if (opts.close) headers.Connection = 'close';
    let settled = false;
    const settle = (o: Outcome): void => {
      if (!settled) {
        settled = true;
        resolve(o);
      }
    };
    const req = http.request({ socketPath: sock, path: '/NetworkDriver.CreateNetwork', method: 'POST', agent: opts.agent ?? false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => settle({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), connection: String(res.headers.connection) }));
      res.on('error', (e) => settle({ status: 0, body: `response: ${e.message}` }));
    });
    req.on('error', (e: NodeJS.ErrnoException) => settle({ status: 0, body: `request: ${e.code ?? ''} ${e.message}` }));
    req.setTimeout(30_000, () => req.destroy(new Error('no answer within 30 s')));
    for (let sent = 0; sent < BODY; sent += piece.length) req.write(piece);
    req.end();
  });
}

const KINDS = [
  { label: 'Content-Length, Connection: close', chunked: false, close: true },
  { label: 'Content-Length, keep-alive', chunked: false, close: false },
  { label: 'chunked, Connection: close', chunked: true, close: true },
  { label: 'chunked, keep-alive', chunked: true, close: false },
];

for (const kind of KINDS) {
  test(`over-limit body (${kind.label}): 50 of 50 requests read their 413, for each of 3 clients`, async (t) => {
    const srv = await serve(t);
    const agent = kind.close ? undefined : new http.Agent({ keepAlive: true, maxSockets: 4 });
    t.after(() => agent?.destroy());
    const raw = { chunked: kind.chunked, connectionClose: kind.close };
    const clients: Array<[string, () => Promise<Outcome>]> = [
      // Docker's Go client: reads while writing, stops writing at the answer.
      ['reads while writing', () => rawPost(srv.sock, '/NetworkDriver.Join', BODY, raw)],
      // Reads only once its body is written: without the drain the server's close loses every answer.
      ['reads after writing', () => rawPost(srv.sock, '/IpamDriver.RequestAddress', BODY, { ...raw, readAfterWriting: true })],
      ['node http client', () => httpClientPost(srv.sock, { chunked: kind.chunked, agent, close: kind.close })],
    ];
    const wrong: string[] = [];
    for (const [name, send] of clients) {
      // 5 at a time: the server answers some while other connections are still writing.
      for (let round = 0; round < 10; round++) {
        for (const o of await Promise.all(Array.from({ length: 5 }, send))) {
          if (o.status !== 413 || !/"Err":"request to \/[A-Za-z.]+ is larger than the 65536-byte limit"/.test(o.body)) wrong.push(`${name}: ${o.status} ${o.body.slice(0, 120)}`);
          // Connection: close always: the server stops listening to this connection at the drain bound.
          if (o.connection !== undefined && o.connection !== 'close') wrong.push(`${name}: Connection: ${o.connection}`);
        }
      }
    }
    assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} of 150 requests did not read their 413`);
    assert.deepEqual(srv.driver.calls, []);
  });
}

interface EndlessResult {
  answer: string;
  written: number;
  /** Milliseconds from the first answer byte to the server's close. */
  closedAfterAnswerMs: number;
}

/**
 * A client sending an endless chunked body, writing `pieceBytes` every `everyMs` (0: as fast as the
 * socket takes it), reading while it writes and never stopping: only the server's close ends it.
 */
function endlessBody(sock: string, pieceBytes: number, everyMs: number): Promise<EndlessResult> {
  return new Promise((resolve, reject) => {
    // allowHalfOpen: the server's FIN after its answer does not stop this writer, only its close does.
    const s = net.connect({ path: sock, allowHalfOpen: true });
    const piece = Buffer.concat([Buffer.from(`${pieceBytes.toString(16)}\r\n`), Buffer.alloc(pieceBytes, 0x20), Buffer.from('\r\n')]);
    let written = 0;
    let answer = '';
    let answeredAt = 0;
    const guard = setTimeout(() => {
      s.destroy();
      reject(new Error(`the server did not close within 30 s (${written} bytes written, answer ${JSON.stringify(answer.slice(0, 40))})`));
    }, 30_000);
    const pump = (): void => {
      if (s.destroyed) return;
      written += pieceBytes;
      s.write(piece, (e) => {
        if (e) return;
        if (everyMs > 0) setTimeout(pump, everyMs);
        else pump();
      });
    };
    s.on('connect', () => {
      s.write('POST /NetworkDriver.Join HTTP/1.1\r\nHost: plugin\r\nTransfer-Encoding: chunked\r\n\r\n');
      pump();
    });
    s.on('data', (d: Buffer) => {
      if (answer === '') answeredAt = Date.now();
      answer += d.toString();
    });
    s.on('error', () => undefined); // EPIPE/ECONNRESET once the server closes: expected here
    s.on('close', () => {
      clearTimeout(guard);
      resolve({ answer, written, closedAfterAnswerMs: answeredAt ? Date.now() - answeredAt : -1 });
    });
  });
}

async function activateWorks(sock: string): Promise<void> {
  const status = await new Promise<number>((resolve, reject) => {
    const req = http.request({ socketPath: sock, path: '/Plugin.Activate', method: 'POST', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(status, 200, 'Plugin.Activate still answers');
}

test('an endless body as fast as it goes: 413 read, connection closed at the byte bound', async (t) => {
  const maxBytes = 2 * 1024 * KiB;
  const srv = await serve(t, { maxBytes, maxMs: 60_000 }); // only the byte bound can end it
  const r = await endlessBody(srv.sock, 16 * KiB, 0);
  assert.match(r.answer, /^HTTP\/1\.1 413 /);
  assert.match(r.answer, /\r\nconnection: close\r\n/i);
  assert.match(r.answer, /"Err":"request to \/NetworkDriver.Join is larger than the 65536-byte limit"/);
  // Written: the limit, the drained bytes, and what the socket buffers held when the server closed.
  assert.ok(r.written > LIMIT + maxBytes, `the server closed before the byte bound: ${r.written} bytes written`);
  assert.ok(r.written < LIMIT + maxBytes + 4 * 1024 * KiB, `${r.written} bytes written before the close (bound ${LIMIT + maxBytes} + buffers)`);
  await activateWorks(srv.sock);
});

test('an endless slow body: 413 read, connection closed at the time bound', async (t) => {
  const maxMs = 1000;
  const srv = await serve(t, { maxBytes: 1024 * 1024 * KiB, maxMs }); // only the time bound can end it
  const r = await endlessBody(srv.sock, 16 * KiB, 20); // 16 KiB every 20 ms: the limit is passed in ~100 ms
  assert.match(r.answer, /^HTTP\/1\.1 413 /);
  // Half the bound: the client may see the answer late on a loaded machine (without the drain: ~20 ms).
  assert.ok(r.closedAfterAnswerMs >= maxMs / 2, `closed ${r.closedAfterAnswerMs} ms after the answer: long before the ${maxMs} ms time bound`);
  assert.ok(r.closedAfterAnswerMs < maxMs + 10_000, `closed ${r.closedAfterAnswerMs} ms after the answer`);
  await activateWorks(srv.sock);
});
