/**
 * Reading a lab host's flannel-wg (or a named overlay's fwg-<name>) from outside: the wireguard-go that runs it is found by its
 * command line and network namespace (/proc), and `wg` (wireguard-tools) is run in that process's
 * mount and network namespaces, where its UAPI socket is (the daemon's private socket dir, or the
 * managed plugin's own mount namespace). Used by the wireguard labs.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import type { Ns } from '../helpers/netns-lab';
import { run } from '../helpers/run';
import { createConnection } from 'node:net';
import { parseUapiGet, type UapiDevice } from '../../src/domain/wg-uapi';

/** The pid of the wireguard-go running `dev` (flannel-wg; a named overlay's fwg-<name>) in host h's network namespace. */
export function wgPid(h: Ns, dev = 'flannel-wg'): number | undefined {
  const want = statSync(h.nsPath).ino;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (cmd[0]?.endsWith('wireguard-go') && cmd[1] === dev && statSync(`/proc/${d}/ns/net`).ino === want) return Number(d);
    } catch {
      // the process ended while we looked
    }
  }
  return undefined;
}

/** `wg <args>` against host h's flannel-wg, through its wireguard-go's mount and net namespaces. */
export async function wg(h: Ns, args: string[]): Promise<string> {
  const pid = wgPid(h);
  if (!pid) throw new Error(`no wireguard-go flannel-wg in ${h.ns}`);
  const r = await run('nsenter', [`--mount=/proc/${pid}/ns/mnt`, `--net=/proc/${pid}/ns/net`, 'wg', ...args], { timeoutMs: 10_000 });
  return r.stdout;
}

export interface Dump {
  publicKey: string;
  listenPort: number;
  peers: { publicKey: string; psk: string; endpoint: string; allowedIPs: string }[];
}
export async function dump(h: Ns): Promise<Dump> {
  const [dev, ...peers] = (await wg(h, ['show', 'flannel-wg', 'dump'])).trim().split('\n').map((l) => l.split('\t'));
  // dev[0] is the private key: never kept, never printed
  return { publicKey: dev[1], listenPort: Number(dev[2]), peers: peers.map((p) => ({ publicKey: p[0], psk: p[1], endpoint: p[2], allowedIPs: p[3] })) };
}


/** The device as wireguard-go's UAPI socket tells it (`get=1`), reached through /proc/<pid>/root
 *  (works where the process's filesystem has no `wg`, as in the managed plugin). */
export async function uapiGet(h: Ns, dev = 'flannel-wg'): Promise<UapiDevice> {
  const pid = wgPid(h, dev);
  if (!pid) throw new Error(`no wireguard-go ${dev} in ${h.ns}`);
  const text = await new Promise<string>((resolve, reject) => {
    const s = createConnection(`/proc/${pid}/root/run/wireguard/${dev}.sock`);
    let out = '';
    const timer = setTimeout(() => (s.destroy(), reject(new Error('UAPI: no reply in 5 s'))), 5000);
    s.on('data', (d) => {
      out += d;
      if (out.endsWith('\n\n')) (clearTimeout(timer), s.end(), resolve(out));
    });
    s.on('error', (e) => (clearTimeout(timer), reject(e)));
    s.write('get=1\n\n');
  });
  return parseUapiGet(text);
}

/** tcpdump -n -l -x text: each packet's header line and its bytes (from the IP header on) as hex. */
export function packetsOf(text: string): { header: string; hex: string }[] {
  const out: { header: string; hex: string }[] = [];
  for (const line of text.split('\n')) {
    if (/^\d\d:\d\d:\d\d\.\d+ /.test(line)) out.push({ header: line, hex: '' });
    else if (/^\s+0x[0-9a-f]+:/.test(line) && out.length) out[out.length - 1]!.hex += line.replace(/^\s+0x[0-9a-f]+:/, '').replace(/\s+/g, '');
  }
  return out;
}
