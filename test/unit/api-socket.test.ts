// The plugin API over a real unix socket (node's http.request with socketPath, as dockerd dials it):
// permissions, a burst of malformed requests, stale / foreign / live files at the socket path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { buildApi, closeApi, listenOnSocket, PLUGIN_CONTENT_TYPE } from '../../src/api/server';
import { isOverlayError } from '../../src/errors';
import { FakeDriver } from '../fakes/fake-driver';

const silent = pino({ level: 'silent' });

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'of-api-'));
}

interface Answer {
  status: number;
  body: string;
  contentType: string | undefined;
}

/** One request the way dockerd sends it: POST, no Content-Type, Content-Length set. */
function request(socketPath: string, urlPath: string, opts: { method?: string; body?: string; headers?: Record<string, string>; agent?: http.Agent } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const body = opts.body ?? '';
    const req = http.request(
      {
        socketPath,
        path: urlPath,
        method: opts.method ?? 'POST',
        agent: opts.agent,
        headers: { Accept: 'application/vnd.docker.plugins.v1.2+json', 'Content-Length': Buffer.byteLength(body), ...opts.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), contentType: res.headers['content-type'] }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Bytes straight onto the socket (for HTTP no client library would send). */
function rawExchange(socketPath: string, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ path: socketPath });
    let got = '';
    s.on('data', (d) => (got += d.toString()));
    s.on('close', () => resolve(got));
    s.on('error', reject);
    s.write(bytes);
  });
}

test('serves over a unix socket with mode 0600, no Content-Type needed; closeApi removes the socket', async () => {
  const dir = tempDir();
  const sock = path.join(dir, 'nested', 'run', 'overlay-flannel.sock'); // parents are created
  const app = buildApi(new FakeDriver(), silent);
  await listenOnSocket(app, sock);
  const st = fs.statSync(sock);
  assert.ok(st.isSocket());
  assert.equal(st.mode & 0o777, 0o600);
  const r = await request(sock, '/Plugin.Activate');
  assert.equal(r.status, 200);
  assert.equal(r.body, '{"Implements":["NetworkDriver","IpamDriver"]}');
  assert.equal(r.contentType, PLUGIN_CONTENT_TYPE);
  const j = await request(sock, '/NetworkDriver.CreateNetwork', { body: '{"NetworkID":"NID","Options":null,"IPv4Data":[{"AddressSpace":"s","Pool":"10.77.5.0/24"}],"IPv6Data":null}\n' });
  assert.deepEqual([j.status, j.body], [200, '{}']);
  await closeApi(app, sock);
  assert.equal(fs.existsSync(sock), false);
  fs.rmSync(dir, { recursive: true });
});

