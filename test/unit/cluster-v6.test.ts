// IPv6 in the whole-overlay containers view (issue 21): a container's v6 address from its name
// record beside its v4 one, in the name rows, the cluster view, the page's compact rows (whose
// address cell the page's search box matches) and `overlay-flannel status --containers`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildCluster, type ClusterLeaseInput } from '../../src/domain/cluster';
import { nameRow, nameRows } from '../../src/domain/name-rows';
import { pageContainers, type ClusterJson } from '../../src/status/cluster-view';
import { printContainers } from '../../src/cli/containers';
import { parseCidr } from '../../src/domain/ipv4';
import { parseCidr6 } from '../../src/domain/ipv6';
import type { Lease } from '../../src/domain/lease';
import { nameRecord } from '../helpers/name-records';

const NOW = Date.UTC(2030, 0, 1, 12);
const rec = (name: string, ipv4: string[], ipv6: string[], host = '192.0.2.2', network = 'appnet') =>
  nameRecord({ host, containerName: name, ipv4, ipv6, networkId: network, networkName: network, endpointId: `${name}x`.padEnd(64, '0'), updatedAt: new Date(NOW - 5000).toISOString() });
const lease = (over: Partial<ClusterLeaseInput>): ClusterLeaseInput => ({
  overlay: 'default', subnet: '10.1.2.0/24', publicIP: '192.0.2.2', backend: 'vxlan', vtepMac: null, expiresAt: null, lastSeen: null, own: false, programmed: null, ...over,
});

test('name rows: the v6 addresses follow the v4 ones', () => {
  const table: [string[], string[], string[]][] = [
    [['10.1.2.5'], [], ['10.1.2.5']],
    [['10.1.2.5'], ['fd00:7:0:2::5'], ['10.1.2.5', 'fd00:7:0:2::5']],
    [['10.1.2.5', '10.1.2.6'], ['fd00:7:0:2::5'], ['10.1.2.5', '10.1.2.6', 'fd00:7:0:2::5']],
  ];
  for (const [v4, v6, want] of table) assert.deepEqual(nameRow(rec('web', v4, v6), NOW).addresses, want, `${v4} ${v6}`);
});

test('cluster: a dual-stack container shows both addresses and sits on the lease holding its v4 address', () => {
  const c = buildCluster({
    leases: [lease({}), lease({ overlay: 'blue', subnet: '10.9.2.0/24' })],
    names: nameRows([rec('web', ['10.9.2.5'], ['fd00:9:0:2::5'], '192.0.2.2', 'bluenet'), rec('api', ['10.1.2.6'], [])], NOW),
    etcd: null,
    namesStale: false,
    drift: [],
    nowMs: NOW,
  });
  assert.deepEqual(
    c.containers.map((x) => [x.name, x.addresses.join(' '), x.overlay, x.subnet]),
    [['api', '10.1.2.6', 'default', '10.1.2.0/24'], ['web', '10.9.2.5 fd00:9:0:2::5', 'blue', '10.9.2.0/24']],
  );
});

test('page rows: the address cell carries the v6 address, so the search box (lower-case text of the row) finds it', () => {
  const c = buildCluster({ leases: [lease({})], names: nameRows([rec('web', ['10.1.2.5'], ['fd00:7:0:2::5']), rec('api', ['10.1.2.6'], [])], NOW), etcd: null, namesStale: false, drift: [], nowMs: NOW });
  const k = pageContainers({ ...c, generatedAt: '', thisHost: null, stale: false, staleSince: null, counts: { hosts: 1, pluginHosts: 1, flanneldHosts: 0, containers: 2 }, events: [] } as ClusterJson);
  assert.deepEqual(k.rows.map((r) => r[2]), ['10.1.2.6', '10.1.2.5 fd00:7:0:2::5']);
  // What page-script.ts's index() builds per row and clist() matches with includes().
  const hay = k.rows.map((r) => `${r[0]} ${r[1]} ${r[2]} ${k.hosts[r[4]]} ${k.networks[r[3]]}`.toLowerCase());
  const table: [string, string[]][] = [
    ['FD00:7:0:2::5', ['web']],
    ['fd00:7:0:2', ['web']],
    ['10.1.2.', ['api', 'web']],
    ['fd00:8', []],
  ];
  for (const [q, want] of table) assert.deepEqual(k.rows.filter((_, i) => hay[i]!.includes(q.toLowerCase())).map((r) => r[0]), want, q);
});

test('status --containers: the ADDRESS column and --json carry the v6 address beside the v4 one', () => {
  const l: Lease = { subnet: parseCidr('10.1.2.0/24'), subnet6: parseCidr6('fd00:7:0:2::/64'), attrs: { publicIP: '192.0.2.2', backendType: 'vxlan' }, etcdLease: '1' } as Lease;
  const records = [rec('web', ['10.1.2.5'], ['fd00:7:0:2::5']), rec('api', ['10.1.2.6'], [])];
  const lines: string[] = [];
  printContainers({ overlay: 'default', leases: [l], expiries: [undefined], records, skipped: 0, ownIP: undefined, json: false }, (s) => lines.push(s));
  const table = lines[0]!.split('\n');
  assert.match(table[0]!, /^NAME\s+ALIASES\s+ADDRESS\s+NETWORK/);
  assert.match(table[1]!, /^api\s+-\s+10\.1\.2\.6\s+appnet\s+192\.0\.2\.2\s+10\.1\.2\.0\/24/);
  assert.match(table[2]!, /^web\s+-\s+10\.1\.2\.5,fd00:7:0:2::5\s+appnet\s+192\.0\.2\.2\s+10\.1\.2\.0\/24/);
  const json: string[] = [];
  printContainers({ overlay: 'default', leases: [l], expiries: [undefined], records, skipped: 0, ownIP: undefined, json: true }, (s) => json.push(s));
  const parsed = JSON.parse(json[0]!) as { containers: { name: string; addresses: string[] }[] };
  assert.deepEqual(parsed.containers.map((x) => [x.name, x.addresses]), [['api', ['10.1.2.6']], ['web', ['10.1.2.5', 'fd00:7:0:2::5']]]);
});
