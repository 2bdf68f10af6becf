// The Docker name follower of src/docker/name-events.ts against a fake Docker (events, list,
// inspect) and a recording sink: what it writes for connect, rename, disconnect, die and a
// stream break; networks of ours by driver name or by our bridge in the kernel.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { NameEvents, type DockerEvent, type DockerNetworkFacts, type NameDockerPort, type NameSink } from '../../src/docker/name-events';
import type { InspectedContainer } from '../../src/domain/endpoint-names';
import type { NameRecord } from '../../src/domain/name-record';
import { waitFor } from '../helpers/wait';

const HOST = '192.0.2.11';
const id = (c: string) => c.repeat(64).slice(0, 64);

class FakeDocker implements NameDockerPort {
  networksById = new Map<string, DockerNetworkFacts>();
  containers = new Map<string, InspectedContainer>();
  private emit: ((e: DockerEvent) => void) | null = null;
  private end: ((why: string) => void) | null = null;
  streams = 0;
  async events(onEvent: (e: DockerEvent) => void, onEnd: (why: string) => void) {
    this.streams++;
    this.emit = onEvent;
    this.end = onEnd;
    return { close: () => undefined };
  }
  async networks() {
    return [...this.networksById.values()];
  }
  async network(nid: string) {
    return this.networksById.get(nid) ?? null;
  }
  async running() {
    return [...this.containers.values()]
      .filter((c) => c.State?.Running)
      .map((c) => ({ id: c.Id, networkIds: Object.values(c.NetworkSettings?.Networks ?? {}).map((n) => n?.NetworkID ?? '') }));
  }
  async inspect(cid: string) {
    return structuredClone(this.containers.get(cid) ?? null);
  }
  send(e: DockerEvent) {
    this.emit?.(e);
  }
  breakStream() {
    this.end?.('test');
  }
  run(cid: string, name: string, nets: Record<string, { net: string; ep: string; ip: string; aliases?: string[] }>) {
    this.containers.set(cid, {
      Id: cid,
      Name: `/${name}`,
      State: { Running: true },
      NetworkSettings: { Networks: Object.fromEntries(Object.entries(nets).map(([n, v]) => [n, { NetworkID: v.net, EndpointID: v.ep, IPAddress: v.ip, Aliases: v.aliases ?? [] }])) },
    });
  }
}

class RecordingSink implements NameSink {
  held = new Map<string, NameRecord>();
  calls: string[] = [];
  async put(r: NameRecord) {
    this.calls.push(`put ${r.containerName}@${r.networkId}`);
    this.held.set(`${r.networkId}/${r.endpointId}`, r);
  }
  async remove(networkId: string, endpointId: string) {
    this.calls.push(`remove ${networkId}/${endpointId.slice(0, 4)}`);
    this.held.delete(`${networkId}/${endpointId}`);
  }
  scans: boolean[] = [];
  async replaceAll(rs: readonly NameRecord[], opts: { scanStale?: boolean } = {}) {
    this.calls.push(`replaceAll ${rs.length}`);
    this.scans.push(opts.scanStale !== false);
    this.held = new Map(rs.map((r) => [`${r.networkId}/${r.endpointId}`, r]));
  }
  names(): string[] {
    return [...this.held.values()].map((r) => `${r.containerName}@${r.networkName}:${r.ipv4[0]}[${r.aliases.join(',')}]`).sort();
  }
}

function setup(opts: { bridges?: Set<string> } = {}) {
  const docker = new FakeDocker();
  docker.networksById.set('hostnet-a', { id: 'hostnet-a', name: 'appnet', driver: 'overlay-flannel:latest' });
  docker.networksById.set('hostnet-b', { id: 'hostnet-b', name: 'backnet', driver: '192.0.2.254:5000/overlay-flannel:latest' });
  docker.networksById.set('hostnet-x', { id: 'hostnet-x', name: 'bridge', driver: 'bridge' });
  docker.networksById.set('hostnet-y', { id: 'hostnet-y', name: 'aliased', driver: 'myflannel:latest' });
  const sink = new RecordingSink();
  const follower = new NameEvents(docker, sink, pino({ level: 'silent' }), {
    host: HOST,
    auditIntervalMs: 60_000,
    ...(opts.bridges ? { hasBridge: async (nid: string) => opts.bridges!.has(nid) } : {}),
  });
  return { docker, sink, follower };
}

