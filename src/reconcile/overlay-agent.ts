/**
 * One overlay on this host, end to end: wait for its flannel config, hold a lease, keep the kernel
 * in step with every other host's lease. It owns no I/O of its own: the store (etcd) and the kernel
 * come in as interfaces, so the same code runs against fakes in unit tests.
 *
 * Life cycle: config missing → log once how to write it and wait; config broken → log the reason
 * and wait for a fix; config ok → acquire a lease (retrying through outages), create the device,
 * start the lease watcher. A lost lease is re-acquired and the device follows. A config that
 * changes Network or backend at runtime is reported: as with flanneld, it takes a restart.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Kernel } from '../kernel';
import type { ConfigState, LeaseEvent, LeaseKeeper, LeaseKeeperOptions } from '../store/types';
import { describeNetworkConfig, NetworkConfig } from '../domain/network-config';
import { ipv6Refusal } from '../domain/network-config-v6';
import { Cidr6, cidr6, cidr6Contains, formatCidr6, isIPv6, parseIPv6 } from '../domain/ipv6';
import { vxlanV6DeviceName } from '../domain/peers-v6';
import { Cidr, cidr, cidrContains, formatCidr, parseIPv4 } from '../domain/ipv4';
import { vxlanDeviceName } from '../domain/names';
import { Lease, LeaseAttrs, leaseBackendType } from '../domain/lease';
import { leaseId } from '../domain/lease-v6';
import { vtepMacFor } from '../domain/mac';
import { SerialQueue } from '../util/serial-queue';
import { OverlayDataplane } from './overlay-dataplane';
import { PublicInterface } from '../host/public-interface';
import { errorText } from '../errors';
import { subnetEnvContent, writeSubnetFile } from '../host/subnet-env';
import { loadOrCreateWireguardKey, wireguardKeyFile, type WireguardKeyPair } from '../host/wireguard-key';
import { wireguardDeviceClaims, wireguardDeviceName, WireguardClaims } from '../domain/wireguard-config';

/** What the agent needs from the store for one overlay prefix. */
export interface OverlayStorePort {
  readonly prefix: string;
  /**
   * Calls back with the current state once known (waiting through outages), then on every change;
   * problem() says why the config cannot be read right now (etcd refused, timed out, …).
   */
  watchConfig(onChange: (s: ConfigState) => void): { stop(): Promise<void> | void; problem?(): { reason: string } | null };
  createKeeper(opts: LeaseKeeperOptions): LeaseKeeper;
  watchLeases(onEvent: (e: LeaseEvent) => void): LeaseWatchHandle;
}

export interface LeaseWatchHandle {
  stop(): Promise<void> | void;
  /** When a lease expires (unix ms), asked from etcd (cached per etcd lease); absent in fakes. */
  expiryOf?(lease: Lease): Promise<number | undefined>;
}

export type AgentState = 'waiting-for-config' | 'config-invalid' | 'acquiring' | 'ready' | 'stopped';

/** How every overlay of this host runs: one frozen object built from the settings, passed whole. */
export interface OverlayTuning {
  readonly ttlSec: number;
  readonly renewMarginSec: number;
  readonly resyncIntervalMs: number;
  /** IP_MASQ: flannel's masquerade rules for each overlay (removed again by stop()). */
  readonly ipMasq: boolean;
  /** NOTRACK: conntrack bypass rules for each overlay's traffic (removed again by stop()). */
  readonly notrack: boolean;
  /** STATE_DIR: where this host's WireGuard private key is kept (host/wireguard-key.ts). */
  readonly stateDir: string;
}

export interface AgentOptions {
  name: string; // "default" or the overlay's name
  tuning: OverlayTuning;
  /** SUBNET_FILE: write flanneld's subnet.env here on every lease (the default overlay only). */
  subnetFile?: string;
  /** The host's wireguard devices and ports, shared by all its agents (absent: this agent's own). */
  wireguardClaims?: WireguardClaims;
}

