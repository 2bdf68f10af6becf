/**
 * FakeKernel: an in-memory Kernel that passes the same contract as NetlinkKernel
 * (test/kernel/kernel-contract.ts), for unit tests of reconcile/driver without root.
 *
 * Design note: the netlink half (links, addresses, routes, neighbours, FDB, the test hooks
 * addDevice/failNext/writes, and the kernel behaviour it models) is FakeNetlink in fake-netlink.ts;
 * this file adds the forwarding and accept_ra sysctls, and the firewall rule tables the real adapter keeps with nftables/iptables:
 * - FORWARD accept rules per network (`forwardChain` false = no nftables FORWARD chain);
 * - ip-masq rules per network (`natChain` false = no nftables nat chain);
 * - NOTRACK rules per network, and published-port rules per endpoint, as their rule text, with
 *   the same port-conflict check as the real adapter;
 * - the FORWARD head block as its rule comments (rewritten whole when not exactly as wanted, as
 *   the real adapter does), in the same `forwardChain`;
 * - IPv6 (a ':' in the network, as the real adapter): the same tables for `ip6`, where the head
 *   block creates `ip6 filter FORWARD` (`forwardChain6`) and masquerade creates `ip6 nat` (`nat6`);
 * - the fast path table as the last plan written (a new digest = the table written anew);
 * - the names interception as the last spec written, and packet queues as FakePacketQueue
 *   (fake-packet-queue.ts): one binding per queue number, as the kernel allows.
 * - WireGuard devices as a `tun` link with its key, port and peers (the userspace path: the fake
 *   models wireguard-go; `wireguardGo` false = not installed, the same UNSUPPORTED as the real one).
 * Rule writes that change something are logged in `writes` like netlink writes; `calls` counts
 * every call per method (dumps included).
 */
import { notrackRuleText, type NotrackRule } from '../../src/domain/notrack-rules';
import { portConflict, portInUse, portRuleText, type PortRule } from '../../src/domain/port-rules';
import { checkIfName, parseNetworkCidr } from '../../src/kernel/codec';
import { checkWireguardPeerAddresses } from '../../src/kernel/kernel-wireguard';
import { checkNameSpec, KernelError, WG_INSTALL_HINT, type WireguardInfo, type WireguardPeer, type WireguardSpec, type FastpathResult, type MulticastResult, type ForwardHeadResult, type Kernel, type NameInterceptionSpec, type PacketHandler, type PacketQueueOptions } from '../../src/kernel';
import { FakePacketQueue } from './fake-packet-queue';
import { invalid, notFound, OverlayError, unavailable, unsupported } from '../../src/errors';
import { isWireguardKey } from '../../src/domain/wireguard-config';
import { forwardHeadRules } from '../../src/domain/forward-head';
import type { FastpathPlan } from '../../src/domain/fastpath';
import type { MulticastPlan } from '../../src/domain/multicast';
import { FakeNetlink } from './fake-netlink';
import { anyNetwork, familyOf } from './fake-v6';

export class FakeKernel extends FakeNetlink implements Kernel {
  /** Calls per Kernel method, reads included (the scale checks count dumps with it). */
  readonly calls = new Map<keyof Kernel, number>();
  protected override enter(method: keyof Kernel, arg = '', write = false): void {
    this.calls.set(method, (this.calls.get(method) ?? 0) + 1);
    super.enter(method, arg, write);
  }

  // ---- sysctls: forwarding, accept_ra

  /** ifindexes with forwarding on */
  readonly forwarding = new Set<number>();

  /** net.ipv6.conf.all.forwarding */
  ipv6Forwarding = false;
  async ensureIpv6Forwarding(): Promise<{ state: 'already' | 'set'; path: string }> {
    const path = '/proc/sys/net/ipv6/conf/all/forwarding';
    if (this.ipv6Forwarding) return { state: 'already', path };
    this.ipv6Forwarding = true;
    return { state: 'set', path };
  }
  /** net.ipv6.conf.<name>.accept_ra of a link (a new link's is 1, the kernel's default). */
  acceptRa(name: string): number | null {
    const l = this.byName(name);
    return l ? (l.acceptRa ?? 1) : null;
  }
  async disableAcceptRa(name: string): Promise<{ state: 'already' | 'set'; path: string }> {
    this.enter('disableAcceptRa', name, true);
    checkIfName(name);
    const path = `/proc/sys/net/ipv6/conf/${name}/accept_ra`;
    const l = this.byName(name);
    if (!l) throw unavailable(`could not set net.ipv6.conf.${name}.accept_ra=0 (${path}: ENOENT)`);
    if (l.acceptRa === 0) return { state: 'already', path };
    l.acceptRa = 0;
    return { state: 'set', path };
  }
  async setForwarding(ifindex: number, on: boolean): Promise<void> {
    this.enter('setForwarding', String(ifindex), true);
    this.requireLink(ifindex, `set forwarding on link #${ifindex}`);
    if (on) this.forwarding.add(ifindex);
    else this.forwarding.delete(ifindex);
  }

