// Minimal DNS wire helpers for the spike: parse ONE question from a query (strictly: no
// compression in the question, labels <= 63, name <= 255, QR=0, OPCODE=0, QDCOUNT=1) and build an
// A/AAAA answer that fits `maxSize` (no TC ever: fewer addresses instead). Hostile input -> null.
export function parseQuery(buf, off = 0) {
  if (buf.length - off < 17) return null;
  const flags = buf.readUInt16BE(off + 2);
  if (flags & 0x8000 || (flags >> 11) & 0xf) return null; // a response, or not a standard query
  if (buf.readUInt16BE(off + 4) !== 1) return null; // QDCOUNT
  let p = off + 12; const labels = []; let total = 0;
  for (;;) {
    if (p >= buf.length) return null;
    const len = buf[p++];
    if (len === 0) break;
    if (len > 63 || p + len > buf.length) return null; // also rejects compression pointers (0xc0)
    total += len + 1; if (total > 254) return null;
    labels.push(buf.toString('latin1', p, p + len).toLowerCase()); p += len;
  }
  if (p + 4 > buf.length) return null;
  const qtype = buf.readUInt16BE(p), qclass = buf.readUInt16BE(p + 2);
  const arcount = buf.readUInt16BE(off + 10);
  let udpSize = 512;
  // EDNS0 OPT right after the question (the common layout): name 0, type 41, class = UDP size
  if (arcount >= 1 && p + 4 + 11 <= buf.length && buf[p + 4] === 0 && buf.readUInt16BE(p + 5) === 41) udpSize = Math.max(512, Math.min(4096, buf.readUInt16BE(p + 7)));
  return { id: buf.readUInt16BE(off), rd: (flags >> 8) & 1, labels, name: labels.join('.'), qtype, qclass, questionEnd: p + 4 - off, udpSize };
}
const ip4 = (s) => Buffer.from(s.split('.').map(Number));
/** Response to query `q` (raw bytes `raw`): rcode, and A (qtype 1) records for `addrs` (rotated by caller). */
export function buildAnswer(raw, q, addrs, { ttl = 5, rcode = 0 } = {}) {
  const question = raw.subarray(12, q.questionEnd);
  const per = 16; // c00c ptr(2) type(2) class(2) ttl(4) rdlen(2) a(4)
  const room = Math.max(0, Math.floor((Math.min(q.udpSize, 512) - 12 - question.length) / per));
  const list = q.qtype === 1 ? addrs.slice(0, room) : [];
  const out = Buffer.alloc(12 + question.length + per * list.length);
  out.writeUInt16BE(q.id, 0);
  out.writeUInt16BE(0x8000 | 0x0400 | (q.rd << 8) | 0x0080 | rcode, 2); // QR AA RD RA
  out.writeUInt16BE(1, 4); out.writeUInt16BE(list.length, 6);
  question.copy(out, 12);
  let p = 12 + question.length;
  for (const a of list) {
    out.writeUInt16BE(0xc00c, p); out.writeUInt16BE(1, p + 2); out.writeUInt16BE(1, p + 4);
    out.writeUInt32BE(ttl, p + 6); out.writeUInt16BE(4, p + 10); ip4(a).copy(out, p + 12); p += per;
  }
  return out;
}