export class OverlayAgent extends EventEmitter {
  state: AgentState = 'waiting-for-config';
  config: NetworkConfig | null = null;
  dataplane: OverlayDataplane | null = null;
  lastConfigError: string | null = null;
  private keeper: LeaseKeeper | null = null;
  private configWatch: ReturnType<OverlayStorePort['watchConfig']> | null = null;
  private configRaw: string | null = null;
  private leaseWatch: LeaseWatchHandle | null = null;
  /** subnet → when the lease watch last saw that lease written (new, renewed, changed). */
  private readonly seen = new Map<string, { etcdLease: string; modRevision?: bigint; at: number }>();
  private readonly abort = new AbortController();
  private readonly wgClaims: WireguardClaims;
  private ready: Promise<void>;
  private resolveReady!: () => void;

  constructor(
    private readonly store: OverlayStorePort,
    private readonly kernel: Kernel,
    private readonly queue: SerialQueue,
    private readonly pub: PublicInterface,
    private readonly log: Logger,
    private readonly opts: AgentOptions,
  ) {
    super();
    this.wgClaims = opts.wireguardClaims ?? new WireguardClaims();
    this.ready = new Promise((r) => (this.resolveReady = r));
  }

  /** Starts watching the config; resolves at once (use whenReady() to wait for the lease). */
  async start(): Promise<void> {
    this.configWatch = this.store.watchConfig((s) => this.onConfig(s));
  }

  /** Resolves when a lease is held and the device is set up. */
  whenReady(): Promise<void> {
    return this.ready;
  }

  lease(): Lease | null {
    return this.keeper?.current() ?? null;
  }

  /**
   * Why this overlay is not ready, for the errors Docker shows: what keeps it from a lease right
   * now (etcd's answer, the config, the subnets), in the words of the store's errors.
   */
  notReadyReason(): string {
    const prefix = this.store.prefix;
    const fix = `overlay-flannel config set ${this.opts.name === 'default' ? '' : `--name ${this.opts.name} `}--network CIDR`;
    const keeperProblem = this.state === 'acquiring' ? this.keeper?.problem?.() : null;
    if (keeperProblem) return `no lease yet: ${keeperProblem}`;
    const configProblem = this.configWatch?.problem?.();
    if (configProblem) return `no lease yet: ${configProblem.reason}`;
    if (this.lastConfigError === 'missing') return `it has no config at ${prefix}/config: write one with ${fix}`;
    if (this.lastConfigError) return `its config at ${prefix}/config is invalid: ${this.lastConfigError}; write a valid one with ${fix}`;
    if (this.state === 'acquiring') return 'no lease yet: still acquiring one';
    return 'no lease yet: etcd has not answered yet';
  }

  private onConfig(state: ConfigState): void {
    if (this.state === 'stopped') return;
    const refused = state.state === 'ok' ? (ipv6Refusal(state.config) ?? (this.config ? null : this.claimWireguard(state.config))) : null;
    const s: ConfigState = refused && state.state === 'ok' ? { state: 'invalid', error: refused, raw: state.raw } : state;
    if (s.state === 'missing') {
      if (this.config) {
        this.log.error({ prefix: this.store.prefix }, 'overlay config was deleted; keeping the current lease and kernel state until it is back');
        return;
      }
      if (this.state !== 'waiting-for-config' || !this.lastConfigError) {
        this.log.warn(
          { prefix: this.store.prefix },
          `waiting for the overlay config at ${this.store.prefix}/config; write it with: overlay-flannel config set --network 10.1.0.0/16 (prefix ${this.store.prefix})`,
        );
      }
      this.lastConfigError = 'missing';
      this.state = 'waiting-for-config';
      return;
    }
    if (s.state === 'invalid') {
      this.lastConfigError = s.error;
      this.log.error({ prefix: this.store.prefix, error: s.error }, 'overlay config is invalid; waiting for a fixed one');
      if (!this.config) this.state = 'config-invalid';
      return;
    }
    this.lastConfigError = null;
    if (this.config) {
      if (s.raw !== this.configRaw && describeNetworkConfig(s.config) !== describeNetworkConfig(this.config)) {
        this.log.error(
          { running: describeNetworkConfig(this.config), stored: describeNetworkConfig(s.config) },
          'overlay config changed; as with flanneld, a new Network or backend takes effect after a restart of the daemon',
        );
      }
      return;
    }
    this.config = s.config;
    this.configRaw = s.raw;
    this.log.info({ prefix: this.store.prefix, config: describeNetworkConfig(s.config) }, 'overlay config loaded');
    this.join(s.config).catch((e) => {
      if (this.state !== 'stopped') this.log.error({ err: errorText(e) }, 'joining the overlay failed');
    });
  }