  /** Networks whose FORWARD accept rules exist; `forwardChain` false = no nftables FORWARD chain. */
  readonly forwardAccept = new Set<string>();
  forwardChain = true;
  /** `ip6 filter FORWARD`: absent until the head block writes v6 rules (or a test sets it). */
  forwardChain6 = false;
  async ensureForwardAccept(network: string): Promise<'present' | 'added' | 'no-chain'> {
    this.enter('ensureForwardAccept', network);
    if (!(familyOf(network) === 6 ? this.forwardChain6 : this.forwardChain)) return 'no-chain';
    if (this.forwardAccept.has(network)) return 'present';
    this.forwardAccept.add(network);
    return 'added';
  }

  /** ip-masq rules: network → the subnet they were written for; `natChain` false = no nftables nat chain. */
  readonly masquerade = new Map<string, string>();
  natChain = true;
  /** `ip6 nat` POSTROUTING: made by the first v6 masquerade write, as the real adapter does. */
  nat6 = false;
  async ensureMasquerade(network: string, subnet: string): Promise<'present' | 'updated' | 'no-chain'> {
    this.enter('ensureMasquerade', `${network} ${subnet}`);
    anyNetwork(network);
    anyNetwork(subnet);
    if (familyOf(network) === 6) this.nat6 = true;
    else if (!this.natChain) return 'no-chain';
    if (this.masquerade.get(network) === subnet) return 'present';
    this.masquerade.set(network, subnet);
    this.writes.push(`ensureMasquerade ${network} ${subnet}`);
    return 'updated';
  }
  async removeMasquerade(network: string): Promise<number | 'no-chain'> {
    this.enter('removeMasquerade', network);
    if (!(familyOf(network) === 6 ? this.nat6 : this.natChain)) return 'no-chain';
    const had = this.masquerade.delete(network);
    if (had) this.writes.push(`removeMasquerade ${network}`);
    return had ? 5 : 0;
  }

  /** NOTRACK rules: network → the rules as `iptables -t raw -S` text. */
  readonly notrack = new Map<string, string[]>();
  async ensureNotrack(network: string, rules: NotrackRule[]): Promise<'present' | 'updated'> {
    this.enter('ensureNotrack', network);
    anyNetwork(network);
    const want = rules.map(notrackRuleText);
    if (JSON.stringify(this.notrack.get(network)) === JSON.stringify(want)) return 'present';
    this.notrack.set(network, want);
    this.writes.push(`ensureNotrack ${network} ${want.length}`);
    return 'updated';
  }
  async removeNotrack(network: string): Promise<number> {
    this.enter('removeNotrack', network);
    const had = this.notrack.get(network)?.length ?? 0;
    this.notrack.delete(network);
    if (had) this.writes.push(`removeNotrack ${network}`);
    return had;
  }

  /** Published-port rules: endpoint id (12) → the rules as `iptables -S` text. */
  readonly ports = new Map<string, string[]>();
  async ensurePortMappings(endpointId: string, rules: PortRule[]): Promise<'present' | 'updated' | 'no-chain'> {
    this.enter('ensurePortMappings', endpointId.slice(0, 12));
    const want = rules.map(portRuleText);
    const key = endpointId.slice(0, 12);
    if (!this.natChain) return want.length === 0 ? 'present' : 'no-chain';
    const others = [...this.ports].filter(([k]) => k !== key).flatMap(([, v]) => v.map((t) => /--comment "([^"]*)"/.exec(t)?.[1]));
    const clash = portConflict(endpointId, rules, others);
    if (clash) throw portInUse(endpointId, clash);
    const had = this.ports.get(key) ?? [];
    if (had.length === want.length && had.every((x, i) => x === want[i])) return 'present';
    if (want.length === 0) this.ports.delete(key);
    else this.ports.set(key, want);
    this.writes.push(`ensurePortMappings ${key} ${want.length}`);
    return 'updated';
  }
  async removePortMappings(endpointId: string): Promise<number | 'no-chain'> {
    this.enter('removePortMappings', endpointId.slice(0, 12));
    if (!this.natChain) return 'no-chain';
    const key = endpointId.slice(0, 12);
    const n = this.ports.get(key)?.length ?? 0;
    if (this.ports.delete(key)) this.writes.push(`removePortMappings ${key}`);
    return n;
  }

