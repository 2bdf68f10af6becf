/**
 * A WireGuard device on the userspace path: Debian's `wireguard-go` makes the TUN device and is
 * configured over its UAPI socket with the text protocol (domain/wg-uapi.ts), which we speak here
 * ourselves (no `wg` needed at run time). wireguard-go's socket path, /var/run/wireguard/<dev>.sock,
 * is one per mount namespace (docs/wireguard.md): with `privateSocketDir` the process
 * gets its own mount namespace with a tmpfs there (tests, several simulated hosts on one machine),
 * and we reach its socket through /proc/<pid>/root/run (/var/run is a symlink to /run, which
 * would resolve in our own namespace). Not yet wired into the Kernel door (index.ts):
 * the daemon does not use it yet (issue 22). A missing wireguard-go is an error naming the package.
 */
import { spawn, ChildProcess } from 'node:child_process';
import { access } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { formatUapiSet, parseUapiGet, uapiErrno, UapiDevice, UapiPeer } from '../domain/wg-uapi';

export interface UserspaceWireguardOptions {
  readonly name: string; // 'flannel-wg'
  readonly privateSocketDir?: boolean;
  readonly timeoutMs?: number;
}

export class UserspaceWireguard {
  private child: ChildProcess | null = null;
  private socketPath: string;
  constructor(private readonly opts: UserspaceWireguardOptions) {
    this.socketPath = `/var/run/wireguard/${opts.name}.sock`;
  }

  /** Start wireguard-go for the device (foreground child) and wait for its UAPI socket. */
  async ensureDevice(): Promise<void> {
    if (this.child && this.child.exitCode === null) return;
    const env = { ...process.env, WG_PROCESS_FOREGROUND: '1' };
    const args = this.opts.privateSocketDir
      ? ['unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'mkdir -p /var/run/wireguard && mount -t tmpfs none /var/run/wireguard && exec wireguard-go "$0"', this.opts.name]] as const
      : ['wireguard-go', [this.opts.name]] as const;
    const child = spawn(args[0], [...args[1]], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d) => (stderr = (stderr + d).slice(-2000)));
    const spawnError = new Promise<Error>((res) => child.on('error', res));
    this.child = child;
    if (this.opts.privateSocketDir) this.socketPath = `/proc/${child.pid}/root/run/wireguard/${this.opts.name}.sock`;
    const deadline = Date.now() + (this.opts.timeoutMs ?? 5000);
    for (;;) {
      const failed = await Promise.race([spawnError, new Promise<null>((r) => setTimeout(() => r(null), 50))]);
      if (failed && (failed as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('wireguard backend: wireguard-go is not installed and this kernel has no WireGuard: apt-get install wireguard-go');
      if (failed) throw failed;
      if (child.exitCode !== null) throw new Error(`wireguard-go ${this.opts.name} exited with ${child.exitCode}: ${stderr.trim()}`);
      if (await access(this.socketPath).then(() => true, () => false)) return;
      if (Date.now() > deadline) throw new Error(`wireguard-go ${this.opts.name}: no UAPI socket ${this.socketPath} after ${this.opts.timeoutMs ?? 5000} ms`);
    }
  }

  /** One UAPI exchange; resolves with the reply text (ends with a blank line). */
  request(text: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = createConnection(this.socketPath);
      let out = '';
      const timer = setTimeout(() => (s.destroy(), reject(new Error(`wireguard UAPI ${this.opts.name}: no reply in time`))), this.opts.timeoutMs ?? 5000);
      s.on('data', (d) => {
        out += d;
        if (out.endsWith('\n\n')) (clearTimeout(timer), s.end(), resolve(out));
      });
      s.on('error', (e) => (clearTimeout(timer), reject(e)));
      s.write(text);
    });
  }

  private async set(text: string): Promise<void> {
    const errno = uapiErrno(await this.request(text));
    if (errno !== 0) throw new Error(`wireguard UAPI ${this.opts.name}: set failed with errno ${errno}`);
  }

  configure(dev: { privateKey: string; listenPort: number }): Promise<void> {
    return this.set(formatUapiSet(dev, []));
  }

  setPeers(peers: readonly UapiPeer[]): Promise<void> {
    return this.set(formatUapiSet({}, peers));
  }

  removePeers(publicKeys: readonly string[]): Promise<void> {
    return this.set(formatUapiSet({}, [], publicKeys));
  }

  async get(): Promise<UapiDevice> {
    return parseUapiGet(await this.request('get=1\n\n'));
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Stop our wireguard-go (its TUN device goes with it). */
  async close(): Promise<void> {
    const c = this.child;
    this.child = null;
    if (!c || c.exitCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))]);
  }
}
