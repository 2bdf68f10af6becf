/**
 * The overlays this host has joined, each an OverlayAgent over its own flannel prefix. The default
 * overlay (ETCD_PREFIX) is joined at start; a named one (`--ipam-opt network=NAME`) lives under
 * `<ETCD_PREFIX>-<NAME>` (a flanneld joins it with --etcd-prefix=<ETCD_PREFIX>-<NAME>) and is
 * joined on first use (an IPAM call naming it) and, after a restart, as soon as network replication
 * sees a Docker network of ours on it (Docker makes no IPAM call for networks it already has).
 */
import type { Logger } from 'pino';
import type { Kernel } from '../kernel';
import type { Store } from '../store';
import { OverlayAgent, type OverlayTuning } from '../reconcile/overlay-agent';
import type { PublicInterface } from '../host/public-interface';
import { SerialQueue } from '../util/serial-queue';
import { DEFAULT_OVERLAY, OverlayDirectory, OverlayHandle } from '../driver/overlays';
import { invalid, unavailable } from '../errors';
import { overlayPort } from './store-port';
import { WireguardClaims } from '../domain/wireguard-config';

export interface DirectoryOptions {
  defaultPrefix: string;
  tuning: OverlayTuning;
  subnetFile?: string; // the default overlay's subnet.env ('' or absent: none)
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;
/** Each joined overlay watches etcd and may hold a lease: bound what requests can make us join. */
export const MAX_OVERLAYS = 64;

export function prefixOfOverlay(defaultPrefix: string, name: string): string {
  return name === DEFAULT_OVERLAY ? defaultPrefix : `${defaultPrefix}-${name}`;
}

export class AgentDirectory implements OverlayDirectory {
  private readonly agents = new Map<string, { agent: OverlayAgent; handle: OverlayHandle }>();
  private readonly joinedListeners: Array<(name: string, agent: OverlayAgent) => void> = [];
  /** Every wireguard overlay's device and ListenPort on this host: a second one on a port is refused. */
  private readonly wireguardClaims = new WireguardClaims();

  constructor(
    private readonly store: Store,
    private readonly kernel: Kernel,
    private readonly queue: SerialQueue,
    private readonly pub: PublicInterface,
    private readonly log: Logger,
    private readonly opts: DirectoryOptions,
  ) {}

  async byName(name: string | undefined): Promise<OverlayHandle> {
    const n = name === undefined || name === '' ? DEFAULT_OVERLAY : name;
    if (!NAME_RE.test(n)) throw invalid(`overlay name "${n}" is not valid (letters, digits, "_", ".", "-"; up to 63 characters)`);
    const known = this.agents.get(n);
    if (known) return known.handle;
    if (this.agents.size >= MAX_OVERLAYS) {
      throw invalid(`this host already joined ${MAX_OVERLAYS} overlays, the most overlay-flannel allows; "${n}" is not joined`);
    }
    return (await this.join(n)).handle;
  }

  /** Call `fn` once per overlay, after its agent started (the keepers re-check then). */
  onJoined(fn: (name: string, agent: OverlayAgent) => void): void {
    this.joinedListeners.push(fn);
  }

  all(): OverlayHandle[] {
    return [...this.agents.values()].map((a) => a.handle);
  }

  agentsByName(): Map<string, OverlayAgent> {
    return new Map([...this.agents].map(([k, v]) => [k, v.agent]));
  }

  /** Join an overlay: start its agent (config watch → lease → device → peers). */
  async join(name: string): Promise<{ agent: OverlayAgent; handle: OverlayHandle }> {
    const existing = this.agents.get(name);
    if (existing) return existing;
    const prefix = prefixOfOverlay(this.opts.defaultPrefix, name);
    const ov = this.store.overlay(prefix);
    const agent = new OverlayAgent(overlayPort(ov), this.kernel, this.queue, this.pub, this.log.child({ overlay: name }), {
      name,
      tuning: this.opts.tuning,
      wireguardClaims: this.wireguardClaims,
      ...(name === DEFAULT_OVERLAY && this.opts.subnetFile ? { subnetFile: this.opts.subnetFile } : {}),
    });
    const handle: OverlayHandle = {
      name,
      prefix,
      // An IPv6-only overlay (EnableIPv4 false) has no v4 half: its lease's 0.0.0.0/0 and Network
      // 0.0.0.0/0 are flannel's zero values, never handed to the v4 parts (IPAM, isolation, fast path, audit).
      lease: () => (agent.config?.enableIPv4 === false ? null : agent.lease()),
      network: () => (agent.config?.enableIPv4 === false ? null : (agent.config?.network ?? null)),
      ipv6Only: () => agent.config?.enableIPv4 === false,
      network6: () => agent.config?.ipv6?.network ?? null,
      mtu: () => agent.dataplane?.mtu ?? null,
      vxlan: () => {
        const backend = agent.config?.backend;
        const device = agent.dataplane?.deviceName;
        return backend?.type === 'vxlan' && device ? { vni: backend.vni, device, directRouting: backend.directRouting } : null;
      },
      setFlooding: (on) => agent.dataplane?.setFlooding(on),
      addresses: ov.addresses,
      addresses6: ov.addresses6,
      whenReady: (timeoutMs) => waitReady(agent, name, timeoutMs),
      notReadyReason: () => agent.notReadyReason(),
    };
    const entry = { agent, handle };
    this.agents.set(name, entry);
    await agent.start();
    for (const fn of this.joinedListeners) fn(name, agent);
    return entry;
  }

  async stop(): Promise<void> {
    await Promise.allSettled([...this.agents.values()].map((a) => a.agent.stop()));
  }
}

async function waitReady(agent: OverlayAgent, name: string, timeoutMs: number): Promise<void> {
  if (agent.state === 'ready') return;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const why = agent.notReadyReason();
      reject(unavailable(`overlay "${name}" is not ready on this host: ${why}`));
    }, timeoutMs);
  });
  try {
    await Promise.race([agent.whenReady(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