test('start: one replaceAll of every running container on our networks, nothing of foreign networks', async () => {
  const { docker, sink, follower } = setup();
  docker.run(id('a'), 'web-1', { appnet: { net: 'hostnet-a', ep: id('1'), ip: '10.1.16.5', aliases: ['web'] }, bridge: { net: 'hostnet-x', ep: id('2'), ip: '172.17.0.2' } });
  docker.run(id('b'), 'db', { backnet: { net: 'hostnet-b', ep: id('3'), ip: '10.2.16.7' } });
  docker.run(id('c'), 'plain', { bridge: { net: 'hostnet-x', ep: id('4'), ip: '172.17.0.3' } });
  follower.start();
  try {
    await waitFor(async () => sink.calls.includes('replaceAll 2'), { what: 'the first replaceAll', timeoutMs: 5000 });
    assert.deepEqual(sink.names(), ['db@backnet:10.2.16.7[]', 'web-1@appnet:10.1.16.5[web]']);
    assert.equal(follower.records, 2);
  } finally {
    await follower.stop();
  }
});

test('events: connect puts, rename rewrites, disconnect and die delete; foreign networks ignored', async () => {
  const { docker, sink, follower } = setup();
  follower.start();
  try {
    await waitFor(async () => sink.calls.includes('replaceAll 0'), { what: 'the first replaceAll', timeoutMs: 5000 });
    docker.run(id('a'), 'web-1', { appnet: { net: 'hostnet-a', ep: id('1'), ip: '10.1.16.5', aliases: ['web'] } });
    docker.send({ Type: 'network', Action: 'connect', Actor: { ID: 'hostnet-a', Attributes: { container: id('a'), name: 'appnet', type: 'overlay-flannel:latest' } } });
    await waitFor(async () => sink.names().length === 1, { what: 'the put after connect', timeoutMs: 5000 });
    assert.deepEqual(sink.names(), ['web-1@appnet:10.1.16.5[web]']);

    docker.containers.get(id('a'))!.Name = '/web-2';
    docker.send({ Type: 'container', Action: 'rename', Actor: { ID: id('a'), Attributes: { name: 'web-2', oldName: '/web-1' } } });
    await waitFor(async () => sink.names()[0]?.startsWith('web-2@'), { what: 'the rename', timeoutMs: 5000 });

    // connect --alias to a second network of ours
    docker.containers.get(id('a'))!.NetworkSettings!.Networks!.backnet = { NetworkID: 'hostnet-b', EndpointID: id('3'), IPAddress: '10.2.16.9', Aliases: ['api', id('a').slice(0, 12)] };
    docker.send({ Type: 'network', Action: 'connect', Actor: { ID: 'hostnet-b', Attributes: { container: id('a'), name: 'backnet', type: 'x/overlay-flannel:latest' } } });
    await waitFor(async () => sink.names().length === 2, { what: 'the second network', timeoutMs: 5000 });
    assert.deepEqual(sink.names(), [`web-2@appnet:10.1.16.5[web]`, `web-2@backnet:10.2.16.9[api,${id('a').slice(0, 12)}]`]);

    // a foreign network's connect: not even an inspect
    const inspects = follower.stats.inspects;
    docker.send({ Type: 'network', Action: 'connect', Actor: { ID: 'hostnet-x', Attributes: { container: id('z'), name: 'bridge', type: 'bridge' } } });
    docker.send({ Type: 'network', Action: 'disconnect', Actor: { ID: 'hostnet-x', Attributes: { container: id('z'), name: 'bridge', type: 'bridge' } } });
    docker.send({ Type: 'container', Action: 'die', Actor: { ID: id('z') } });

    delete docker.containers.get(id('a'))!.NetworkSettings!.Networks!.backnet;
    docker.send({ Type: 'network', Action: 'disconnect', Actor: { ID: 'hostnet-b', Attributes: { container: id('a'), name: 'backnet', type: 'x/overlay-flannel:latest' } } });
    await waitFor(async () => sink.names().length === 1, { what: 'the disconnect', timeoutMs: 5000 });
    assert.deepEqual(sink.names(), ['web-2@appnet:10.1.16.5[web]']);

    docker.containers.get(id('a'))!.State = { Running: false };
    docker.send({ Type: 'container', Action: 'die', Actor: { ID: id('a') } });
    await waitFor(async () => sink.names().length === 0, { what: 'the die', timeoutMs: 5000 });
    assert.equal(follower.records, 0);
    // the bridge connect (container z unknown to Docker) cost one inspect at most, nothing written
    assert.ok(follower.stats.inspects - inspects <= 4, `inspects: ${follower.stats.inspects - inspects}`);
    assert.ok(!sink.calls.some((c) => c.includes('bridge')), sink.calls.join(', '));
  } finally {
    await follower.stop();
  }
});

