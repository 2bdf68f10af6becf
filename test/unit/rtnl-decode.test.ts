// The dump decoders' address text (rtnl-messages.ts writes it through a scratch buffer): every octet
// value in every position reads back as the dotted / colon text the encoder was given.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeNeigh, decodeRoute, neighMessage, NUD_PERMANENT, routeMessage, RTM_NEWNEIGH, RTM_NEWROUTE } from '../../src/kernel/rtnl-messages';

const HEADER = 16;
const hex = (v: number) => v.toString(16).padStart(2, '0');

test('neighbour dumps: IPv4 and MAC text for every octet value in every position', () => {
  for (let v = 0; v < 256; v++) {
    for (let pos = 0; pos < 6; pos++) {
      const octets = [10, 1, 2, 3].map((o, i) => (i === pos % 4 ? v : o));
      const ip = octets.join('.');
      const mac = [2, 0, 0, 0, 0, 1].map((o, i) => hex(i === pos ? v : o)).join(':');
      const m = neighMessage(RTM_NEWNEIGH, 0, { family: 2, ifindex: 7, state: NUD_PERMANENT, ntfFlags: 0, dst: ip, lladdr: mac });
      const n = decodeNeigh(m, HEADER, m.length);
      assert.deepEqual(n && { dst: n.dst, lladdr: n.lladdr, ifindex: n.ifindex }, { dst: ip, lladdr: mac, ifindex: 7 }, `${ip} ${mac}`);
    }
  }
});

test('route dumps: destination and gateway text; two decodes do not share their text', () => {
  const ipInt = (s: string) => s.split('.').reduce((a, o) => a * 256 + Number(o), 0);
  const decoded = [];
  for (const [dst, gw] of [['10.0.0.0', '10.0.0.0'], ['10.255.199.0', '10.255.199.0'], ['192.0.2.0', '203.0.113.254'], ['0.9.99.100', '1.10.100.255']]) {
    const m = routeMessage(RTM_NEWROUTE, 0, { dstLen: 24, dst: ipInt(dst), gateway: ipInt(gw), table: 254, protocol: 3, scope: 0, type: 1, flags: 4, oif: 9 });
    const r = decodeRoute(m, HEADER, m.length);
    assert.deepEqual(r && { dst: r.dst, gateway: r.gateway, oif: r.oif, dstLen: r.dstLen }, { dst, gateway: gw, oif: 9, dstLen: 24 });
    decoded.push(r);
  }
  assert.deepEqual(decoded.map((r) => r?.dst), ['10.0.0.0', '10.255.199.0', '192.0.2.0', '0.9.99.100'], 'earlier results unchanged by later decodes');
});

test('write encoding: a MAC in upper case encodes as in lower case; a bad MAC or IPv4 is refused naming the field', () => {
  const enc = (mac: string, dst = '10.1.2.0') => neighMessage(RTM_NEWNEIGH, 0, { family: 2, ifindex: 3, state: NUD_PERMANENT, ntfFlags: 0, dst, lladdr: mac });
  assert.deepEqual(enc('0E:2A:FF:02:03:04'), enc('0e:2a:ff:02:03:04'));
  assert.equal(decodeNeigh(enc('0E:2A:FF:02:03:04'), HEADER)?.lladdr, '0e:2a:ff:02:03:04');
  for (const dst of ['0.0.0.0', '255.255.255.255', '1.20.199.250']) assert.equal(decodeNeigh(enc('02:00:00:00:00:01', dst), HEADER)?.dst, dst);
  assert.throws(() => enc('02:00:00:00:00'), /neighbour MAC: "02:00:00:00:00" is not a MAC address/);
  assert.throws(() => neighMessage(RTM_NEWNEIGH, 0, { family: 7, ifindex: 3, state: 0, ntfFlags: 0, dst: '192.0.2.1', lladdr: 'zz:00:00:00:00:01' }), /fdb MAC: "zz:00:00:00:00:01"/);
  assert.throws(() => enc('02:00:00:00:00:01', '10.1.2.256'), /neighbour IP: "10.1.2.256" is not an IPv4 address/);
});
