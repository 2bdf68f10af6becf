/**
 * The Docker socket search (domain/docker-host.ts, docker/socket-locator.ts) and the
 * legacy plugin socket of the plain driver names (docker/plain-names.ts), on real unix sockets in
 * a temporary folder; a fake Docker API (HTTP on a unix socket) stands in for dockerd.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer, request, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:net';
import { existsSync, linkSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { dockerSocketCandidates, listeningUnixSockets, looksLikeDockerApi, underRoot } from '../../src/domain/docker-host';
import { locateDockerSocket, probeSocket } from '../../src/docker/socket-locator';
import { servePlainNames } from '../../src/docker/plain-names';
import { isPlainNameStartError, needsStartAfterRegistration } from '../../src/domain/docker-host';
import { waitFor } from '../helpers/wait';

const log = pino({ level: 'silent' });

const PROC_NET_UNIX = [
  'Num       RefCount Protocol Flags    Type St Inode Path',
  '0000000000000000: 00000002 00000000 00010000 0001 01 20011 /tmp/of-docker-x/h1/docker.sock',
  '0000000000000000: 00000002 00000000 00010000 0001 01 20012 /run/docker/containerd/containerd.sock',
  '0000000000000000: 00000002 00000000 00010000 0001 01 20013 /run/docker/plugins/abc/overlay-flannel.sock',
  '0000000000000000: 00000003 00000000 00000000 0001 03 20014 /tmp/of-docker-x/h1/docker.sock',
  '0000000000000000: 00000002 00000000 00010000 0001 01 20015 @/containerd-shim/abc.sock',
  '0000000000000000: 00000002 00000000 00010000 0001 01 20016 /run/user/0/docker-rootless.sock',
  '0000000000000000: 00000002 00000000 00000000 0001 03 20017',
  '0000000000000000: 00000002 00000000 00010000 0001 01 20018 /run/docker.sock',
  '',
].join('\n');

test('/proc/net/unix: only listening, path-bound sockets, once each', () => {
  assert.deepEqual(listeningUnixSockets(PROC_NET_UNIX), [
    '/tmp/of-docker-x/h1/docker.sock',
    '/run/docker/containerd/containerd.sock',
    '/run/docker/plugins/abc/overlay-flannel.sock',
    '/run/user/0/docker-rootless.sock',
    '/run/docker.sock',
  ]);
  assert.deepEqual(listeningUnixSockets(''), []);
});

test('Docker-named API sockets, not Docker\'s internal ones', () => {
  const table: Array<[string, boolean]> = [
    ['/run/docker.sock', true],
    ['/var/run/docker.sock', true],
    ['/tmp/lab/h1/docker.sock', true],
    ['/run/user/0/docker-rootless.sock', true],
    ['/run/docker/containerd/containerd.sock', false],
    ['/run/docker/plugins/x/docker.sock', false],
    ['/run/containerd/containerd.sock', false],
    ['/run/dockerd.pid', false],
    ['/run/notdocker.sock', false],
  ];
  for (const [path, want] of table) assert.equal(looksLikeDockerApi(path), want, path);
});

test('candidates: the sockets of this namespace first, then the usual paths, no duplicates', () => {
  assert.deepEqual(dockerSocketCandidates(PROC_NET_UNIX), ['/tmp/of-docker-x/h1/docker.sock', '/run/user/0/docker-rootless.sock', '/run/docker.sock', '/var/run/docker.sock']);
  assert.deepEqual(dockerSocketCandidates(''), ['/run/docker.sock', '/var/run/docker.sock']);
  assert.equal(underRoot('/', '/run/docker.sock'), '/run/docker.sock');
  assert.equal(underRoot('/host/root/', '/run/docker.sock'), '/host/root/run/docker.sock');
});

async function listen(path: string): Promise<Server> {
  const s = createServer((c) => c.end());
  await new Promise<void>((resolve) => s.listen(path, resolve));
  return s;
}

const closeServer = (s: Server | HttpServer): Promise<void> => new Promise((resolve) => s.close(() => resolve()));

test('locate: a socket DOCKER_SOCKET is used as it is (through the root when it is the same file as a candidate there); /dev/null (the plugin placeholder) makes it search the host root; nothing found keeps DOCKER_SOCKET', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'of-locate-'));
  const servers: Server[] = [];
  try {
    const direct = join(dir, 'direct.sock');
    servers.push(await listen(direct));
    assert.equal(await locateDockerSocket({ dockerSocket: direct, dockerSearchRoot: '/nonexistent' }, log), direct);
    const root = join(dir, 'root');
    mkdirSync(join(root, 'run'), { recursive: true });
    // A stale socket file at the first usual path is skipped (refused), the next one answers.
    const stale = join(root, 'run/docker.sock');
    const s = await listen(stale);
    await closeServer(s);
    writeFileSync(stale, ''); // not even a socket
    mkdirSync(join(root, 'var/run'), { recursive: true });
    servers.push(await listen(join(root, 'var/run/docker.sock')));
    assert.equal(await locateDockerSocket({ dockerSocket: '/dev/null', dockerSearchRoot: root }, log), join(root, 'var/run/docker.sock'));
    assert.equal(await locateDockerSocket({ dockerSocket: '/dev/null', dockerSearchRoot: join(dir, 'empty') }, log), '/dev/null');
    assert.equal(await probeSocket(join(dir, 'none.sock')), 'ENOENT');
    // DOCKER_SOCKET that is the same file as a candidate under the root (a bind mount of dockerd's
    // socket; a hard link here): the path through the root, which follows dockerd re-creating it.
    const mounted = join(dir, 'mounted.sock');
    linkSync(join(root, 'var/run/docker.sock'), mounted);
    assert.equal(await locateDockerSocket({ dockerSocket: mounted, dockerSearchRoot: root }, log), join(root, 'var/run/docker.sock'));
    // A socket of its own (another file) is used as it is, whatever the root holds.
    assert.equal(await locateDockerSocket({ dockerSocket: direct, dockerSearchRoot: root }, log), direct);
  } finally {
    for (const s of servers) await closeServer(s);
    rmSync(dir, { recursive: true, force: true });
  }
});

/** POST `path` on a unix socket; the answer's body. */
function post(sock: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: sock, path, method: 'POST', headers: { 'content-length': 0 } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

test('which containers the plugin starts once the plain names are registered', () => {
  const boot = 'failed to set up container networking: invalid ipam driver: "overlay-flannel"';
  const table: Array<[string, { restartPolicy: string; running: boolean; error: string }, boolean]> = [
    ['always, failed on our IPAM name at boot', { restartPolicy: 'always', running: false, error: boot }, true],
    ['unless-stopped, failed on our driver name', { restartPolicy: 'unless-stopped', running: false, error: 'could not resolve driver overlay-flannel in registry' }, true],
    ['on-failure, failed on our name', { restartPolicy: 'on-failure', running: false, error: boot }, true],
    ['no restart policy', { restartPolicy: 'no', running: false, error: boot }, false],
    ['empty restart policy', { restartPolicy: '', running: false, error: boot }, false],
    ['stopped by a user (no start error)', { restartPolicy: 'always', running: false, error: '' }, false],
    ['running', { restartPolicy: 'always', running: true, error: boot }, false],
    ['another driver\'s name', { restartPolicy: 'always', running: false, error: 'invalid ipam driver: "weave"' }, false],
    ['the tagged name (not ours to fix: Docker registers it itself)', { restartPolicy: 'always', running: false, error: 'could not resolve driver overlay-flannel:latest in registry' }, false],
  ];
  for (const [what, c, want] of table) assert.equal(needsStartAfterRegistration(c), want, what);
  assert.equal(isPlainNameStartError('invalid ipam driver: "overlay-flannelX"'), false);
});

/** A fake dockerd: GET /events streams until `endEvents()`, GET /volumes counts calls; one exited container that failed on our name at boot. */
async function fakeDocker(sock: string): Promise<{ server: HttpServer; volumeLists: () => number; endEvents: () => void; starts: string[] }> {
  let lists = 0;
  const starts: string[] = [];
  const streams = new Set<ServerResponse>();
  const server = createHttpServer((req, res) => {
    const json = (body: unknown): void => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (req.url?.startsWith('/containers/json')) json([{ Id: 'c1' }, { Id: 'c2' }]);
    else if (/^\/containers\/c\d\/json/.test(req.url ?? '')) {
      const id = req.url!.split('/')[2];
      json({ Id: id, Name: `/${id}`, HostConfig: { RestartPolicy: { Name: 'always' } }, State: { Running: false, Error: id === 'c1' ? 'invalid ipam driver: "overlay-flannel"' : '' } });
    } else if (/^\/containers\/c\d\/start/.test(req.url ?? '') && req.method === 'POST') {
      starts.push(req.url!.split('/')[2]!);
      res.writeHead(204).end();
    } else if (req.url?.startsWith('/events')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      streams.add(res);
    } else if (req.url?.startsWith('/volumes')) {
      lists++;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"Volumes":[],"Warnings":null}');
    } else res.writeHead(404).end('{}');
  });
  await new Promise<void>((resolve) => server.listen(sock, resolve));
  return {
    server,
    volumeLists: () => lists,
    starts,
    endEvents: () => {
      for (const r of streams) r.end();
      streams.clear();
    },
  };
}

