/**
 * Cross-host names in the kernel (src/kernel/nft-names.ts, nfqueue.ts) with real packets, in the
 * scratch netns as the "host": a "container" netns with a veth `ofh…` into it, an "upstream" netns
 * with a UDP listener on 192.0.2.254:53. Client and upstream are small python3 programs run with
 * `ip netns exec` (node cannot enter a netns); each answers in JSON lines.
 *  - the rules: written twice change nothing; removing them leaves the host's own raw rule and tables;
 *  - a plain ACCEPT: the datagram is queued to us with its payload and the veth's ifindex, and
 *    reaches the upstream unchanged;
 *  - a marked ACCEPT: DNATed to our answer socket on 169.254.53.53; the reply reaches the container
 *    from the upstream's address (conntrack zone + un-DNAT); the upstream never sees it;
 *  - the queue closed, or its process SIGKILLed: packets pass to the upstream (bypass).
 * The client's round trips through the queue and with the queue bypassed are printed (p50/p99).
 * Every namespace is named with this run's pid and removed after; every wait has a deadline.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { createSocket, type Socket } from 'node:dgram';
import { createInterface } from 'node:readline';
import { createNetlinkKernel, type NameInterceptionSpec, type QueuedPacket } from '../../src/kernel';
import { inScratchNetns, nftTableExists, run, SKIP_REASON } from './netns';

const execFileAsync = promisify(execFile);
const TAG = `kq${process.pid % 100000}`;
const C = `${TAG}-c`; // container netns
const U = `${TAG}-u`; // upstream netns
const VETH = `ofh${TAG}`; // host end of the container's veth
const UPV = `${TAG}u`; // host end towards the upstream
const SPEC: NameInterceptionSpec = { queue: 4153, markBit: 0x00100000, zone: 4153, answerAddress: '169.254.53.53', answerPort: 53, interfacePrefixes: ['ofh', 'ofb-'] };

const UPSTREAM_PY = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('192.0.2.254', 53)); print('ready', flush=True)
while True:
    m, a = s.recvfrom(2048); print(m.hex(), flush=True); s.sendto(b'UP:' + m, a)
`;
// argv: count, prefix -> one JSON line per query: payload sent, reply, its source, round trip in µs
const CLIENT_PY = `
import socket, sys, time, json
n, prefix = int(sys.argv[1]), sys.argv[2]
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2.0)
    m = ('%s-%d' % (prefix, i)).encode(); t0 = time.perf_counter()
    s.sendto(m, ('192.0.2.254', 53))
    try:
        r, a = s.recvfrom(2048); print(json.dumps({'sent': m.decode(), 'reply': r.decode(), 'from': a[0], 'us': (time.perf_counter() - t0) * 1e6}))
    except socket.timeout:
        print(json.dumps({'sent': m.decode(), 'reply': None}))
    s.close()
`;
// argv: count -> sends count datagrams at once from one socket, then prints how many replies came within 2 s
const BURST_PY = `
import socket, sys, time
n = int(sys.argv[1]); s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.2)
for i in range(n): s.sendto(b'burst-%d' % i, ('192.0.2.254', 53))
got, end = 0, time.time() + 2.0
while time.time() < end:
    try: s.recvfrom(2048); got += 1
    except socket.timeout: pass
print(got)
`;
interface Reply { sent: string; reply: string | null; from?: string; us?: number }
// async: the queue's handler runs in this process's event loop while the client waits
const client = async (n: number, prefix: string): Promise<Reply[]> =>
  (await execFileAsync('ip', ['netns', 'exec', C, 'python3', '-c', CLIENT_PY, String(n), prefix], { encoding: 'utf8', timeout: 60_000 })).stdout.trim().split('\n').map((l) => JSON.parse(l) as Reply);
const udpPayload = (p: Buffer): string => p.subarray((p[0]! & 0xf) * 4 + 8).toString();
const pct = (xs: number[], q: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;

if (!inScratchNetns()) {
  describe('names interception with real packets', () => it('runs in a scratch network namespace', () => assert.fail(SKIP_REASON)));
} else {
  describe('names interception with real packets (container netns → queue → upstream / answer socket)', () => {
    const kernel = createNetlinkKernel({ timeoutMs: 5000 });
    let upstream: ChildProcess;
    const upstreamGot: string[] = [];
    let answer: Socket;
    let vethIndex = 0;

    before(async () => {
      for (const t of ['raw', 'overlay-flannel-dns']) if (nftTableExists(t)) throw new Error(`table ip ${t} already exists in the scratch netns; this test owns it`);
      run('ip', 'netns', 'add', C);
      run('ip', 'netns', 'add', U);
      run('ip', 'link', 'add', VETH, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', C);
      run('ip', 'link', 'add', UPV, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', U);
      run('ip', 'addr', 'add', '10.99.0.1/24', 'dev', VETH);
      run('ip', 'addr', 'add', '192.0.2.1/24', 'dev', UPV);
      run('ip', 'addr', 'add', `${SPEC.answerAddress}/32`, 'dev', 'lo');
      for (const d of [VETH, UPV]) run('ip', 'link', 'set', d, 'up');
      for (const [ns, addr, gw] of [[C, '10.99.0.2/24', '10.99.0.1'], [U, '192.0.2.254/24', '192.0.2.1']] as const) {
        run('ip', '-n', ns, 'addr', 'add', addr, 'dev', 'eth0');
        run('ip', '-n', ns, 'link', 'set', 'eth0', 'up');
        run('ip', '-n', ns, 'link', 'set', 'lo', 'up');
        run('ip', '-n', ns, 'route', 'add', 'default', 'via', gw);
      }
      execFileSync('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
      vethIndex = (await kernel.getLink(VETH))!.index;
      upstream = spawn('ip', ['netns', 'exec', U, 'python3', '-u', '-c', UPSTREAM_PY], { stdio: ['ignore', 'pipe', 'inherit'] });
      const lines = createInterface({ input: upstream.stdout! });
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('upstream listener not ready within 10 s')), 10_000);
        lines.on('line', (l) => {
          if (l === 'ready') {
            clearTimeout(timer);
            resolve();
          } else upstreamGot.push(Buffer.from(l, 'hex').toString());
        });
      });
      answer = createSocket('udp4');
      answer.on('message', (m, r) => answer.send(Buffer.concat([Buffer.from('ANS:'), m]), r.port, r.address));
      await new Promise<void>((resolve) => answer.bind(SPEC.answerPort, SPEC.answerAddress, resolve));
    });
    after(async () => {
      answer?.close();
      if (upstream?.pid) upstream.kill('SIGKILL');
      await kernel.removeNameInterception().catch(() => undefined);
      await kernel.close();
      for (const ns of [C, U]) execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      for (const d of [VETH, UPV]) {
        try {
          run('ip', 'link', 'del', d);
        } catch {
          // gone with its peer's netns already
        }
      }
      run('ip', 'addr', 'del', `${SPEC.answerAddress}/32`, 'dev', 'lo');
      for (const t of ['raw', 'overlay-flannel-dns']) if (nftTableExists(t)) execFileSync('nft', ['delete', 'table', 'ip', t]);
    });

    it('the rules written twice change nothing; removal takes only ours', async () => {
      execFileSync('nft', ['add table ip raw; add chain ip raw PREROUTING { type filter hook prerouting priority raw; policy accept; }; add table ip kq-foreign']);
      execFileSync('iptables', ['-t', 'raw', '-A', 'PREROUTING', '-s', '198.51.100.0/24', '-j', 'ACCEPT']);
      const listing = (): string => execFileSync('nft', ['list', 'ruleset'], { encoding: 'utf8' }).replace(/counter packets \d+ bytes \d+/g, 'counter');
      assert.equal(await kernel.ensureNameInterception(SPEC), 'updated');
      const once = listing();
      assert.equal(await kernel.ensureNameInterception(SPEC), 'present');
      assert.equal(listing(), once, 'a second write changed the ruleset');
      assert.match(once, /iifname "ofh\*" udp dport 53 counter queue num 4153 bypass comment "overlay-flannel names queue"/);
      assert.match(once, /iifname "ofh\*" meta mark & 0x00100000 == 0x00100000 udp dport 53 counter dnat to 169.254.53.53:53/);
      assert.match(once, /ip saddr 169.254.53.53 udp sport 53 counter ct zone set 4153/);
      const raw = execFileSync('iptables', ['-t', 'raw', '-S'], { encoding: 'utf8' });
      assert.match(raw, /-A PREROUTING -i ofb-\+ -p udp -m udp --dport 53 -m comment --comment "overlay-flannel names queue" -j NFQUEUE --queue-num 4153 --queue-bypass/);
      const handle = /ct zone set 4153 # handle (\d+)/.exec(execFileSync('nft', ['-a', 'list', 'chain', 'ip', 'overlay-flannel-dns', 'names-reply-zone'], { encoding: 'utf8' }))?.[1];
      assert.ok(handle, 'the reply-zone rule has a handle');
      execFileSync('nft', ['delete', 'rule', 'ip', 'overlay-flannel-dns', 'names-reply-zone', 'handle', handle]);
      assert.equal(await kernel.ensureNameInterception(SPEC), 'updated', 'a rule deleted by hand is noticed');
      assert.equal(listing(), once, 'and the table is as before');
      assert.equal(await kernel.removeNameInterception(), true);
      const left = listing();
      assert.ok(!left.includes('overlay-flannel'), left);
      assert.match(left, /table ip kq-foreign/);
      assert.match(execFileSync('iptables', ['-t', 'raw', '-S'], { encoding: 'utf8' }), /-A PREROUTING -s 198.51.100.0\/24 -j ACCEPT/);
      execFileSync('nft', ['delete table ip kq-foreign']);
      execFileSync('iptables', ['-t', 'raw', '-D', 'PREROUTING', '-s', '198.51.100.0/24', '-j', 'ACCEPT']);
    });

    it('queued with payload and ifindex; ACCEPT reaches the upstream unchanged, a marked one is answered locally from the upstream address; closed = bypass', async () => {
      await kernel.ensureNameInterception(SPEC);
      const seen: QueuedPacket[] = [];
      const q = await kernel.openPacketQueue(SPEC.queue, (p) => {
        seen.push({ ...p, payload: Buffer.from(p.payload) });
        return udpPayload(p.payload).startsWith('local') ? { mark: (p.mark | SPEC.markBit) >>> 0 } : undefined;
      });
      let closed = false;
      try {
        const [plain] = await client(1, 'plain');
        assert.deepEqual({ reply: plain!.reply, from: plain!.from }, { reply: 'UP:plain-0', from: '192.0.2.254' });
        const p0 = seen.find((p) => udpPayload(p.payload) === 'plain-0');
        assert.ok(p0, `the datagram was not queued to us (saw ${seen.length})`);
        assert.equal(p0.indev, vethIndex, 'indev is the container veth');
        assert.equal(p0.payload.subarray(12, 16).join('.'), '10.99.0.2', 'payload starts at the IP header');
        assert.ok(upstreamGot.includes('plain-0'), 'the upstream got the bytes unchanged');

        const local = await client(3, 'local');
        for (const r of local) assert.deepEqual({ reply: r.reply, from: r.from }, { reply: `ANS:${r.sent}`, from: '192.0.2.254' }, 'answered by our socket, appearing from the upstream');
        assert.ok(!upstreamGot.some((m) => m.startsWith('local')), 'the upstream never saw a marked query');
        assert.equal(q.stats.marked, 3);

        const queued = (await client(300, 'rt')).map((r) => r.us!);
        assert.equal(q.stats.sendErrors, 0, 'the kernel refused no verdict');
        await q.close();
        closed = true;
        const before = seen.length;
        const bypass = await client(300, 'bp');
        assert.ok(bypass.every((r) => r.reply === `UP:${r.sent}`), 'with the queue closed packets pass to the upstream');
        assert.equal(seen.length, before, 'nothing queued after close');
        const us = (xs: number[]) => `p50 ${pct(xs, 0.5).toFixed(0)} µs, p99 ${pct(xs, 0.99).toFixed(0)} µs`;
        console.log(`# names queue round trip, client-side (300 sequential): through the queue ${us(queued)}; bypassed ${us(bypass.map((r) => r.us!))}; overruns ${q.stats.overruns}`);
      } finally {
        if (!closed) await q.close();
      }
    });

    it('a queue whose process was SIGKILLed fails open: packets pass, the number can be bound again', async () => {
      await kernel.ensureNameInterception(SPEC);
      const child = spawn(process.execPath, ['--import', 'tsx', '-e', `import('./src/kernel/index.ts').then(async (m) => { const k = m.default ?? m; await k.createNetlinkKernel().openPacketQueue(${SPEC.queue}, () => { throw new Error('never answers right'); }); console.log('bound'); setInterval(() => {}, 1000); })`], { stdio: ['ignore', 'pipe', 'inherit'] });
      try {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('child did not bind within 20 s')), 20_000);
          createInterface({ input: child.stdout! }).on('line', (l) => l === 'bound' && (clearTimeout(timer), resolve()));
        });
        await assert.rejects(kernel.openPacketQueue(SPEC.queue, () => undefined), /EPERM/, 'the child holds the queue');
        assert.deepEqual((await client(1, 'child')).map((r) => r.reply), ['UP:child-0'], 'a throwing handler is a plain ACCEPT');
      } finally {
        child.kill('SIGKILL');
      }
      await new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
      assert.deepEqual((await client(2, 'dead')).map((r) => r.reply), ['UP:dead-0', 'UP:dead-1']);
      const again = await kernel.openPacketQueue(SPEC.queue, () => undefined);
      await again.close();
    });

    it('an overrun (our socket buffer full while the event loop is blocked) is counted, the kernel lets the rest pass, and the queue goes on', async () => {
      await kernel.ensureNameInterception(SPEC);
      let handled = 0;
      const q = await kernel.openPacketQueue(SPEC.queue, () => void handled++, { recvBufferSize: 4096, maxLen: 1000 });
      try {
        // execFileSync blocks this event loop: nothing reads the queue socket while the burst runs
        const repliedWhileBlocked = Number(execFileSync('ip', ['netns', 'exec', C, 'python3', '-c', BURST_PY, '400'], { encoding: 'utf8', timeout: 30_000 }).trim());
        assert.ok(repliedWhileBlocked > 0, 'with FAIL_OPEN the packets the kernel could not deliver to us passed to the upstream');
        const deadline = Date.now() + 5000;
        while (q.stats.overruns === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        assert.ok(q.stats.overruns >= 1, `ENOBUFS counted (stats ${JSON.stringify(q.stats)})`);
        assert.ok(handled > 0 && handled < 400, `some were queued to us, not all (${handled})`);
        assert.deepEqual((await client(1, 'after-overrun')).map((r) => r.reply), ['UP:after-overrun-0'], 'the queue still works');
        console.log(`# overrun: 400 at once, ${repliedWhileBlocked} answered while we were blocked, ${handled} queued to us, ${q.stats.overruns} ENOBUFS`);
      } finally {
        await q.close();
      }
    });
  });
}
