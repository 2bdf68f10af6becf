// Why an overlay is not ready (OverlayAgent.notReadyReason), as Docker shows it: driven through a
// fake store port and a fake kernel, in the order the agent meets each state.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import pino from 'pino';
import { parseCidr } from '../../src/domain/ipv4';
import { configStateOf } from '../../src/store/config-store';
import type { ConfigState, LeaseKeeper } from '../../src/store/types';
import { OverlayAgent, OverlayStorePort } from '../../src/reconcile/overlay-agent';
import type { PublicInterface } from '../../src/host/public-interface';
import { SerialQueue } from '../../src/util/serial-queue';
import { FakeKernel } from '../fakes/fake-kernel';
import { WireguardClaims } from '../../src/domain/wireguard-config';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const log = pino({ level: 'silent' });
const REFUSED = 'etcd at https://192.0.2.254:2379 refused this host\'s client certificate (ETCD_CERTFILE=/etc/of/c.crt, ETCD_KEYFILE=/etc/of/c.key): …';

/** An agent on a port whose config watch and keeper the test steers. */
function rig(name: string, extra: { wireguardClaims?: WireguardClaims; stateDir?: string } = {}) {
  const kernel = new FakeKernel();
  const eth = kernel.addDevice('eth0', { mtu: 1500, up: true, cidr: '192.0.2.1/24' });
  const pub: PublicInterface = { link: eth, address: '192.0.2.1', publicIP: '192.0.2.1', networks: [parseCidr('192.0.2.0/24')] };
  let onConfig: (s: ConfigState) => void = () => undefined;
  const steer = { configProblem: null as string | null, keeperProblem: null as string | null, keepers: 0 };
  const port: OverlayStorePort = {
    prefix: `/coreos.com/network-${name}`,
    watchConfig: (cb) => {
      onConfig = cb;
      return { stop: () => undefined, problem: () => (steer.configProblem ? { reason: steer.configProblem } : null) };
    },
    createKeeper: () => {
      steer.keepers++;
      const keeper = Object.assign(new EventEmitter(), {
        acquire: () => new Promise<never>(() => undefined), // etcd keeps refusing
        current: () => null,
        problem: () => steer.keeperProblem,
        stop: async () => undefined,
      });
      return keeper as unknown as LeaseKeeper;
    },
    watchLeases: () => ({ stop: () => undefined }),
  };
  const agent = new OverlayAgent(port, kernel, new SerialQueue(), pub, log, {
    name,
    tuning: { ttlSec: 60, renewMarginSec: 10, resyncIntervalMs: 60_000, ipMasq: false, notrack: false, stateDir: extra.stateDir ?? '/nonexistent' },
    ...(extra.wireguardClaims ? { wireguardClaims: extra.wireguardClaims } : {}),
  });
  return { agent, steer, config: (raw: string | null) => onConfig(configStateOf(raw)) };
}

test('not ready: each state names its cause and the fix', async () => {
  const { agent, steer, config } = rig('blue');
  await agent.start();
  assert.equal(agent.notReadyReason(), 'no lease yet: etcd has not answered yet');

  steer.configProblem = REFUSED; // the config watch cannot list
  assert.equal(agent.notReadyReason(), `no lease yet: ${REFUSED}`);

  steer.configProblem = null;
  config(null);
  assert.equal(agent.notReadyReason(), 'it has no config at /coreos.com/network-blue/config: write one with overlay-flannel config set --name blue --network CIDR');

  config('{"Network":"10.9.0.0/16","SubnetLen":33}');
  assert.match(agent.notReadyReason(), /^its config at \/coreos\.com\/network-blue\/config is invalid: .*"SubnetLen" must be between 0 and 32, got 33; write a valid one with overlay-flannel config set --name blue --network CIDR$/);

  config('{"Network":"10.9.0.0/16","Backend":{"Type":"vxlan","VNI":9}}');
  for (let i = 0; i < 100 && steer.keepers === 0; i++) await new Promise((r) => setImmediate(r)); // join() makes its keeper
  assert.equal(agent.state, 'acquiring');
  assert.equal(agent.notReadyReason(), 'no lease yet: still acquiring one');
  steer.keeperProblem = 'etcd at http://192.0.2.254:2379 rejected the credentials of user "root" (authentication failed): check ETCD_USERNAME/ETCD_PASSWORD';
  assert.equal(agent.notReadyReason(), `no lease yet: ${steer.keeperProblem}`);
  await agent.stop();
});

test('not ready: the default overlay\'s fix has no --name', async () => {
  const { agent, config } = rig('default');
  await agent.start();
  config(null);
  assert.match(agent.notReadyReason(), /write one with overlay-flannel config set --network CIDR$/);
  await agent.stop();
});

