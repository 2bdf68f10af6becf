/**
 * Network replication ("define once"): the pure decisions (records + local networks → actions),
 * the NetworkReplicator driven through fakes of Docker and etcd, the CLI's --name, and the pairs
 * of the isolation rules.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { createRequestOf, isReplica, localNetworkOf, networksToCreate, overlaysInUse, recordOf, removalOf, REPLICA_LABEL, type LocalNetwork } from '../../src/docker/replication';
import { dockerSocketUsable } from '../../src/docker/client';
import { NetworkReplicator, type DockerPort, type RecordsPort } from '../../src/docker/network-replicator';
import { parseNetworkRecord, type NetworkRecord, type NetworkRecordEvents } from '../../src/store/network-records';
import { parseCommand } from '../../src/cli/args';
import { isolationComment, isolationPairs } from '../../src/domain/forward-head';
import { loadSettings } from '../../src/config/settings';
import { waitFor } from '../helpers/wait';

const DRIVER = 'overlay-flannel:latest';
const rec = (name: string, extra: Partial<NetworkRecord> = {}): NetworkRecord => ({
  name,
  driver: DRIVER,
  ipamDriver: DRIVER,
  driverOpts: {},
  ipamOpts: {},
  labels: {},
  internal: false,
  attachable: false,
  createdBy: '192.0.2.1',
  ...extra,
});
const net = (name: string, extra: Partial<LocalNetwork> = {}): LocalNetwork => ({
  id: `id-${name}`,
  name,
  driver: DRIVER,
  ipamDriver: DRIVER,
  driverOpts: {},
  ipamOpts: {},
  labels: {},
  internal: false,
  attachable: false,
  ...extra,
});

test('records the local Docker lacks are created, by name; existing names (any driver) are left alone', () => {
  const out = networksToCreate([rec('b'), rec('a'), rec('bridge'), rec('c')], [net('c'), net('bridge', { driver: 'bridge' })]);
  assert.deepEqual(out.map((r) => r.name), ['a', 'b']);
  assert.deepEqual(networksToCreate([], [net('x')]), []);
});

test('a deleted record removes the local network only when ours and unused', () => {
  assert.deepEqual(removalOf('a', null, rec('a')), { action: 'none' });
  assert.deepEqual(removalOf('a', net('a', { containers: 0 }), rec('a')), { action: 'remove', id: 'id-a' });
  assert.deepEqual(removalOf('a', net('a', { containers: 0 }), null), { action: 'remove', id: 'id-a' });
  const busy = removalOf('a', net('a', { containers: 2 }), rec('a'));
  assert.equal(busy.action, 'keep');
  assert.match((busy as { reason: string }).reason, /2 container/);
  assert.equal(removalOf('a', net('a', { driver: 'bridge', containers: 0 }), rec('a')).action, 'keep');
  assert.equal(removalOf('a', net('a'), rec('a')).action, 'keep', 'unknown container count: keep');
});

test('a record carries name, driver, options and labels, never a subnet; the create request mirrors it', () => {
  const info = {
    Id: 'abc',
    Name: 'blue',
    Driver: DRIVER,
    IPAM: { Driver: DRIVER, Options: { network: 'blue' }, Config: [{ Subnet: '10.1.15.0/24' }] },
    Options: { 'com.docker.network.driver.mtu': '1400' },
    Labels: { team: 'x' },
    Internal: false,
    Attachable: true,
    Containers: { c1: {} },
  };
  const local = localNetworkOf(info, true);
  assert.equal(local.containers, 1);
  assert.equal(localNetworkOf(info, false).containers, undefined);
  const r = recordOf(local, '192.0.2.7');
  assert.deepEqual(r, {
    name: 'blue',
    driver: DRIVER,
    ipamDriver: DRIVER,
    driverOpts: { 'com.docker.network.driver.mtu': '1400' },
    ipamOpts: { network: 'blue' },
    labels: { team: 'x' },
    internal: false,
    attachable: true,
    createdBy: '192.0.2.7',
  });
  assert.doesNotMatch(JSON.stringify(r), /10\.1\.15/);
  assert.deepEqual(parseNetworkRecord(JSON.stringify(r)), r);
  assert.equal(parseNetworkRecord('{"name":""}'), null);
  assert.equal(parseNetworkRecord('nope'), null);
  const body = createRequestOf(r);
  assert.equal(body.Name, 'blue');
  assert.equal(body.Driver, DRIVER);
  assert.deepEqual(body.IPAM, { Driver: DRIVER, Options: { network: 'blue' }, Config: [] });
  assert.deepEqual(body.Options, { 'com.docker.network.driver.mtu': '1400' });
  assert.equal(body.CheckDuplicate, true);
  assert.equal(body.EnableIPv6, undefined, 'a v4 network is replicated without --ipv6');
  // a --ipv6 network is replicated with it (issue 21)
  const r6 = recordOf(localNetworkOf({ ...info, EnableIPv6: true }, false), '192.0.2.7');
  assert.equal(r6.enableIPv6, true);
  assert.deepEqual(parseNetworkRecord(JSON.stringify(r6)), r6);
  assert.equal(createRequestOf(r6).EnableIPv6, true);
});

/** A Docker daemon in memory: networks by name; create/remove tell the "driver" (the replicator). */
class FakeDocker implements DockerPort {
  nets = new Map<string, LocalNetwork>();
  containers = new Map<string, number>();
  calls: string[] = [];
  up = true;
  onCreated: (id: string) => void = () => undefined;
  onDeleted: (id: string) => void = () => undefined;
  async ping() {
    if (!this.up) throw new Error('connect ENOENT');
  }
  async list() {
    if (!this.up) throw new Error('connect ENOENT');
    return [...this.nets.values()].map((n) => ({ ...n, containers: undefined }));
  }
  async inspect(idOrName: string) {
    const n = [...this.nets.values()].find((x) => x.id === idOrName || x.name === idOrName);
    return n ? { ...n, containers: this.containers.get(n.name) ?? 0 } : null;
  }
  async create(r: NetworkRecord) {
    this.calls.push(`create ${r.name}`);
    this.userCreate(r.name, { ipamOpts: r.ipamOpts, driverOpts: r.driverOpts, labels: { ...createRequestOf(r).Labels } });
  }
  async remove(id: string) {
    const n = [...this.nets.values()].find((x) => x.id === id);
    if (!n) return;
    this.calls.push(`remove ${n.name}`);
    this.nets.delete(n.name);
    this.onDeleted(id);
  }
  userCreate(name: string, extra: Partial<LocalNetwork> = {}) {
    const n = net(name, { id: `id-${name}-${Math.random().toString(36).slice(2, 8)}`, ...extra });
    this.nets.set(name, n);
    this.onCreated(n.id);
    return n;
  }
  userRemove(name: string) {
    const n = this.nets.get(name)!;
    this.nets.delete(name);
    this.onDeleted(n.id);
  }
}

