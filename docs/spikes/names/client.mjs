// Query client run in the "container" netns, behaving like Docker's embedded resolver when it
// forwards a miss (libnetwork resolver.go ServeDNS): a NEW connected socket per query to the
// upstream on port 53, a deadline per query. Sequential, bounded in count and time.
// usage: node client.mjs --server 192.0.2.254 --names c2,www.example.test --count 2000
//        [--type A|AAAA] [--tcp] [--interval-ms 0] [--timeout-ms 2000] [--max-seconds 60]
import dgram from 'node:dgram';
import net from 'node:net';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const dns = require('dns-packet');
const arg = (k, d) => { const i = process.argv.indexOf(`--${k}`); return i < 0 ? d : process.argv[i + 1]; };
const server = arg('server', '192.0.2.254');
const names = arg('names', 'www.example.test').split(',');
const count = Number(arg('count', '1000'));
const type = arg('type', 'A');
const tcp = process.argv.includes('--tcp');
const intervalMs = Number(arg('interval-ms', '0'));
const timeoutMs = Number(arg('timeout-ms', '2000'));
const deadline = Date.now() + Number(arg('max-seconds', '60')) * 1000;
function udpQuery(buf) {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const t = setTimeout(() => { s.close(); resolve({ err: 'timeout' }); }, timeoutMs);
    s.on('error', (e) => { clearTimeout(t); s.close(); resolve({ err: e.code }); });
    s.on('message', (m) => { clearTimeout(t); s.close(); resolve({ msg: m }); });
    s.connect(53, server, () => s.send(buf));
  });
}
function tcpQuery(buf) {
  return new Promise((resolve) => {
    const s = net.connect(53, server);
    let got = Buffer.alloc(0);
    const t = setTimeout(() => { s.destroy(); resolve({ err: 'timeout' }); }, timeoutMs);
    s.on('connect', () => { const h = Buffer.alloc(2); h.writeUInt16BE(buf.length); s.write(Buffer.concat([h, buf])); });
    s.on('data', (d) => { got = Buffer.concat([got, d]); if (got.length >= 2 && got.length >= 2 + got.readUInt16BE(0)) { clearTimeout(t); s.destroy(); resolve({ msg: got.subarray(2, 2 + got.readUInt16BE(0)) }); } });
    s.on('error', (e) => { clearTimeout(t); s.destroy(); resolve({ err: e.code }); });
  });
}
const lat = []; const outcomes = {}; const timeline = [];
for (let i = 0; i < count && Date.now() < deadline; i++) {
  const name = names[i % names.length];
  const q = dns.encode({ id: (Math.random() * 65535) | 0, type: 'query', flags: dns.RECURSION_DESIRED, questions: [{ type, name }] });
  const t0 = process.hrtime.bigint();
  const r = await (tcp ? tcpQuery(q) : udpQuery(q));
  const us = Number(process.hrtime.bigint() - t0) / 1000;
  let key;
  if (r.err) key = `${name}:${r.err}`;
  else { const a = dns.decode(r.msg); key = `${name}:${a.rcode}${a.flags & dns.TRUNCATED_RESPONSE ? '+TC' : ''}:${a.answers.map((x) => x.data).slice(0, 3).join('/')}${a.answers.length > 3 ? `…(${a.answers.length})` : ''}`; lat.push(us); }
  outcomes[key] = (outcomes[key] ?? 0) + 1;
  timeline.push([Date.now(), key.includes('timeout') || key.includes('ECONN') ? 'F' : 'ok']);
  if (intervalMs) await new Promise((r) => setTimeout(r, intervalMs));
}
lat.sort((a, b) => a - b);
const p = (x) => lat.length ? Math.round(lat[Math.min(lat.length - 1, Math.floor(lat.length * x))]) : null;
// failure runs: longest consecutive failure window (for the kill test)
let run = 0, worst = 0, runStart = 0, worstMs = 0;
for (const [ts, k] of timeline) { if (k === 'F') { if (!run) runStart = ts; run++; if (run > worst) { worst = run; worstMs = ts - runStart; } } else run = 0; }
console.log(JSON.stringify({ server, type, tcp, sent: timeline.length, answered: lat.length, p50us: p(0.5), p99us: p(0.99), maxus: p(1), outcomes, longestFailureRun: worst, longestFailureRunMs: worstMs }));
