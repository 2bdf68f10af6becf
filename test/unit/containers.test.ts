// "Containers on this host" from the kernel's veths, named through Docker when it answers, with the
// driver's remembered address when it does not; and the Docker lister against a fake Docker API
// on a unix socket (what dockerode asks, and how the answer is read).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dockerEndpointLister, localEndpoints } from '../../src/docker/containers';
import type { LinkInfo } from '../../src/kernel/types';
import type { DockerEndpoint } from '../../src/docker/containers';

const link = (index: number, name: string, kind: string, master = 0): LinkInfo => ({ index, name, kind, mtu: 1450, mac: '02:00:00:00:00:01', up: true, master });
const EP_A = 'aaaaaaaaaaaa' + '1'.repeat(52);
const NET = '0123456789ab' + '3'.repeat(52);
const links = [link(1, 'lo', ''), link(2, 'ofb-0123456789a', 'bridge'), link(3, 'ofhaaaaaaaaaaaa', 'veth', 2), link(4, 'ofhbbbbbbbbbbbb', 'veth', 2), link(5, 'vethother', 'veth')];
const kernel = { listLinks: async () => links };
const docker: DockerEndpoint[] = [
  { container: 'web', containerId: 'c-web', network: 'chat', networkId: NET, endpointId: EP_A, address: '10.5.1.2', address6: 'fd00:5:0:1::2' },
  { container: 'other', containerId: 'c-other', network: 'bridge', networkId: 'f'.repeat(64), endpointId: 'c'.repeat(64), address: '172.17.0.2', address6: '' },
];

test('Docker names the endpoints it knows; one it does not know keeps the kernel view', async () => {
  const v = await localEndpoints({ kernel, docker: async () => docker, addressOf: (id) => (id === 'bbbbbbbbbbbb' ? '10.5.1.3' : undefined), address6Of: () => undefined });
  assert.equal(v.source, 'docker');
  assert.equal(v.dockerError, null);
  assert.deepEqual(v.endpoints, [
    { endpoint: 'aaaaaaaaaaaa', hostVeth: 'ofhaaaaaaaaaaaa', bridge: 'ofb-0123456789a', network: 'chat', networkId: NET, address: '10.5.1.2', address6: 'fd00:5:0:1::2', container: 'web', containerId: 'c-web' },
    { endpoint: 'bbbbbbbbbbbb', hostVeth: 'ofhbbbbbbbbbbbb', bridge: 'ofb-0123456789a', network: null, networkId: '0123456789a', address: '10.5.1.3', address6: null, container: null, containerId: null },
  ]);
  assert.ok(!v.endpoints.some((e) => e.container === 'other'), 'containers on other drivers are not ours');
});

test('Docker failing or unusable: kernel rows, and the reason', async () => {
  const failing = await localEndpoints({ kernel, docker: async () => Promise.reject(new Error('connect ECONNREFUSED /var/run/docker.sock')) });
  assert.equal(failing.source, 'kernel');
  assert.match(failing.dockerError!, /Docker API: .*ECONNREFUSED/);
  assert.deepEqual(failing.endpoints.map((e) => [e.endpoint, e.container, e.address, e.address6]), [['aaaaaaaaaaaa', null, null, null], ['bbbbbbbbbbbb', null, null, null]]);
  const remembered = await localEndpoints({ kernel, docker: null, addressOf: (id) => (id === 'aaaaaaaaaaaa' ? '10.5.1.2' : undefined), address6Of: (id) => (id === 'aaaaaaaaaaaa' ? 'fd00:5:0:1::2' : undefined) });
  assert.deepEqual(remembered.endpoints.map((e) => [e.endpoint, e.address, e.address6]), [['aaaaaaaaaaaa', '10.5.1.2', 'fd00:5:0:1::2'], ['bbbbbbbbbbbb', null, null]], 'without Docker: the driver remembers both families');
  const unusable = await localEndpoints({ kernel, docker: null, dockerUnusable: 'DOCKER_SOCKET /x: ENOENT' });
  assert.equal(unusable.source, 'kernel');
  assert.equal(unusable.dockerError, 'DOCKER_SOCKET /x: ENOENT');
  assert.equal(unusable.endpoints.length, 2);
});

test('the Docker lister reads GET /containers/json: one row per attachment with an endpoint, names without "/"', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'of-containers-'));
  const sock = join(dir, 'docker.sock');
  const asked: string[] = [];
  const server = createServer((req, res) => {
    asked.push(`${req.method} ${req.url}`);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify([
      { Id: 'c-web', Names: ['/web'], NetworkSettings: { Networks: { chat: { NetworkID: NET, EndpointID: EP_A, IPAddress: '10.5.1.2', GlobalIPv6Address: 'fd00:5:0:1::2' }, other: { NetworkID: 'n2', EndpointID: 'e2', IPAddress: '10.9.0.2' } } } },
      { Id: 'c-idle', Names: ['/idle'], NetworkSettings: { Networks: { none: { NetworkID: 'n3', EndpointID: '', IPAddress: '' } } } },
    ]));
  });
  await new Promise<void>((r) => server.listen(sock, r));
  try {
    const rows = await dockerEndpointLister(sock)();
    assert.ok(asked.some((a) => a.startsWith('GET ') && a.includes('/containers/json')), asked.join(', '));
    assert.deepEqual(rows, [
      { container: 'web', containerId: 'c-web', network: 'chat', networkId: NET, endpointId: EP_A, address: '10.5.1.2', address6: 'fd00:5:0:1::2' },
      { container: 'web', containerId: 'c-web', network: 'other', networkId: 'n2', endpointId: 'e2', address: '10.9.0.2', address6: '' },
    ]);
  } finally {
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
});
