/**
 * A namespace lab of hosts running the real daemon (`node dist/main.js`, via nsenter) against a
 * real etcd on the LAN, with helpers to read what each daemon leased and programmed, and to attach
 * a "container" namespace to a host's lease the way the Docker plugin will.
 * Overlay network and VNI are random per lab, so nothing depends on fixed values.
 */
import { randomInt } from 'node:crypto';
import { join, resolve } from 'node:path';
import { createLab, DaemonHandle, Host, Lab, Ns } from '../helpers/netns-lab';
import { EtcdServer, startEtcd } from '../helpers/etcd-server';
import { run } from '../helpers/run';
import { waitFor } from '../helpers/wait';

export const ROOT = resolve(__dirname, '../..');
export const MAIN = join(ROOT, 'dist/main.js');

export interface LeaseView {
  subnet: string; // 10.x.y.0/24
  publicIP: string;
  vtepMac?: string;
  raw: string;
}

export class OverlayLab {
  readonly daemons = new Map<number, DaemonHandle>();
  readonly thirdOctet = randomInt(100, 250);
  readonly network = `10.${this.thirdOctet}.0.0/16`;
  readonly vni = randomInt(2, 4000);

  private constructor(
    readonly lab: Lab,
    readonly etcd: EtcdServer,
    readonly prefix: string,
  ) {}

  static async create(hosts: number, prefix = `/lab-${randomInt(1e9).toString(36)}/network`): Promise<OverlayLab> {
    const lab = await createLab('of');
    try {
      const lan = await lab.lan();
      const etcd = await startEtcd({ netns: lan.ns, host: '192.0.2.254' });
      const ol = new OverlayLab(lab, etcd, prefix);
      for (let n = 1; n <= hosts; n++) await lab.addHost(n);
      return ol;
    } catch (e) {
      await lab.destroy();
      throw e;
    }
  }

  host(n: number): Host {
    const h = this.lab.hosts.get(n);
    if (!h) throw new Error(`no host ${n}`);
    return h;
  }