test('not ready: a named wireguard overlay on the port another wireguard overlay of this host holds is refused, and joins once its config names its own ListenPort', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'of-wg-claims-'));
  const claims = new WireguardClaims();
  const def = rig('default', { wireguardClaims: claims, stateDir: dir });
  const blue = rig('blue', { wireguardClaims: claims, stateDir: dir });
  try {
    await def.agent.start();
    await blue.agent.start();
    def.config('{"Network":"10.8.0.0/16","Backend":{"Type":"wireguard"}}');
    blue.config('{"Network":"10.9.0.0/16","Backend":{"Type":"wireguard"}}');
    const until = async (done: () => boolean) => {
      for (const end = Date.now() + 5000; !done() && Date.now() < end;) await new Promise((r) => setTimeout(r, 5)); // the key file is real I/O
    };
    await until(() => def.steer.keepers > 0 && blue.agent.state === 'config-invalid');
    assert.equal(def.steer.keepers, 1, 'the default overlay asks for a lease');
    assert.equal(blue.agent.state, 'config-invalid');
    assert.equal(blue.steer.keepers, 0);
    assert.match(blue.agent.notReadyReason(), /is invalid: ListenPort 51820 is already the port of the wireguard overlay "default" \(flannel-wg\) on this host; each wireguard overlay needs its own: set "ListenPort"/);
    blue.config('{"Network":"10.9.0.0/16","Backend":{"Type":"wireguard","ListenPort":51821}}');
    await until(() => blue.steer.keepers > 0);
    assert.equal(blue.steer.keepers, 1, 'a fixed config is joined without a restart');
    assert.equal(blue.agent.state, 'acquiring');
    assert.deepEqual([...claims.list()], [['default', [{ device: 'flannel-wg', port: 51820, field: 'ListenPort' }]], ['blue', [{ device: 'fwg-blue', port: 51821, field: 'ListenPort' }]]]);
    assert.deepEqual(readdirSync(dir).sort(), ['wireguard-blue.key', 'wireguard.key'], 'one key per overlay');
  } finally {
    await def.agent.stop();
    await blue.agent.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(claims.list().size, 0, 'stopped agents release their port');
});

test('not ready: a second dual-stack wireguard overlay on the ListenPortV6 the default one holds is refused naming ListenPortV6, and joins on its own', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'of-wg-claims6-'));
  const claims = new WireguardClaims();
  const def = rig('default', { wireguardClaims: claims, stateDir: dir });
  const blue = rig('blue', { wireguardClaims: claims, stateDir: dir });
  const dual = (net: string, backend: string) => `{"Network":"10.${net}.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:${net}::/48","Backend":{"Type":"wireguard"${backend}}}`;
  try {
    await def.agent.start();
    await blue.agent.start();
    def.config(dual('8', ''));
    blue.config(dual('9', ',"ListenPort":51830')); // its own ListenPort, but ListenPortV6 left at 51821
    const until = async (done: () => boolean) => {
      for (const end = Date.now() + 5000; !done() && Date.now() < end;) await new Promise((r) => setTimeout(r, 5)); // the key file is real I/O
    };
    await until(() => def.steer.keepers > 0 && blue.agent.state === 'config-invalid');
    assert.equal(def.steer.keepers, 1, 'the default overlay asks for a lease');
    assert.equal(blue.agent.state, 'config-invalid');
    assert.equal(blue.steer.keepers, 0, 'refused before any lease is asked for');
    assert.match(blue.agent.notReadyReason(), /is invalid: ListenPortV6 51821 is already the port of the wireguard overlay "default" \(flannel-wg-v6, its "ListenPortV6"\) on this host; .*set "ListenPortV6"/);
    blue.config(dual('9', ',"ListenPort":51830,"ListenPortV6":51820')); // v6 on the default's v4 port: a port is a port
    await until(() => /ListenPortV6 51820/.test(blue.agent.notReadyReason()));
    assert.match(blue.agent.notReadyReason(), /ListenPortV6 51820 is already the port of the wireguard overlay "default" \(flannel-wg, its "ListenPort"\)/);
    assert.equal(blue.steer.keepers, 0);
    blue.config(dual('9', ',"ListenPort":51830,"ListenPortV6":51831'));
    await until(() => blue.steer.keepers > 0);
    assert.equal(blue.steer.keepers, 1, 'a fixed config is joined without a restart');
    assert.deepEqual(claims.list().get('default')?.map((c) => `${c.device}:${c.port}`), ['flannel-wg:51820', 'flannel-wg-v6:51821']);
    assert.deepEqual(claims.list().get('blue')?.map((c) => `${c.device}:${c.port}`), ['fwg-blue:51830', 'fw6-blue:51831']);
  } finally {
    await def.agent.stop();
    await blue.agent.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(claims.list().size, 0, 'stopped agents release their ports');
});

test('not ready: an EnableIPv6 config is refused naming what is not built (issue 21); no lease is asked for', async () => {
  const { agent, steer, config } = rig('six');
  await agent.start();
  config('{"Network":"10.9.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:9::/48","Backend":{"Type":"host-gw"}}');
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  assert.equal(agent.state, 'config-invalid');
  assert.equal(steer.keepers, 0);
  assert.match(agent.notReadyReason(), /is invalid: EnableIPv6 with the host-gw backend: IPv6 leases are supported, but .*not built yet in overlay-flannel \(issue 21\)/);
  await agent.stop();
});

test('not ready: a dual-stack wireguard config in Mode "auto" is refused naming "separate"; in Mode "separate" it is not refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'of-wg6-')); // the key is written there (never outside the test's own folder)
  const { agent, steer, config } = rig('wg6', { stateDir: dir });
  try {
    await agent.start();
    config('{"Network":"10.9.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:9::/48","Backend":{"Type":"wireguard","Mode":"auto"}}');
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    assert.equal(agent.state, 'config-invalid');
    assert.equal(steer.keepers, 0);
    assert.match(agent.notReadyReason(), /is invalid: EnableIPv6 with wireguard Mode "auto": .*use Mode "separate"/);
    config('{"Network":"10.9.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:9::/48","Backend":{"Type":"wireguard"}}');
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    assert.notEqual(agent.state, 'config-invalid');
    assert.doesNotMatch(agent.notReadyReason() ?? '', /EnableIPv6/);
    await agent.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
