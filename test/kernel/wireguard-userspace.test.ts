// The userspace WireGuard device against the real wireguard-go, in the test's own netns (and its
// own mount namespace for the UAPI socket): key, port and peers set over UAPI, read back with
// get=1 and with `wg show` (wireguard-tools) through the same socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { UserspaceWireguard } from '../../src/kernel/wireguard-userspace';
import { generateWireguardKeyPair } from '../../src/host/wireguard-key';

test('wireguard-go flannel-wg: set key, port and peers over UAPI; get=1 and wg show agree; a removed peer goes', async () => {
  const wg = new UserspaceWireguard({ name: 'flannel-wg', privateSocketDir: true });
  try {
    await wg.ensureDevice();
    assert.match(execFileSync('ip', ['-d', 'link', 'show', 'flannel-wg']).toString(), /tun/);
    const me = generateWireguardKeyPair();
    const a = generateWireguardKeyPair();
    const b = generateWireguardKeyPair();
    await wg.configure({ privateKey: me.privateKey, listenPort: 51820 });
    await wg.setPeers([
      { publicKey: a.publicKey, endpoint: '192.0.2.2:51820', allowedIPs: ['10.9.2.0/24'] },
      { publicKey: b.publicKey, endpoint: '192.0.2.3:51820', allowedIPs: ['10.9.3.0/24'], persistentKeepalive: 25 },
    ]);
    const got = await wg.get();
    assert.equal(got.privateKey, me.privateKey);
    assert.equal(got.listenPort, 51820);
    const byKey = new Map(got.peers.map((p) => [p.publicKey, p]));
    assert.deepEqual(byKey.get(a.publicKey), { publicKey: a.publicKey, endpoint: '192.0.2.2:51820', allowedIPs: ['10.9.2.0/24'] });
    assert.deepEqual(byKey.get(b.publicKey), { publicKey: b.publicKey, endpoint: '192.0.2.3:51820', allowedIPs: ['10.9.3.0/24'], persistentKeepalive: 25 });
    const show = () => execFileSync('nsenter', [`--mount=/proc/${wg.pid}/ns/mnt`, 'wg', 'show', 'flannel-wg', 'dump'], { timeout: 5000 }).toString().trim().split('\n').map((l) => l.split('\t'));
    const [dev, ...peers] = show();
    assert.deepEqual([dev[1], dev[2]], [me.publicKey, '51820']);
    assert.deepEqual(peers.map((p) => [p[0], p[2], p[3]]).sort(), [[a.publicKey, '192.0.2.2:51820', '10.9.2.0/24'], [b.publicKey, '192.0.2.3:51820', '10.9.3.0/24']].sort());
    await wg.setPeers([{ publicKey: a.publicKey, endpoint: '192.0.2.4:51820', allowedIPs: ['10.9.4.0/24'] }]); // changed
    await wg.removePeers([b.publicKey]);
    assert.deepEqual((await wg.get()).peers, [{ publicKey: a.publicKey, endpoint: '192.0.2.4:51820', allowedIPs: ['10.9.4.0/24'] }]);
    assert.deepEqual(show().slice(1).map((p) => [p[0], p[2], p[3]]), [[a.publicKey, '192.0.2.4:51820', '10.9.4.0/24']]);
  } finally {
    await wg.close();
  }
  // the TUN device goes with the process
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && execFileSync('ip', ['link', 'show']).toString().includes('flannel-wg')) await new Promise((r) => setTimeout(r, 50));
  assert.doesNotMatch(execFileSync('ip', ['link', 'show']).toString(), /flannel-wg/);
});