  env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    return { ETCD_ENDPOINTS: this.etcd.endpoint, ETCD_PREFIX: this.prefix, LOG_LEVEL: 'debug', ...extra };
  }

  /** `overlay-flannel <args>` as an operator would run it on host 1. */
  async cli(args: string[], extra: NodeJS.ProcessEnv = {}): Promise<string> {
    const r = await this.host(1).execOk('node', [MAIN, ...args], { env: { ...process.env, ...this.env(extra) }, timeoutMs: 20_000 });
    return r.stdout;
  }

  startDaemon(n: number, extra: NodeJS.ProcessEnv = {}): DaemonHandle {
    if (this.daemons.has(n)) throw new Error(`daemon ${n} already running`);
    const d = this.host(n).spawnDaemon('node', [MAIN], this.env({ PLUGIN_SOCKET: `/run/of-lab-${this.lab.runId}-h${n}.sock`, ...extra }));
    this.daemons.set(n, d);
    void d.exited.then(() => this.daemons.get(n) === d && this.daemons.delete(n));
    return d;
  }

  async stopDaemon(n: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const d = this.daemons.get(n);
    if (!d) return;
    d.kill(signal);
    await d.exited;
    this.daemons.delete(n);
  }

  /** Every lease in etcd, by public IP. */
  async leases(prefix = this.prefix): Promise<Map<string, LeaseView>> {
    const { stdout } = await this.etcd.etcdctl(['get', '--prefix', `${prefix}/subnets/`]);
    const lines = stdout.split('\n').filter(Boolean);
    const out = new Map<string, LeaseView>();
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const m = /(\d+\.\d+\.\d+\.\d+)-(\d+)$/.exec(lines[i]);
      if (!m) continue;
      const v = JSON.parse(lines[i + 1]);
      out.set(v.PublicIP, { subnet: `${m[1]}/${m[2]}`, publicIP: v.PublicIP, vtepMac: v.BackendData?.VtepMAC, raw: lines[i + 1] });
    }
    return out;
  }

  async waitForLeases(ips: string[], prefix = this.prefix, timeoutMs = 30_000): Promise<Map<string, LeaseView>> {
    return waitFor(
      async () => {
        const l = await this.leases(prefix);
        return ips.every((ip) => l.has(ip)) ? l : undefined;
      },
      { timeoutMs, intervalMs: 200, what: `leases of ${ips.join(', ')} under ${prefix}` },
    );
  }

  /** The peer entries a host's kernel holds on flannel.<VNI>, as sorted strings. */
  async peerEntries(n: number, vni = this.vni): Promise<{ neigh: string[]; fdb: string[]; routes: string[] }> {
    const h = this.host(n);
    const dev = `flannel.${vni}`;
    const neigh = (await h.execJson<{ dst: string; lladdr: string; state: string[] }[]>(['neigh', 'show', 'dev', dev]))
      .filter((e) => e.state?.includes('PERMANENT'))
      .map((e) => `${e.dst} ${e.lladdr}`)
      .sort();
    const fdbOut = await run('bridge', ['-n', h.ns, '-j', 'fdb', 'show', 'dev', dev]);
    const fdb = (JSON.parse(fdbOut.stdout || '[]') as { mac: string; dst?: string }[])
      .filter((e) => e.dst)
      .map((e) => `${e.mac} ${e.dst}`)
      .sort();
    const routes = (await h.execJson<{ dst: string; gateway?: string; dev: string; flags?: string[] }[]>(['route', 'show']))
      .filter((r) => r.dev === dev)
      .map((r) => `${r.dst} via ${r.gateway}${r.flags?.includes('onlink') ? ' onlink' : ''}`)
      .sort();
    return { neigh, fdb, routes };
  }

  /** What host `n` should hold for the given remote leases. */
  expectedEntries(remotes: LeaseView[]): { neigh: string[]; fdb: string[]; routes: string[] } {
    const net = (l: LeaseView) => l.subnet.split('/')[0];
    return {
      neigh: remotes.map((l) => `${net(l)} ${l.vtepMac}`).sort(),
      fdb: remotes.map((l) => `${l.vtepMac} ${l.publicIP}`).sort(),
      routes: remotes.map((l) => `${l.subnet} via ${net(l)} onlink`).sort(),
    };
  }

  /**
   * A "container": namespace `c<tag>` on host n, with a veth from a bridge on the host whose
   * address is the lease's gateway (.1); the container gets `.<hostPart>` and a default route.
   */
  async attachContainer(n: number, lease: LeaseView, tag: string, hostPart = 10, mtu = 1450): Promise<{ ns: Ns; ip: string }> {
    const h = this.host(n);
    const [base, len] = lease.subnet.split('/');
    const prefix3 = base.split('.').slice(0, 3).join('.');
    const gw = `${prefix3}.1`;
    const ip = `${prefix3}.${hostPart}`;
    const ns = await this.lab.addContainerNs(h, `c${tag}`);
    const hostVeth = `vh${this.lab.id}${tag}`;
    const peer = `vc${this.lab.id}${tag}`;
    await h.execOk('node', ['--import', 'tsx', join(__dirname, 'fixtures/attach-container.ts'), `br${tag}`, `${gw}/${len}`, String(mtu), hostVeth, peer], {
      cwd: ROOT,
      timeoutMs: 30_000,
    });
    await run('ip', ['-n', h.ns, 'link', 'set', peer, 'netns', ns.ns]);
    await run('ip', ['-n', ns.ns, 'link', 'set', peer, 'name', 'eth0']);
    await run('ip', ['-n', ns.ns, 'addr', 'add', `${ip}/${len}`, 'dev', 'eth0']);
    await run('ip', ['-n', ns.ns, 'link', 'set', 'eth0', 'up']);
    await run('ip', ['-n', ns.ns, 'route', 'add', 'default', 'via', gw]);
    return { ns, ip };
  }

  /** One ping; true when answered. */
  async ping(from: Ns, ip: string): Promise<boolean> {
    const r = await from.exec('ping', ['-c', '1', '-W', '1', ip], { timeoutMs: 5_000 });
    return r.code === 0;
  }

  async destroy(): Promise<void> {
    for (const n of [...this.daemons.keys()]) await this.stopDaemon(n).catch(() => undefined);
    await this.etcd.cleanup().catch(() => undefined);
    await this.lab.destroy();
  }

  /** The daemon logs of host n, for failure messages. */
  logs(n: number): string {
    return this.daemons.get(n)?.logs().slice(-4000) ?? '(not running)';
  }
}