/** etcd in memory, shared by the hosts' replicators: watchers get a snapshot, then puts/deletes. */
class FakeRecords {
  recs = new Map<string, NetworkRecord>();
  watchers = new Set<NetworkRecordEvents>();
  port(): RecordsPort {
    return {
      createIfAbsent: async (r) => {
        if (this.recs.has(r.name)) return false;
        this.recs.set(r.name, r);
        for (const w of this.watchers) w.onPut(r);
        return true;
      },
      remove: async (name) => {
        const prev = this.recs.get(name) ?? null;
        if (!this.recs.delete(name)) return;
        for (const w of this.watchers) w.onDelete(name, prev);
      },
      watch: (ev) => {
        this.watchers.add(ev);
        ev.onSnapshot([...this.recs.values()]);
        return { ready: Promise.resolve(), stop: async () => void this.watchers.delete(ev) };
      },
    };
  }
}

function host(records: FakeRecords, ip: string): { docker: FakeDocker; rep: NetworkReplicator } {
  const docker = new FakeDocker();
  const rep = new NetworkReplicator(docker, records.port(), pino({ level: 'silent' }), { host: ip, resyncMs: 60_000 });
  docker.onCreated = (id) => rep.networkCreated(id);
  docker.onDeleted = (id) => rep.networkDeleted(id);
  return { docker, rep };
}