  /** The FORWARD head block, as the comments of its rules in chain order (`forwardHead6`: ip6 filter's). */
  forwardHead: string[] = [];
  forwardHead6: string[] = [];
  async ensureForwardHead(networks: readonly string[]): Promise<ForwardHeadResult> {
    this.enter('ensureForwardHead', networks.join(','));
    networks.forEach((n) => anyNetwork(n, 'overlay Network'));
    const rules = forwardHeadRules(networks);
    const block = (family: 4 | 6): { added: number; removed: number } => {
      const want = rules.filter((r) => familyOf(r.src) === family).map((r) => r.comment);
      const have = family === 6 ? this.forwardHead6 : this.forwardHead;
      if (want.length === have.length && want.every((c, i) => c === have[i])) return { added: 0, removed: 0 };
      if (family === 6) [this.forwardHead6, this.forwardChain6] = [want, true];
      else this.forwardHead = want;
      this.writes.push(`ensureForwardHead${family === 6 ? '6' : ''} ${want.length}`);
      return { added: want.length, removed: have.length };
    };
    const v6 = this.forwardChain6 || rules.some((r) => familyOf(r.src) === 6) ? block(6) : { added: 0, removed: 0 };
    if (!this.forwardChain) return { state: 'no-chain' };
    const v4 = block(4);
    return { state: 'ok', added: v4.added + v6.added, removed: v4.removed + v6.removed };
  }

  /** The fast path table: the plan last written, null without a table. */
  fastpath: FastpathPlan | null = null;
  async ensureFastpath(plan: FastpathPlan): Promise<FastpathResult> {
    this.enter('ensureFastpath', plan.digest);
    const have = this.fastpath;
    if (plan.overlays.length === 0) {
      this.fastpath = null;
      if (have) this.writes.push('removeFastpath');
      return have ? 'removed' : 'absent';
    }
    this.fastpath = structuredClone(plan);
    const elements = (p: FastpathPlan) => JSON.stringify(p.overlays.map((o) => [o.endpoints, o.peers]));
    if (have === null || have.digest !== plan.digest) {
      this.writes.push(`ensureFastpath rewritten ${plan.digest}`);
      return 'rewritten';
    }
    if (elements(have) === elements(plan)) return 'present';
    this.writes.push(`ensureFastpath updated ${plan.digest}`);
    return 'updated';
  }
  async removeFastpath(): Promise<boolean> {
    return (await this.ensureFastpath({ overlays: [], digest: '' })) === 'removed';
  }

  async setLinkAlias(name: string, alias: string): Promise<void> {
    this.enter('setLinkAlias', name, true);
    const l = this.byName(name);
    if (!l) throw notFound(`set the alias of link "${name}": no such link`);
    if (alias) l.alias = alias;
    else delete l.alias;
  }

  /** The multicast table: the plan last written, null without a table. */
  multicast: MulticastPlan | null = null;
  async ensureMulticast(plan: MulticastPlan): Promise<MulticastResult> {
    this.enter('ensureMulticast', plan.digest);
    const have = this.multicast;
    if (plan.chains.length === 0) {
      this.multicast = null;
      if (have) this.writes.push('removeMulticast');
      return have ? 'removed' : 'absent';
    }
    if (have?.digest === plan.digest) return 'present';
    this.multicast = structuredClone(plan);
    this.writes.push(`ensureMulticast rewritten ${plan.digest}`);
    return 'rewritten';
  }
  async removeMulticast(): Promise<boolean> {
    return (await this.ensureMulticast({ chains: [], digest: '' })) === 'removed';
  }

