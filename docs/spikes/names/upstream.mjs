// Tiny upstream DNS server for the lab (UDP + TCP on 192.0.2.254:53 inside the "up" netns).
// *.example.test -> A 203.0.113.<n>; big.example.test -> 60 A records (TC over UDP > 512 B);
// anything else NXDOMAIN. Prints a count of queries per name on SIGUSR2 / exit.
import dgram from 'node:dgram';
import net from 'node:net';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const dns = require('dns-packet');
const addr = process.argv[2] ?? '192.0.2.254';
const seen = new Map();
function answer(q, tcp) {
  const qs = q.questions?.[0];
  const name = (qs?.name ?? '').toLowerCase();
  seen.set(name, (seen.get(name) ?? 0) + 1);
  const base = { id: q.id, type: 'response', flags: dns.RECURSION_AVAILABLE | dns.RECURSION_DESIRED, questions: q.questions };
  if (!name.endsWith('example.test')) return dns.encode({ ...base, flags: base.flags | 3 /* NXDOMAIN */ });
  if (qs.type !== 'A') return dns.encode(base);
  const n = name === 'big.example.test' ? 60 : 1;
  const answers = Array.from({ length: n }, (_, i) => ({ type: 'A', name: qs.name, ttl: 30, data: `203.0.113.${i + 1}` }));
  let out = dns.encode({ ...base, answers });
  if (!tcp && out.length > 512) out = dns.encode({ ...base, flags: base.flags | dns.TRUNCATED_RESPONSE, answers: [] });
  return out;
}
const udp = dgram.createSocket('udp4');
udp.on('message', (m, r) => { try { udp.send(answer(dns.decode(m), false), r.port, r.address); } catch { /* hostile input: drop */ } });
udp.bind(53, addr);
net.createServer((s) => {
  let buf = Buffer.alloc(0);
  s.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const len = buf.readUInt16BE(0); const m = buf.subarray(2, 2 + len); buf = buf.subarray(2 + len);
      try { const a = answer(dns.decode(m), true); const h = Buffer.alloc(2); h.writeUInt16BE(a.length); s.write(Buffer.concat([h, a])); } catch { s.destroy(); }
    }
  });
  s.on('error', () => {});
}).listen(53, addr);
const dump = () => console.log(JSON.stringify({ upstreamSeen: Object.fromEntries(seen) }));
process.on('SIGUSR2', dump);
process.on('SIGTERM', () => { dump(); process.exit(0); });
console.log('upstream ready');