test('overlaysInUse: the named overlays of networks of our drivers, once each, in name order', () => {
  const ours = new Set([DRIVER]);
  const cases: Array<[string, LocalNetwork[], string[]]> = [
    ['none', [], []],
    ['default overlay only (no network option)', [net('a')], []],
    ['two networks on one named overlay, one on another', [net('a', { ipamOpts: { network: 'red' } }), net('b', { ipamOpts: { network: 'blue' } }), net('c', { ipamOpts: { network: 'red' } })], ['blue', 'red']],
    ['another driver with the same option is not ours', [net('x', { driver: 'bridge', ipamOpts: { network: 'red' } })], []],
    ['an empty option is the default overlay', [net('a', { ipamOpts: { network: '' } })], []],
  ];
  for (const [what, local, want] of cases) assert.deepEqual(overlaysInUse(local, ours), want, what);
  assert.deepEqual(overlaysInUse([net('a', { ipamOpts: { network: 'red' } })], new Set()), [], 'no records: no driver known as ours');
});

test('a replicator that starts beside existing networks on named overlays reports them (a restarted plugin rejoins them)', async () => {
  const etcd = new FakeRecords();
  etcd.recs.set('blue', rec('blue', { ipamOpts: { network: 'blue' } }));
  const docker = new FakeDocker();
  docker.nets.set('blue', net('blue', { ipamOpts: { network: 'blue' } }));
  docker.nets.set('plain', net('plain'));
  const seen: string[][] = [];
  const rep = new NetworkReplicator(docker, etcd.port(), pino({ level: 'silent' }), { host: '192.0.2.9', resyncMs: 60_000, onOverlaysInUse: (n) => seen.push(n) });
  rep.start();
  try {
    await waitFor(async () => seen.length > 0, { timeoutMs: 3000, what: 'onOverlaysInUse called' });
    assert.deepEqual(seen[0], ['blue']);
    assert.deepEqual(docker.calls, [], 'nothing created: the network exists');
  } finally {
    await rep.stop();
  }
});

test('define once: created on h1 → recorded → created on h2 and on a host that starts later; rm on h1 → removed where unused', async () => {
  const etcd = new FakeRecords();
  const h1 = host(etcd, '192.0.2.1');
  const h2 = host(etcd, '192.0.2.2');
  h1.rep.start();
  h2.rep.start();
  try {
    h1.docker.userCreate('blue', { ipamOpts: { network: 'blue' } });
    await waitFor(async () => h2.docker.nets.has('blue'), { timeoutMs: 3000, what: 'blue on h2' });
    assert.deepEqual(h2.docker.nets.get('blue')!.ipamOpts, { network: 'blue' });
    assert.equal(etcd.recs.get('blue')!.createdBy, '192.0.2.1', 'the replica on h2 did not rewrite the record');
    assert.deepEqual(h1.docker.calls, [], 'h1 created nothing itself');

    const h3 = host(etcd, '192.0.2.3');
    h3.rep.start();
    await waitFor(async () => h3.docker.nets.has('blue'), { timeoutMs: 3000, what: 'blue on a host that started later' });

    h3.docker.containers.set('blue', 1); // in use on h3
    h1.docker.userRemove('blue');
    await waitFor(async () => !h2.docker.nets.has('blue'), { timeoutMs: 3000, what: 'blue removed on h2' });
    assert.equal(etcd.recs.has('blue'), false);
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(h3.docker.nets.has('blue'), 'kept where a container uses it');
    assert.equal(h2.rep.stats.unrecorded, 0, "h2's own removal did not touch the records");

    // Re-adding works (from h2 this time); h3 already has the name and creates nothing.
    h2.docker.userCreate('blue');
    await waitFor(async () => h1.docker.nets.has('blue'), { timeoutMs: 3000, what: 'blue again on h1' });
    assert.equal(etcd.recs.get('blue')!.createdBy, '192.0.2.2');
    assert.deepEqual(h3.docker.calls, ['create blue']);
    await h3.rep.stop();
  } finally {
    await h1.rep.stop();
    await h2.rep.stop();
  }
});