  /** The names interception as last written (null = none). */
  nameInterception: NameInterceptionSpec | null = null;
  async ensureNameInterception(spec: NameInterceptionSpec): Promise<'present' | 'updated'> {
    this.enter('ensureNameInterception', String(spec.queue));
    checkNameSpec(spec);
    if (JSON.stringify(this.nameInterception) === JSON.stringify(spec)) return 'present';
    this.nameInterception = structuredClone(spec);
    this.writes.push(`ensureNameInterception ${spec.queue}`);
    return 'updated';
  }
  async removeNameInterception(): Promise<boolean> {
    this.enter('removeNameInterception');
    const had = this.nameInterception !== null;
    this.nameInterception = null;
    if (had) this.writes.push('removeNameInterception');
    return had;
  }

  /** false: wireguard-go is not installed (and the fake kernel has no WireGuard). */
  wireguardGo = true;
  async ensureWireguard(spec: WireguardSpec): Promise<WireguardInfo> {
    this.enter('ensureWireguard', spec.name, true);
    checkIfName(spec.name, 'wireguard device name');
    if (!isWireguardKey(spec.privateKey)) throw invalid(`wireguard device "${spec.name}": the private key is not base64 of 32 bytes (as \`wg genkey\` prints)`);
    if (!Number.isInteger(spec.listenPort) || spec.listenPort < 1 || spec.listenPort > 65535) throw invalid(`wireguard device "${spec.name}": listen port ${spec.listenPort} is not in 1..65535`);
    let l = this.byName(spec.name);
    if (l && !l.wg) {
      this.removeLink(l);
      l = undefined;
    }
    if (!l) {
      if (!this.wireguardGo) throw unsupported(WG_INSTALL_HINT);
      l = this.newLink(spec.name, 'tun', 1420);
      l.wg = { privateKey: spec.privateKey, listenPort: spec.listenPort, peers: new Map() };
    }
    l.wg!.privateKey = spec.privateKey;
    l.wg!.listenPort = spec.listenPort;
    l.mtu = spec.mtu;
    this.bringUp(l);
    const { index, name, kind, mtu, mac, up, master } = l;
    return { index, name, kind, mtu, mac, up, master, implementation: 'userspace', reason: 'this kernel has no wireguard link kind: using wireguard-go (fake)', listenPort: spec.listenPort };
  }
  private wgOf(name: string, what: string) {
    const l = this.byName(name);
    if (!l?.wg) throw notFound(`${what} of "${name}": it is not a running WireGuard device of this daemon`);
    return l.wg;
  }
  async listWireguardPeers(name: string): Promise<WireguardPeer[]> {
    this.enter('listWireguardPeers', name);
    return [...this.wgOf(name, 'list the wireguard peers').peers.values()].map((p) => structuredClone(p));
  }
  async updateWireguardPeers(name: string, peers: readonly WireguardPeer[], remove: readonly string[]): Promise<void> {
    this.enter('updateWireguardPeers', `${name} ${peers.length} ${remove.length}`, true);
    for (const p of peers) {
      if (!isWireguardKey(p.publicKey)) throw invalid(`wireguard peer public key: not a WireGuard key`);
      checkWireguardPeerAddresses(p); // the real door's check: v4 or v6 allowed IPs and endpoints
    }
    const wg = this.wgOf(name, 'update the wireguard peers');
    for (const p of peers) {
      const { publicKey, endpoint, allowedIPs, presharedKey, persistentKeepalive } = p;
      wg.peers.set(publicKey, { publicKey, ...(endpoint ? { endpoint } : {}), allowedIPs: [...allowedIPs], ...(presharedKey ? { presharedKey } : {}), ...(persistentKeepalive ? { persistentKeepalive } : {}) });
    }
    for (const k of remove) wg.peers.delete(k);
  }

  /** Bound packet queues by number. */
  readonly queues = new Map<number, FakePacketQueue>();
  async openPacketQueue(queue: number, handler: PacketHandler, _opts?: PacketQueueOptions): Promise<FakePacketQueue> {
    this.enter('openPacketQueue', String(queue));
    if (!Number.isInteger(queue) || queue < 0 || queue > 65535) throw new OverlayError('INVALID', `packet queue number ${queue}: must be an integer 0–65535; choose another queue number`);
    if (this.queues.has(queue)) throw new KernelError(`nfqueue: bind queue ${queue}: EPERM`, 'EPERM');
    const q = new FakePacketQueue(queue, handler, () => this.queues.delete(queue));
    this.queues.set(queue, q);
    return q;
  }
}
