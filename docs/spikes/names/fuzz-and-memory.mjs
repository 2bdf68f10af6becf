// (1) Hostile input: random and mutated packets into our question parser (must never throw) and
//     into dns-packet's decode (throws: callers must catch; must not hang). Bounded count.
// (2) Memory: 10,000 name records held as the resolver would (per network: name -> addresses,
//     plus address -> network for the source lookup), heap and RSS delta.
import { createRequire } from 'node:module';
import { parseQuery } from './dnswire.mjs';
const require = createRequire(import.meta.url);
const dns = require('dns-packet');
const N = Number(process.argv[2] ?? 200000);
const good = dns.encode({ id: 7, type: 'query', flags: dns.RECURSION_DESIRED, questions: [{ type: 'A', name: 'web.appnet' }], additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232 }] });
let seed = 12345; const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
let ourThrows = 0, ourParsed = 0, pktThrows = 0, pktDecoded = 0;
const t0 = process.hrtime.bigint();
for (let i = 0; i < N; i++) {
  let b;
  if (i % 2) { b = Buffer.from(good); for (let k = 0; k < 1 + (rnd() * 4) | 0; k++) b[(rnd() * b.length) | 0] = (rnd() * 256) | 0; }
  else { b = Buffer.alloc((rnd() * 600) | 0); for (let k = 0; k < b.length; k++) b[k] = (rnd() * 256) | 0; if (b.length > 12 && i % 4 === 0) { b[2] = 1; b[4] = 0; b[5] = 1; } }
  if (i % 1000 === 0) { b = Buffer.from(good); b.writeUInt16BE(0xc00c, 12); } // compression pointer loop in question
  try { if (parseQuery(b)) ourParsed++; } catch { ourThrows++; }
  try { dns.decode(b); pktDecoded++; } catch { pktThrows++; }
}
const fuzzMs = Number(process.hrtime.bigint() - t0) / 1e6;
// decode speed of a normal query, both parsers
const M = 200000; let t = process.hrtime.bigint(); for (let i = 0; i < M; i++) parseQuery(good); const ourNs = Number(process.hrtime.bigint() - t) / M;
t = process.hrtime.bigint(); for (let i = 0; i < M; i++) dns.decode(good); const pktNs = Number(process.hrtime.bigint() - t) / M;
console.log(JSON.stringify({ fuzz: N, fuzzMs: Math.round(fuzzMs), ourThrows, ourParsed, pktThrows, pktDecoded, parseNsOurs: Math.round(ourNs), parseNsDnsPacket: Math.round(pktNs) }));

globalThis.gc?.(); const before = process.memoryUsage();
const byNetwork = new Map(); const byAddress = new Map();
for (let i = 0; i < 10000; i++) {
  const net = `net${i % 20}`; const ipA = `10.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
  const rec = { network: net, container: `container-name-${i}`, aliases: [`alias-${i}`, `svc-${i % 100}`], v4: [ipA], v6: [], host: `192.0.2.${1 + (i % 200)}`, endpoint: `${i.toString(16).padStart(12, '0')}abcdef`, key: `/coreos.com/network/overlay-flannel/names/${net}/${i.toString(16).padStart(12, '0')}abcdef` };
  let m = byNetwork.get(net); if (!m) byNetwork.set(net, (m = new Map()));
  for (const n of [rec.container, ...rec.aliases]) { const l = m.get(n); if (l) l.push(rec); else m.set(n, [rec]); }
  byAddress.set(ipA, rec);
}
globalThis.gc?.(); const after = process.memoryUsage();
console.log(JSON.stringify({ records: 10000, heapDeltaMB: +((after.heapUsed - before.heapUsed) / 1048576).toFixed(2), rssDeltaMB: +((after.rss - before.rss) / 1048576).toFixed(2), rssTotalMB: +(after.rss / 1048576).toFixed(1), keep: byNetwork.size + byAddress.size }));