test('a replica whose record is deleted while it is being created is not recorded again (the soak\'s resurrected soaknet, issue 24)', async () => {
  const etcd = new FakeRecords();
  const store = etcd.port();
  const h1 = host(etcd, '192.0.2.1');
  const h2 = host(etcd, '192.0.2.2');
  // h1 removes the network right after h2's Docker created the replica: the record goes before
  // h2's plugin handled that CreateNetwork (it runs on h2's queue after the create).
  const create = h2.docker.create.bind(h2.docker);
  h2.docker.create = async (r) => {
    await create(r);
    await new Promise((resolve) => setTimeout(resolve, 10)); // h2's CreateNetwork is handled (queued) before the create returns
    h1.docker.nets.delete(r.name);
    await store.remove(r.name);
  };
  h1.rep.start();
  h2.rep.start();
  try {
    h1.docker.userCreate('blue');
    await waitFor(async () => h2.docker.calls.includes('create blue') && !h2.docker.nets.has('blue'), { timeoutMs: 3000, what: 'the replica on h2 created, then removed' });
    await new Promise((r) => setTimeout(r, 100)); // any resurrection would be under way by now
    assert.equal(etcd.recs.get('blue')?.createdBy, undefined, 'no record of blue (h2 did not record its replica as its own)');
    assert.equal(h1.docker.nets.has('blue'), false, 'blue not back on h1');
    assert.equal(h2.docker.nets.has('blue'), false, 'blue not back on h2');
    // A network a user then creates on h2 under that name is h2's own: it is recorded.
    h2.docker.create = create;
    h2.docker.userCreate('blue');
    await waitFor(async () => h1.docker.nets.has('blue'), { timeoutMs: 3000, what: "h2's own blue on h1" });
    assert.equal(etcd.recs.get('blue')!.createdBy, '192.0.2.2');
  } finally {
    await h1.rep.stop();
    await h2.rep.stop();
  }
});

test('a replica carries the defining host in a label that never goes into a record', () => {
  const body = createRequestOf(rec('blue', { labels: { team: 'x' }, createdBy: '192.0.2.9' }));
  assert.deepEqual(body.Labels, { team: 'x', [REPLICA_LABEL]: '192.0.2.9' });
  const replica = net('blue', { labels: body.Labels });
  assert.equal(isReplica(replica), true);
  assert.equal(isReplica(net('blue', { labels: { team: 'x' } })), false);
  assert.deepEqual(recordOf(replica, '192.0.2.2').labels, { team: 'x' }, 'the label is stripped from a record');
  assert.deepEqual(createRequestOf(recordOf(replica, '192.0.2.2')).Labels, { team: 'x', [REPLICA_LABEL]: '192.0.2.2' });
});

test("a replica made by an earlier plugin process (killed while Docker created it) is not recorded by the new one after its record went (the CI soak's soaknet, issue 24)", async () => {
  const etcd = new FakeRecords();
  const h2 = host(etcd, '192.0.2.2');
  h2.docker.onCreated = () => undefined; // the earlier process got the CreateNetwork, then died
  // The earlier process's replica of h1's blue; h1 then removed blue, so its record is gone.
  const replica = h2.docker.userCreate('blue', { labels: { ...createRequestOf(rec('blue')).Labels } });
  const mine = h2.docker.userCreate('green');
  h2.rep.start();
  try {
    // Docker hands the CreateNetwork calls to the new process (restarted plugin).
    h2.rep.networkCreated(replica.id);
    h2.rep.networkCreated(mine.id);
    await waitFor(async () => etcd.recs.has('green'), { timeoutMs: 3000, what: "h2's own green recorded" });
    await new Promise((r) => setTimeout(r, 50)); // blue's record() ran before green's (one queue)
    assert.equal(etcd.recs.has('blue'), false, 'the replica was not recorded as h2\'s own');
    assert.equal(etcd.recs.get('green')!.createdBy, '192.0.2.2');
  } finally {
    await h2.rep.stop();
  }
});