  private async join(config: NetworkConfig): Promise<void> {
    if (config.ipv6 && config.backend.type === 'vxlan' && !(this.pub.address6 && this.pub.publicIPv6)) {
      // flanneld stops the same way ("failed to find IPv6 address for interface")
      this.state = 'config-invalid';
      this.lastConfigError = `EnableIPv6 with the vxlan backend needs a global IPv6 address on the public interface ${this.pub.link.name} (flannel-v6.<VNI> sends from it), and it has none: add one, or set IFACE to an interface that has one`;
      this.log.error({ iface: this.pub.link.name }, this.lastConfigError);
      return;
    }
    this.state = 'acquiring';
    const key = config.backend.type === 'wireguard' ? await this.wireguardKey() : undefined;
    const dataplane = new OverlayDataplane(this.kernel, this.queue, this.log, config, this.pub, this.opts.tuning, key, wireguardDeviceName(this.opts.name));
    this.dataplane = dataplane;
    const previous = await this.previousSubnet(config);
    if (previous) this.log.info({ subnet: formatCidr(previous) }, 'found the subnet this host had before on its device; asking for it again');
    const previous6 = await this.previousSubnet6(config);
    const keeper = this.store.createKeeper({
      publicIP: this.pub.publicIP,
      previousSubnet: () => previous,
      previousSubnet6: () => previous6,
      attrsFor: (c) => this.attrsFor(c, key),
      ttlSec: this.opts.tuning.ttlSec,
      renewMarginSec: this.opts.tuning.renewMarginSec,
    });
    this.keeper = keeper;
    keeper.on('acquired', (e: { lease: Lease }) => {
      this.log.info({ subnet: formatCidr(e.lease.subnet), ...(e.lease.subnet6 ? { subnet6: formatCidr6(e.lease.subnet6) } : {}), publicIP: this.pub.publicIP }, 'lease acquired');
      this.emit('lease', e.lease);
      // The first lease is attached below; later ones are re-acquisitions after a loss.
      if (this.state !== 'ready') return;
      dataplane
        .attach(e.lease)
        .then(() => this.writeSubnetEnv(config, e.lease))
        .catch((err) => this.log.error({ err: errorText(err) }, 'setting up the overlay device failed'));
    });
    keeper.on('renewed', (e: { lease: Lease }) => this.emit('renewed', e.lease));
    keeper.on('lost', (e: { subnet: unknown; reason: string }) => this.log.error(e, 'lease lost; re-acquiring'));
    const lease = await keeper.acquire(config, this.abort.signal);
    if ((this.state as AgentState) === 'stopped') return;
    await dataplane.attach(lease);
    await this.writeSubnetEnv(config, lease);
    this.leaseWatch = this.store.watchLeases((ev) => this.onLeaseEvent(ev));
    dataplane.startTimer(this.opts.tuning.resyncIntervalMs);
    this.state = 'ready';
    this.resolveReady();
  }

