// The chosen mechanism, as a lab program in the host netns (rules: rules-nfqueue.sh):
// - NFQUEUE 53 over NETLINK_NETFILTER (nfnetlink_queue, raw netlink from node): every NEW udp/53
//   packet from a container veth comes here; we parse the question and give the verdict ACCEPT,
//   with mark 0x00100000 when the name is one of the SOURCE's network, untouched otherwise
//   (misses go on to whatever upstream Docker chose: same server, same packet, TCP fallback as before).
//   Queue flags: FAIL_OPEN (queue full -> accept) and the rule's --queue-bypass (no listener -> accept).
// - the answer socket 169.254.53.53:53 gets the marked (DNATed) queries and answers them;
//   conntrack rewrites the reply's source back to the upstream the container asked.
import dgram from 'node:dgram';
import { createRequire } from 'node:module';
import { parseQuery, buildAnswer } from './dnswire.mjs';
import { networkOf, lookup } from './names-table.mjs';
const require = createRequire(import.meta.url);
const { RawNetlinkSocket } = require('netlink');
const QUEUE = 53, MARK = 0x00100000;
const stats = { queued: 0, marked: 0, passed: 0, malformed: 0, answered: 0, verdictUsMax: 0, verdictUsSum: 0 };

const NFNL_SUBSYS_QUEUE = 3, NFQNL_MSG_PACKET = 0, NFQNL_MSG_VERDICT = 1, NFQNL_MSG_CONFIG = 2;
let seq = 1;
function attr(type, value) { const len = 4 + value.length; const b = Buffer.alloc((len + 3) & ~3); b.writeUInt16LE(len, 0); b.writeUInt16LE(type, 2); value.copy(b, 4); return b; }
function msg(type, flags, body, family = 2) {
  const payload = Buffer.concat([Buffer.from([family, 0, QUEUE >> 8, QUEUE & 0xff]), ...body]);
  const h = Buffer.alloc(16); h.writeUInt32LE(16 + payload.length, 0); h.writeUInt16LE((NFNL_SUBSYS_QUEUE << 8) | type, 4); h.writeUInt16LE(flags, 6); h.writeUInt32LE(seq++, 8);
  return Buffer.concat([h, payload]);
}
const be32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32BE(n >>> 0); return b; };
const sock = new RawNetlinkSocket(12, { recvBufferSize: 1 << 20, sendBufferSize: 1 << 20 });
const REQ = 1, ACK = 4;
const cmd = (c) => attr(1 /* NFQA_CFG_CMD */, Buffer.from([c, 0, 0, 2 /* AF_INET */]));
sock.send(msg(NFQNL_MSG_CONFIG, REQ | ACK, [cmd(1 /* BIND */)], 0));
sock.send(msg(NFQNL_MSG_CONFIG, REQ | ACK, [attr(2 /* PARAMS */, Buffer.concat([be32(600), Buffer.from([2 /* COPY_PACKET */])])), attr(3 /* QUEUE_MAXLEN */, be32(Number(process.env.QUEUE_MAXLEN ?? 1024))), attr(4 /* MASK */, be32(1 /* FAIL_OPEN */)), attr(5 /* FLAGS */, be32(1))], 0));

function verdict(id, mark) {
  const body = [attr(2 /* NFQA_VERDICT_HDR */, Buffer.concat([be32(1 /* NF_ACCEPT */), be32(id)]))];
  if (mark !== undefined) body.push(attr(3 /* NFQA_MARK */, be32(mark)));
  sock.send(msg(NFQNL_MSG_VERDICT, REQ, body, 0));
}
function decide(pkt) {
  // IPv4 + UDP + DNS; anything we do not understand passes untouched.
  if (pkt.length < 28 || pkt[0] >> 4 !== 4) return null;
  const ihl = (pkt[0] & 0xf) * 4; if (pkt[9] !== 17 || pkt.length < ihl + 8) return null;
  const src = `${pkt[12]}.${pkt[13]}.${pkt[14]}.${pkt[15]}`;
  const q = parseQuery(pkt, ihl + 8); if (!q) { stats.malformed++; return null; }
  if (q.qclass !== 1 || (q.qtype !== 1 && q.qtype !== 28)) return null;
  return lookup(networkOf(src), q.name) ? true : null;
}
sock.on('message', (buf) => {
  for (let off = 0; off + 16 <= buf.length;) {
    const len = buf.readUInt32LE(off), type = buf.readUInt16LE(off + 4);
    if (len < 16 || off + len > buf.length) break;
    if (type === 2 /* NLMSG_ERROR */) { const e = buf.readInt32LE(off + 16); if (e) console.error('netlink error', e); }
    else if (type === ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET)) {
      const t0 = process.hrtime.bigint();
      let id = -1, mark = 0, payload = null;
      for (let a = off + 20; a + 4 <= off + len;) {
        const al = buf.readUInt16LE(a), at = buf.readUInt16LE(a + 2) & 0x3fff; if (al < 4) break;
        if (at === 1) id = buf.readUInt32BE(a + 4); else if (at === 3) mark = buf.readUInt32BE(a + 4); else if (at === 10) payload = buf.subarray(a + 4, a + al);
        a += (al + 3) & ~3;
      }
      if (id >= 0) {
        stats.queued++;
        let hit = null; try { hit = payload ? decide(payload) : null; } catch { stats.malformed++; }
        if (hit) { stats.marked++; verdict(id, (mark | MARK) >>> 0); } else { stats.passed++; verdict(id); }
        const us = Number(process.hrtime.bigint() - t0) / 1000; stats.verdictUsSum += us; if (us > stats.verdictUsMax) stats.verdictUsMax = us;
      }
    }
    off += (len + 3) & ~3;
  }
});
sock.on('error', (e) => console.error('nfqueue socket', e.code));

const rr = new Map(); // rotation counter per network+name
const answerSock = dgram.createSocket('udp4');
answerSock.on('message', (m, r) => {
  let q; try { q = parseQuery(m); } catch { q = null; }
  if (!q) return; // hostile: drop
  const net = networkOf(r.address); const addrs = lookup(net, q.name);
  // raced with a record removal: SERVFAIL makes Docker try its next server (resolver.go ServeDNS)
  if (!addrs) { answerSock.send(buildAnswer(m, q, [], { rcode: 2 }), r.port, r.address); return; }
  const k = `${net.id}/${q.name}`; const n = rr.get(k) ?? 0; rr.set(k, n + 1);
  const rotated = addrs.map((_, i) => addrs[(i + n) % addrs.length]);
  stats.answered++;
  answerSock.send(buildAnswer(m, q, q.qtype === 1 ? rotated : []), r.port, r.address);
});
answerSock.bind(53, '169.254.53.53', () => console.log('resolver ready'));
const dump = () => console.log(JSON.stringify({ resolverStats: { ...stats, verdictUsMean: stats.queued ? +(stats.verdictUsSum / stats.queued).toFixed(1) : 0, rssMB: +(process.memoryUsage().rss / 1048576).toFixed(1) } }));
process.on('SIGUSR2', dump);
process.on('SIGTERM', () => { dump(); process.exit(0); });
