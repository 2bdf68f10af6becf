// Cost of asking conntrack for a flow's ORIGINAL destination (alternative (a): DNAT every query to
// a forwarding resolver, which must then learn where the container's Docker meant to send it).
// Run in the lab's host netns: makes one UDP flow 192.0.2.1:P -> 192.0.2.254:53, then N sequential
// IPCTNL_MSG_CT_GET by REPLY tuple (what a DNAT-all resolver would have: its own addr:port and the
// client's), each reading back CTA_TUPLE_ORIG's destination. usage: node ct-get.mjs [N]
import dgram from 'node:dgram';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const { RawNetlinkSocket } = require('netlink');
const N = Number(process.argv[2] ?? 2000);
function attr(type, value) { const len = 4 + value.length; const b = Buffer.alloc((len + 3) & ~3); b.writeUInt16LE(len, 0); b.writeUInt16LE(type, 2); value.copy(b, 4); return b; }
const nest = (t, ...a) => attr(t | 0x8000, Buffer.concat(a));
const ip = (s) => Buffer.from(s.split('.').map(Number));
const be16 = (n) => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; };
const s = dgram.createSocket('udp4');
await new Promise((r) => s.bind(0, '192.0.2.1', r));
const P = s.address().port;
await new Promise((r) => s.send(Buffer.from('x'), 53, '192.0.2.254', r));
// reply tuple of that flow: 192.0.2.254:53 -> 192.0.2.1:P
const tuple = nest(2 /* CTA_TUPLE_REPLY */, nest(1 /* CTA_TUPLE_IP */, attr(1, ip('192.0.2.254')), attr(2, ip('192.0.2.1'))),
  nest(2 /* CTA_TUPLE_PROTO */, attr(1, Buffer.from([17])), attr(2, be16(53)), attr(3, be16(P))));
const nl = new RawNetlinkSocket(12);
let seq = 1;
function get() {
  const payload = Buffer.concat([Buffer.from([2 /* AF_INET */, 0, 0, 0]), tuple]);
  const h = Buffer.alloc(16); h.writeUInt32LE(16 + payload.length, 0); h.writeUInt16LE((1 << 8) | 1 /* CTNETLINK, CT_GET */, 4); h.writeUInt16LE(1, 6); h.writeUInt32LE(seq++, 8);
  return new Promise((resolve) => { nl.once('message', (m) => resolve(m)); nl.send(Buffer.concat([h, payload])); });
}
function origDst(m) {
  if (m.readUInt16LE(4) === 2) return `error ${m.readInt32LE(16)}`;
  // walk top-level attrs after nfgenmsg; CTA_TUPLE_ORIG(1) > CTA_TUPLE_IP(1) > CTA_IP_V4_DST(2)
  const walk = (buf, off, end, want) => { for (let a = off; a + 4 <= end;) { const l = buf.readUInt16LE(a), t = buf.readUInt16LE(a + 2) & 0x3fff; if (l < 4) break; if (t === want) return [a + 4, a + l]; a += (l + 3) & ~3; } return null; };
  const o = walk(m, 20, m.readUInt32LE(0), 1); const i = o && walk(m, o[0], o[1], 1); const d = i && walk(m, i[0], i[1], 2);
  return d ? [...m.subarray(d[0], d[0] + 4)].join('.') : 'no orig dst';
}
const lat = []; let answer;
for (let k = 0; k < N; k++) { const t0 = process.hrtime.bigint(); const m = await get(); lat.push(Number(process.hrtime.bigint() - t0) / 1000); if (k === 0) answer = origDst(m); }
lat.sort((a, b) => a - b);
console.log(JSON.stringify({ ctGet: N, origDst: answer, p50us: +lat[N >> 1].toFixed(1), p99us: +lat[Math.floor(N * 0.99)].toFixed(1), maxus: +lat[N - 1].toFixed(1) }));
nl.close(); s.close();