  /**
   * The subnet the vxlan device still carries from an earlier run (its `<subnet>.0/32` address
   * outlives the daemon), so a host whose lease expired while it was down gets its subnet back.
   */
  private async previousSubnet(config: NetworkConfig): Promise<Cidr | null> {
    if (config.backend.type !== 'vxlan' || !config.enableIPv4) return null;
    try {
      const dev = await this.kernel.getVxlan(vxlanDeviceName(config.backend.vni));
      if (!dev) return null;
      for (const a of await this.kernel.listAddresses(dev.index)) {
        const ip = parseIPv4(a.address);
        if (a.prefixLen === 32 && cidrContains(config.network, ip)) return cidr(ip, config.subnetLen);
      }
    } catch (e) {
      this.log.warn({ err: errorText(e) }, 'could not read the previous subnet from the device');
    }
    return null;
  }

  /** The v6 subnet flannel-v6.<VNI> still carries from an earlier run (its `<subnet6>/128`), as previousSubnet. */
  private async previousSubnet6(config: NetworkConfig): Promise<Cidr6 | null> {
    if (config.backend.type !== 'vxlan' || !config.ipv6) return null;
    try {
      const dev = await this.kernel.getVxlan(vxlanV6DeviceName(config.backend.vni));
      if (!dev) return null;
      for (const a of await this.kernel.listAddresses(dev.index, 6)) {
        if (a.prefixLen !== 128 || !isIPv6(a.address)) continue;
        const ip = parseIPv6(a.address);
        if (cidr6Contains(config.ipv6.network, ip)) return cidr6(ip, config.ipv6.subnetLen);
      }
    } catch (e) {
      this.log.warn({ err: errorText(e) }, 'could not read the previous IPv6 subnet from the device');
    }
    return null;
  }

  /** When the lease watch last saw `subnet`'s lease (its leaseId) written (unix ms): its last renewal or change. */
  lastSeen(subnet: string): number | undefined {
    return this.seen.get(subnet)?.at;
  }

  /** A peer lease's expiry (unix ms) from etcd; undefined when unknown or not watching yet. */
  async leaseExpiry(lease: Lease): Promise<number | undefined> {
    return this.leaseWatch?.expiryOf?.(lease);
  }

  private noteSeen(ev: LeaseEvent): void {
    const now = Date.now();
    const note = (l: Lease) => {
      const k = leaseId(l);
      const prev = this.seen.get(k);
      if (!prev || prev.etcdLease !== l.etcdLease || prev.modRevision !== l.modRevision) this.seen.set(k, { etcdLease: l.etcdLease, modRevision: l.modRevision, at: now });
    };
    if (ev.type === 'snapshot') {
      const present = new Set(ev.leases.map(leaseId));
      for (const k of this.seen.keys()) if (!present.has(k)) this.seen.delete(k);
      ev.leases.forEach(note);
    } else if (ev.type === 'added') note(ev.lease);
    else this.seen.delete(leaseId(ev.lease));
  }

  private onLeaseEvent(ev: LeaseEvent): void {
    const dp = this.dataplane;
    if (!dp) return;
    this.noteSeen(ev);
    if (ev.type === 'snapshot') dp.setLeases(ev.leases);
    else if (ev.type === 'added') dp.leaseAdded(ev.lease);
    else dp.leaseRemoved(ev.lease);
    this.emit('peers', ev);
  }

  /** flanneld's subnet.env (SUBNET_FILE); a failure is a warning, never fatal. */
  private async writeSubnetEnv(config: NetworkConfig, lease: Lease): Promise<void> {
    const path = this.opts.subnetFile;
    const dp = this.dataplane;
    if (!path || !dp || this.state === 'stopped') return;
    try {
      const v6 = config.ipv6 && lease.subnet6 ? { network: config.ipv6.network, subnet: lease.subnet6 } : undefined;
      await writeSubnetFile(path, subnetEnvContent(config.enableIPv4 ? config.network : null, lease.subnet, dp.mtu, this.opts.tuning.ipMasq, v6));
      this.log.info({ path, subnet: leaseId(lease) }, 'subnet.env written');
    } catch (e) {
      this.log.warn({ err: errorText(e), path }, 'could not write subnet.env (SUBNET_FILE); the overlay works without it');
    }
  }

