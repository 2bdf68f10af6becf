// Per-packet cost of rejecting hostile input: random 0..600-byte buffers, our parser vs dns-packet.
import { createRequire } from 'node:module';
import { parseQuery } from './dnswire.mjs';
const dns = createRequire(import.meta.url)('dns-packet');
let seed = 99; const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
const bufs = Array.from({ length: 5000 }, () => { const b = Buffer.alloc((rnd() * 600) | 0); for (let k = 0; k < b.length; k++) b[k] = (rnd() * 256) | 0; return b; });
const time = (f) => { const t = process.hrtime.bigint(); let worst = 0; for (const b of bufs) { const s = process.hrtime.bigint(); try { f(b); } catch {} const d = Number(process.hrtime.bigint() - s); if (d > worst) worst = d; } return { meanUs: +(Number(process.hrtime.bigint() - t) / bufs.length / 1000).toFixed(2), worstUs: +(worst / 1000).toFixed(1) }; };
console.log(JSON.stringify({ randomPackets: bufs.length, ours: time(parseQuery), dnsPacket: time((b) => dns.decode(b)) }));