test('plain names: overlay-flannel.sock forwards to the plugin socket, replaces a stale one, asks Docker to scan (again after dockerd\'s connection ends), is removed on stop', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'of-plain-'));
  const legacy = join(dir, 'plugins');
  mkdirSync(legacy);
  const target = join(dir, 'plugin.sock');
  const plugin = createHttpServer((req, res) => res.writeHead(200).end(JSON.stringify({ Implements: ['NetworkDriver', 'IpamDriver'], path: req.url })));
  await new Promise<void>((resolve) => plugin.listen(target, resolve));
  const docker = await fakeDocker(join(dir, 'docker.sock'));
  // A stale socket of a killed plugin.
  const stale = await listen(join(legacy, 'overlay-flannel.sock'));
  await new Promise<void>((resolve) => stale.close(() => resolve()));
  writeFileSync(join(legacy, 'overlay-flannel.sock'), '');
  try {
    const names = await servePlainNames(legacy, target, join(dir, 'docker.sock'), log);
    assert.deepEqual(names.sockets, [join(legacy, 'overlay-flannel.sock')]);
    assert.ok(statSync(names.sockets[0]!).isSocket());
    assert.deepEqual(JSON.parse(await post(names.sockets[0]!, '/Plugin.Activate')), { Implements: ['NetworkDriver', 'IpamDriver'], path: '/Plugin.Activate' });
    await waitFor(async () => docker.volumeLists() === 1, { timeoutMs: 5_000, intervalMs: 20, what: 'one volume list' });
    await waitFor(async () => docker.starts.length === 1, { timeoutMs: 5_000, intervalMs: 20, what: 'the container that failed on our name started' });
    assert.deepEqual(docker.starts, ['c1'], 'only the container whose start failed on the plain name');
    docker.endEvents(); // dockerd went away and came back
    await waitFor(async () => docker.volumeLists() === 2, { timeoutMs: 10_000, intervalMs: 20, what: 'a second volume list after the events stream ended' });
    // A second instance leaves the live socket alone.
    const second = await servePlainNames(legacy, target, null, log);
    assert.deepEqual(second.sockets, []);
    await second.stop();
    assert.ok(existsSync(names.sockets[0]!));
    await names.stop();
    assert.ok(!existsSync(join(legacy, 'overlay-flannel.sock')), 'removed on stop');
  } finally {
    await closeServer(plugin);
    await closeServer(docker.server);
    rmSync(dir, { recursive: true, force: true });
  }
});