  /** A wireguard config's devices (flannel-wg, or fwg-<name> for a named overlay, on ListenPort; when
   *  dual-stack also flannel-wg-v6 / fw6-<name> on ListenPortV6), claimed for this overlay on this
   *  host: null when held, else why the config cannot run here (another WireGuard device of this
   *  host has one of those ports, or its two ports are one), handled as an invalid config. */
  private claimWireguard(config: NetworkConfig): string | null {
    if (config.backend.type !== 'wireguard') return null;
    return this.wgClaims.claim(this.opts.name, wireguardDeviceClaims(this.opts.name, config.backend, config.ipv6 !== undefined));
  }

  /** The wireguard backend's key pair, kept in STATE_DIR across restarts (one file per overlay:
   *  wireguard.key, wireguard-<name>.key); the private key is never logged. */
  private async wireguardKey(): Promise<WireguardKeyPair> {
    const file = wireguardKeyFile(this.opts.name);
    const { privateKey, publicKey, created } = await loadOrCreateWireguardKey(this.opts.tuning.stateDir, file);
    this.log.info({ publicKey, stateDir: this.opts.tuning.stateDir, file }, created ? 'wireguard key pair created (private key kept in the state dir, mode 0600)' : 'wireguard key pair loaded from the state dir');
    return { privateKey, publicKey };
  }

  private attrsFor(config: NetworkConfig, key?: WireguardKeyPair): LeaseAttrs {
    const b = config.backend;
    if (b.type === 'wireguard' && key) {
      const attrs: LeaseAttrs = { publicIP: this.pub.publicIP, backendType: 'wireguard', wireguard: { publicKey: key.publicKey } };
      // Dual-stack (Mode "separate"): PublicIPv6 and BackendV6Data with flannel-wg-v6's key (the same key, as flanneld's one key file).
      const v6 = config.ipv6 ? this.pub.publicIPv6 : undefined;
      return v6 ? { ...attrs, publicIPv6: v6, wireguard6: { publicKey: key.publicKey } } : attrs;
    }
    if (b.type === 'vxlan' && !config.enableIPv4) {
      // IPv6-only, as flanneld's newSubnetAttrs without a v4 device: PublicIP zero, no BackendData (the join checked publicIPv6).
      const v6 = this.pub.publicIPv6 ?? '';
      return { publicIP: '0.0.0.0', backendType: 'vxlan', publicIPv6: v6, vxlan6: { vni: b.vni, vtepMac: vtepMacFor(b.vni, v6) } };
    }
    if (b.type === 'vxlan') {
      const attrs: LeaseAttrs = { publicIP: this.pub.publicIP, backendType: 'vxlan', vxlan: { vni: b.vni, vtepMac: vtepMacFor(b.vni, this.pub.publicIP) } };
      // Dual-stack (issue 21): flanneld's PublicIPv6 and BackendV6Data (the MAC of flannel-v6.<VNI>).
      const v6 = config.ipv6 ? this.pub.publicIPv6 : undefined;
      return v6 ? { ...attrs, publicIPv6: v6, vxlan6: { vni: b.vni, vtepMac: vtepMacFor(b.vni, v6) } } : attrs;
    }
    // host-gw: its BackendType; alloc: none at all (flanneld's alloc writes only the PublicIPs).
    return { publicIP: this.pub.publicIP, backendType: leaseBackendType(b) };
  }

  async stop(): Promise<void> {
    this.state = 'stopped';
    this.abort.abort();
    this.wgClaims.release(this.opts.name);
    await this.configWatch?.stop();
    await this.dataplane?.detach();
    await this.leaseWatch?.stop();
    await this.keeper?.stop();
  }
}