test('a burst of 2000 mixed malformed requests: every answer non-2xx with {"Err"}; Activate still answers', async () => {
  const dir = tempDir();
  const sock = path.join(dir, 'p.sock');
  const driver = new FakeDriver();
  const app = buildApi(driver, silent, { bodyLimit: 64 * 1024 });
  await listenOnSocket(app, sock);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  const big = JSON.stringify({ NetworkID: 'N', pad: 'y'.repeat(100 * 1024) });
  const kinds: (() => Promise<Answer>)[] = [
    () => request(sock, '/NetworkDriver.CreateNetwork', { agent, body: '{"NetworkID":' }),
    () => request(sock, '/NetworkDriver.Join', { agent, body: '{"NetworkID":"N","EndpointID":5,"SandboxKey":"/k"}' }),
    () => request(sock, '/NetworkDriver.Join', { agent, body: '{"NetworkID":"N"}' }),
    () => request(sock, '/IpamDriver.RequestAddress', { agent, body: '[]' }),
    () => request(sock, '/IpamDriver.ReleaseAddress', { agent, body: 'null' }),
    () => request(sock, '/IpamDriver.RequestPool', { agent, body: '{"V6":"no","Options":7}' }),
    () => request(sock, '/NetworkDriver.CreateNetwork', { agent, body: '{"NetworkID":"N","__proto__":{"x":1}}' }),
    () => request(sock, '/NetworkDriver.Unknown', { agent, body: '{}' }),
    () => request(sock, `/${'A'.repeat(3000)}`, { agent }),
    () => request(sock, '/Plugin.Activate', { agent, method: 'GET' }),
    () => request(sock, '/NetworkDriver.DeleteNetwork', { agent, method: 'DELETE', body: '{"NetworkID":"N"}' }),
    () => request(sock, '/NetworkDriver.CreateNetwork', { agent, body: '{"NetworkID":"N"}', headers: { 'Content-Type': '/;;' } }),
    () => request(sock, '/NetworkDriver.CreateNetwork', { agent, body: '\u0000\u00ff\ud800garbage' }),
    () => request(sock, '/NetworkDriver.CreateNetwork', { body: big }), // 413; the server drains the body, then closes that connection
  ];
  const answers = await Promise.all(Array.from({ length: 2000 }, (_, i) => kinds[i % kinds.length]!()));
  for (const [i, a] of answers.entries()) {
    assert.ok(a.status >= 400 && a.status < 600, `request ${i} (${i % kinds.length}) answered ${a.status}`);
    assert.equal(typeof JSON.parse(a.body).Err, 'string', `request ${i}: ${a.body}`);
  }
  assert.ok(answers.some((a) => a.status === 413));
  // HTTP no client would send: answered with {"Err"} and the connection closed, process unharmed.
  const raw = await rawExchange(sock, 'POST /Plugin.Activate HTTP/1.1\r\nContent-Length: x\r\n\r\n');
  assert.match(raw, /^HTTP\/1.1 400/);
  assert.match(raw, /"Err":"malformed HTTP request/);
  const after = await request(sock, '/Plugin.Activate', { agent });
  assert.deepEqual([after.status, after.body], [200, '{"Implements":["NetworkDriver","IpamDriver"]}']);
  assert.deepEqual(driver.calls, []);
  agent.destroy();
  await closeApi(app, sock);
  fs.rmSync(dir, { recursive: true });
});

test('a stale socket left by a killed process is replaced', async () => {
  const dir = tempDir();
  const sock = path.join(dir, 'p.sock');
  // A process that binds the socket and dies by SIGKILL, as a crashed plugin would: the file stays.
  const child = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  assert.equal(child.signal, 'SIGKILL');
  assert.ok(fs.lstatSync(sock).isSocket(), 'the stale socket is there');
  const app = buildApi(new FakeDriver(), silent);
  await listenOnSocket(app, sock);
  assert.equal((await request(sock, '/Plugin.Activate')).status, 200);
  await closeApi(app, sock);
  fs.rmSync(dir, { recursive: true });
});

test('a regular file or a directory at the socket path is refused with a clear error and left alone', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'p.sock');
  fs.writeFileSync(file, 'precious');
  const app = buildApi(new FakeDriver(), silent);
  await assert.rejects(listenOnSocket(app, file), (e: unknown) => {
    assert.ok(isOverlayError(e, 'INVALID'));
    assert.match(e.message, /p\.sock: the path exists and is a regular file; refusing to delete it/);
    return true;
  });
  assert.equal(fs.readFileSync(file, 'utf8'), 'precious');
  await closeApi(app, file); // what the daemon's stop() does after a failed start
  assert.equal(fs.readFileSync(file, 'utf8'), 'precious');
  const sub = path.join(dir, 'd.sock');
  fs.mkdirSync(sub);
  await assert.rejects(listenOnSocket(buildApi(new FakeDriver(), silent), sub), /is a directory; refusing/);
  fs.rmSync(dir, { recursive: true });
});

test('a live socket (another instance serving) is not taken over, nor removed by closeApi', async () => {
  const dir = tempDir();
  const sock = path.join(dir, 'p.sock');
  const other = net.createServer((c) => c.end());
  await new Promise<void>((r) => other.listen(sock, r));
  const app = buildApi(new FakeDriver(), silent);
  await assert.rejects(listenOnSocket(app, sock), (e: unknown) => isOverlayError(e, 'CONFLICT') && /already running/.test(e.message));
  await closeApi(app, sock);
  assert.ok(fs.lstatSync(sock).isSocket(), 'the other instance keeps its socket');
  await new Promise<void>((r) => other.close(() => r()));
  fs.rmSync(dir, { recursive: true });
});