test('an unchanged container is not rewritten; a stream break re-lists (what was missed is repaired)', async () => {
  const { docker, sink, follower } = setup();
  docker.run(id('a'), 'web-1', { appnet: { net: 'hostnet-a', ep: id('1'), ip: '10.1.16.5' } });
  follower.start();
  try {
    await waitFor(async () => sink.calls.includes('replaceAll 1'), { what: 'the first replaceAll', timeoutMs: 5000 });
    docker.send({ Type: 'network', Action: 'connect', Actor: { ID: 'hostnet-a', Attributes: { container: id('a'), name: 'appnet', type: 'overlay-flannel:latest' } } });
    await waitFor(async () => follower.stats.inspects >= 2, { what: 'the inspect', timeoutMs: 5000 });
    assert.ok(!sink.calls.some((c) => c.startsWith('put')), `rewritten: ${sink.calls.join(', ')}`);
    // while the stream is down: a is removed, b started
    docker.containers.delete(id('a'));
    docker.run(id('b'), 'web-2', { appnet: { net: 'hostnet-a', ep: id('2'), ip: '10.1.16.6' } });
    docker.breakStream();
    await waitFor(async () => docker.streams >= 2 && sink.names().join() === 'web-2@appnet:10.1.16.6[]', { what: 'the re-list after the break', timeoutMs: 10_000 });
    assert.deepEqual(sink.scans, [true, false], 'only the first list asks the registry to scan etcd for an earlier process\'s records');
  } finally {
    await follower.stop();
  }
});

test('a plugin under an alias of its own: networks with our bridge in the kernel are ours', async () => {
  const { docker, sink, follower } = setup({ bridges: new Set(['hostnet-y']) });
  docker.run(id('a'), 'web-1', { aliased: { net: 'hostnet-y', ep: id('1'), ip: '10.3.16.5' }, bridge: { net: 'hostnet-x', ep: id('2'), ip: '172.17.0.2' } });
  follower.start();
  try {
    await waitFor(async () => sink.calls.includes('replaceAll 1'), { what: 'the first replaceAll', timeoutMs: 5000 });
    assert.deepEqual(sink.names(), ['web-1@aliased:10.3.16.5[]']);
  } finally {
    await follower.stop();
  }
});

test('Docker failing: no replaceAll on a partial picture, then repaired when it answers', async () => {
  const { docker, sink, follower } = setup();
  docker.run(id('a'), 'web-1', { appnet: { net: 'hostnet-a', ep: id('1'), ip: '10.1.16.5' } });
  const real = docker.running.bind(docker);
  let fail = true;
  docker.running = async () => {
    if (fail) throw new Error('connect ECONNREFUSED /run/docker.sock');
    return real();
  };
  follower.start();
  try {
    await waitFor(async () => follower.stats.failedResyncs >= 1, { what: 'a failed re-list', timeoutMs: 5000 });
    assert.ok(!sink.calls.some((c) => c.startsWith('replaceAll')), sink.calls.join(', '));
    fail = false;
    await waitFor(async () => sink.calls.includes('replaceAll 1'), { what: 'the re-list once Docker answers', timeoutMs: 15_000 });
  } finally {
    await follower.stop();
  }
});
