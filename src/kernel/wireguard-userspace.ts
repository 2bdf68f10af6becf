/**
 * A WireGuard device on the userspace path: Debian's `wireguard-go` makes the TUN device and is
 * configured over its UAPI socket with the text protocol (domain/wg-uapi.ts), which we speak here
 * ourselves (no `wg` needed at run time). wireguard-go's socket path, /var/run/wireguard/<dev>.sock,
 * is one per mount namespace (docs/wireguard.md): with `privateSocketDir` the process
 * gets its own mount namespace with a tmpfs there (tests, several simulated hosts on one machine),
 * and we reach its socket through /proc/<pid>/root/run (/var/run is a symlink to /run, which
 * would resolve in our own namespace). Used through the Kernel door by kernel-wireguard.ts.
 * A missing wireguard-go is an error naming the package. The process runs under
 * `setpriv --pdeathsig TERM`, so it (and its device) never outlives the daemon that started it.
 */
import { spawn, ChildProcess } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { OverlayError, unsupported } from '../errors';
import { createConnection } from 'node:net';
import { formatUapiSet, parseUapiGet, uapiErrno, UapiDevice, UapiPeer } from '../domain/wg-uapi';

export interface UserspaceWireguardOptions {
  readonly name: string; // 'flannel-wg'
  readonly privateSocketDir?: boolean;
  readonly timeoutMs?: number;
  /** The wireguard-go program (default: found on PATH); tests point it at a missing one. */
  readonly command?: string;
  /** The kernel has WireGuard: wireguard-go refuses to run then unless told it is wanted. */
  readonly kernelHasWireguard?: boolean;
}

export const WG_INSTALL_HINT = 'wireguard backend: this kernel has no WireGuard and wireguard-go is not installed: apt-get install wireguard-go';

/** The absolute path of `cmd` (searched on PATH when it has no slash), or null. */
async function findProgram(cmd: string): Promise<string | null> {
  const dirs = cmd.includes('/') ? [''] : (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter);
  for (const d of dirs) {
    const p = d ? join(d, cmd) : cmd;
    if (await access(p, constants.X_OK).then(() => true, () => false)) return p;
  }
  return null;
}

export class UserspaceWireguard {
  private child: ChildProcess | null = null;
  private socketPath: string;
  constructor(private readonly opts: UserspaceWireguardOptions) {
    this.socketPath = `/var/run/wireguard/${opts.name}.sock`;
  }

  /** Start wireguard-go for the device (foreground child) and wait for its UAPI socket. */
  async ensureDevice(): Promise<void> {
    if (this.running) return;
    const program = await findProgram(this.opts.command ?? 'wireguard-go');
    if (!program) throw unsupported(WG_INSTALL_HINT);
    const env: NodeJS.ProcessEnv = { ...process.env, WG_PROCESS_FOREGROUND: '1' };
    if (this.opts.kernelHasWireguard) env.WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD = '1';
    const run = ['setpriv', '--pdeathsig', 'TERM', program, this.opts.name];
    const args = this.opts.privateSocketDir
      ? ['unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'mkdir -p /var/run/wireguard && mount -t tmpfs none /var/run/wireguard && exec "$@"', 'sh', ...run]] as const
      : [run[0], run.slice(1)] as const;
    const child = spawn(args[0], [...args[1]], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d) => (stderr = (stderr + d).slice(-2000)));
    const spawnError = new Promise<Error>((res) => child.on('error', res));
    this.child = child;
    if (this.opts.privateSocketDir) this.socketPath = `/proc/${child.pid}/root/run/wireguard/${this.opts.name}.sock`;
    const deadline = Date.now() + (this.opts.timeoutMs ?? 5000);
    for (;;) {
      const failed = await Promise.race([spawnError, new Promise<null>((r) => setTimeout(() => r(null), 50))]);
      if (failed) throw new OverlayError('KERNEL', `start wireguard-go ${this.opts.name}: ${failed.message}`);
      if (child.exitCode !== null) throw new OverlayError('KERNEL', `wireguard-go ${this.opts.name} exited with ${child.exitCode}: ${stderr.trim()}`);
      if (await access(this.socketPath).then(() => true, () => false)) return;
      if (Date.now() > deadline) {
        await this.close();
        throw new OverlayError('UNAVAILABLE', `wireguard-go ${this.opts.name}: no UAPI socket ${this.socketPath} after ${this.opts.timeoutMs ?? 5000} ms`);
      }
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
    if (errno !== 0) throw new OverlayError('KERNEL', `wireguard UAPI ${this.opts.name}: set failed with errno ${errno}`);
  }

  configure(dev: { privateKey: string; listenPort: number }): Promise<void> {
    return this.set(formatUapiSet(dev, []));
  }

  setPeers(peers: readonly UapiPeer[], remove: readonly string[] = []): Promise<void> {
    return this.set(formatUapiSet({}, peers, remove));
  }

  removePeers(publicKeys: readonly string[]): Promise<void> {
    return this.set(formatUapiSet({}, [], publicKeys));
  }

  async get(): Promise<UapiDevice> {
    return parseUapiGet(await this.request('get=1\n\n'));
  }

  /** Our wireguard-go is running (started and not exited). */
  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Stop our wireguard-go (its TUN device goes with it). */
  async close(): Promise<void> {
    const c = this.child;
    this.child = null;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))]);
  }
}