test('a Docker API that does not answer yet is retried until it answers', async () => {
  const etcd = new FakeRecords();
  etcd.recs.set('red', rec('red'));
  const h = host(etcd, '192.0.2.9');
  h.docker.up = false;
  h.rep.start();
  try {
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(h.docker.nets.size, 0);
    h.docker.up = true;
    await waitFor(async () => h.docker.nets.has('red'), { timeoutMs: 6000, what: 'red after Docker came up' });
  } finally {
    await h.rep.stop();
  }
});

test('CLI: --name selects the named overlay for config set/show and status; not with --prefix', () => {
  const c = parseCommand(['config', 'set', '--name', 'blue', '--network', '10.2.0.0/16', '--vni', '2']);
  assert.equal(c.cmd, 'config-set');
  assert.equal((c as { name?: string }).name, 'blue');
  assert.deepEqual(parseCommand(['config', 'show', '--name', 'blue']), { cmd: 'config-show', name: 'blue' });
  assert.deepEqual(parseCommand(['status', '--name', 'blue', '--json']), { cmd: 'status', json: true, name: 'blue' });
  assert.throws(() => parseCommand(['config', 'show', '--name', 'blue', '--prefix', '/x']), /one of them/);
  assert.throws(() => parseCommand(['status', '--name', 'bad name']), /not a valid overlay name/);
});

test('isolation: one drop rule per ordered pair of distinct Networks', () => {
  assert.deepEqual(isolationPairs(['10.1.0.0/16']), []);
  assert.deepEqual(isolationPairs(['10.2.0.0/16', '10.1.0.0/16', '10.1.0.0/16']), [
    ['10.1.0.0/16', '10.2.0.0/16'],
    ['10.2.0.0/16', '10.1.0.0/16'],
  ]);
  assert.equal(isolationPairs(['10.1.0.0/16', '10.2.0.0/16', '10.3.0.0/16']).length, 6);
  assert.equal(isolationComment('10.1.0.0/16', '10.2.0.0/16'), 'overlay-flannel isolate 10.1.0.0/16 10.2.0.0/16');
});

test('DOCKER_SOCKET: default /var/run/docker.sock, must be absolute', () => {
  assert.equal(loadSettings({}).dockerSocket, '/var/run/docker.sock');
  assert.equal(loadSettings({ DOCKER_SOCKET: '/run/d.sock' }).dockerSocket, '/run/d.sock');
  assert.throws(() => loadSettings({ DOCKER_SOCKET: 'd.sock' }), /DOCKER_SOCKET/);
});

test('a missing Docker socket is reported (replication off), so is a file that is no socket (the plugin\'s /dev/null placeholder); a socket we may write is usable', async () => {
  assert.match((await dockerSocketUsable('/nonexistent/docker.sock'))!, /ENOENT/);
  assert.match((await dockerSocketUsable('/dev/null'))!, /is not a socket/);
  // Files of our own: the test's source may belong to another user (the unit suite runs unprivileged in CI).
  const dir = mkdtempSync(join(tmpdir(), 'of-docker-sock-'));
  const server = createServer();
  try {
    const file = join(dir, 'plain-file');
    writeFileSync(file, '');
    assert.match((await dockerSocketUsable(file))!, /is not a socket/);
    const sock = join(dir, 'docker.sock');
    await new Promise<void>((r) => server.listen(sock, r));
    assert.equal(await dockerSocketUsable(sock), null);
    chmodSync(sock, 0o400);
    if (process.getuid?.() !== 0) assert.match((await dockerSocketUsable(sock))!, /EACCES/); // root may write anything
  } finally {
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
});
