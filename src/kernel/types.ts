/**
 * The kernel as the rest of the daemon sees it. Only src/kernel imports `netlink`; everything else
 * (reconcile, driver, tests with the fake) codes against this interface.
 *
 * Conventions:
 * - IPv4 addresses are dotted strings, MACs lowercase colon-separated strings, CIDRs "a.b.c.d/n".
 * - IPv6 (issue 21: flannel-v6.<VNI>) is told by the text: an address or CIDR with a ':' is IPv6,
 *   written and read back in RFC 5952 form ("fd00:10:0:2::", "fd00:10:0:2::/64"). The dumps that
 *   have no address to look at take an `IpFamily` (4 by default, so v4 callers are unchanged).
 * - Every write is idempotent ("ensure"/"replace"/"delete if present"): EEXIST/ENOENT are absorbed,
 *   an object with the wrong attributes is repaired or recreated.
 * - Failures are OverlayError: code 'KERNEL' with the object and errno in the message, 'UNSUPPORTED'
 *   for a missing kernel feature (e.g. no vxlan module), 'NOT_FOUND' for a missing link on a lookup.
 */
import type { PortRule } from '../domain/port-rules';
import type { NotrackRule } from '../domain/notrack-rules';
import type { FastpathPlan } from '../domain/fastpath';
import type { MulticastPlan } from '../domain/multicast';

/** Which address family a dump lists. */
export type IpFamily = 4 | 6;

export interface LinkInfo {
  index: number;
  name: string;
  kind: string; // 'vxlan' | 'bridge' | 'veth' | '' (plain device) …
  mtu: number;
  mac: string;
  up: boolean;
  master: number; // ifindex of the bridge it is enslaved to, 0 if none
  alias?: string; // IFLA_IFALIAS, when set
}

export interface VxlanSpec {
  name: string; // flannel.<VNI>, flannel-v6.<VNI>
  vni: number;
  parentIndex: number; // the public interface
  local: string; // PUBLIC_IP; an IPv6 address = IFLA_VXLAN_LOCAL6 (MTU then at most parent − 70)
  port: number; // 0 = kernel default (8472), as flannel
  learning: boolean;
  gbp: boolean;
  mtu: number;
  mac: string; // deterministic VtepMAC
}

export interface VxlanInfo extends LinkInfo {
  vni: number;
  local: string;
  port: number; // as the kernel reports it (8472 when created with 0)
  learning: boolean;
  parentIndex: number;
}

/** The WireGuard device of the wireguard backend (flannel-wg): wireguard-go (userspace) or kernel WireGuard. */
export interface WireguardSpec {
  name: string; // flannel-wg
  privateKey: string; // base64 of 32 bytes: never logged, never in an error message
  listenPort: number;
  mtu: number;
}

export interface WireguardInfo extends LinkInfo {
  /** Which implementation runs the device ('userspace' = wireguard-go, configured over its UAPI socket). */
  implementation: 'kernel' | 'userspace';
  /** Why this implementation (e.g. "kernel has no wireguard link kind, using wireguard-go"). */
  reason: string;
  listenPort: number;
}

/** One WireGuard peer (keys base64 as wg prints them). */
export interface WireguardPeer {
  publicKey: string;
  endpoint?: string; // "192.0.2.2:51820"
  allowedIPs: readonly string[]; // CIDRs
  presharedKey?: string;
  persistentKeepalive?: number; // seconds; absent = off
}

export interface AddressEntry {
  ifindex: number;
  address: string;
  prefixLen: number;
}

export interface RouteEntry {
  dst: string; // CIDR
  gateway?: string;
  oif: number;
  onlink: boolean;
}

export interface NeighbourEntry {
  ifindex: number;
  ip: string;
  mac: string;
  permanent: boolean;
}

export interface FdbEntry {
  ifindex: number;
  mac: string;
  dst: string; // remote VTEP (PublicIP, or PublicIPv6 on flannel-v6.<VNI>)
  permanent: boolean;
}

/** What ensureForwardHead did: 'no-chain' when `ip filter FORWARD` does not exist (nothing done). */
export type ForwardHeadResult = { state: 'no-chain' } | { state: 'ok'; added: number; removed: number };

/** What ensureFastpath did: 'updated' = endpoints/peers changed in place, 'rewritten' = the table written anew. */
export type FastpathResult = 'present' | 'updated' | 'rewritten' | 'removed' | 'absent';

/** What ensureMulticast did: 'rewritten' = the table written anew (it changes as a whole). */
export type MulticastResult = 'present' | 'rewritten' | 'removed' | 'absent';

/** One packet an NFQUEUE rule handed to us (nfqueue.ts): `payload` from the IP header on. */
export interface QueuedPacket {
  id: number;
  mark: number;
  indev: number; // ifindex it came in on
  payload: Buffer;
}
/** The verdict is always ACCEPT; returning `{ mark }` sets the packet's mark, nothing leaves it untouched.
 *  Synchronous; a throw counts as a plain ACCEPT. */
export type PacketHandler = (p: QueuedPacket) => { mark: number } | undefined | void;
export interface PacketQueueOptions {
  copyRange?: number; // bytes of each packet copied to us, default 1500
  maxLen?: number; // packets held before the kernel accepts the rest untouched (FAIL_OPEN), default 64
  recvBufferSize?: number;
}
export interface PacketQueueStats {
  received: number;
  marked: number;
  handlerErrors: number;
  overruns: number; // ENOBUFS: messages the kernel could not deliver (it accepted those packets)
  sendErrors: number; // verdicts the socket could not send or the kernel refused
}
export interface PacketQueue {
  readonly queue: number;
  readonly stats: PacketQueueStats;
  /** Unbind and close; from then on the rule's bypass accepts packets untouched. Idempotent. */
  close(): Promise<void>;
}

/** Where cross-host name queries are intercepted (nft-names.ts; docs/names-design.md §3). */
export interface NameInterceptionSpec {
  queue: number; // NFQUEUE number
  markBit: number; // one bit, e.g. 0x00100000: a verdict with it set means "answer locally"
  zone: number; // conntrack zone of answered flows
  answerAddress: string; // the answer socket's IPv4 address, e.g. 169.254.53.53
  answerPort: number; // its UDP port, e.g. 53
  interfacePrefixes: string[]; // container-side devices whose DNS queries we look at, e.g. ['ofh', 'ofb-']
}

export interface Kernel {
  // links
  getLink(name: string): Promise<LinkInfo | null>;
  listLinks(): Promise<LinkInfo[]>;
  /** Create flannel.<VNI> or keep the existing one if compatible (vni, parent, local, port, learning,
   *  gbp); recreate otherwise. Sets MTU and MAC, brings it up. */
  ensureVxlan(spec: VxlanSpec): Promise<VxlanInfo>;
  getVxlan(name: string): Promise<VxlanInfo | null>;
  /** Create a bridge (or keep it), set MTU, bring it up. */
  ensureBridge(name: string, mtu: number): Promise<LinkInfo>;
  /** A veth pair: `hostName` enslaved to bridge `bridgeName` (if given) and up; `peerName` left down
   *  in the current namespace for Docker to move. Both ends get `mtu`. Recreated if half present. */
  ensureVethPair(hostName: string, peerName: string, mtu: number, bridgeName?: string): Promise<LinkInfo>; // the host end
  deleteLink(name: string): Promise<void>; // absent is fine
  setLinkUp(name: string): Promise<void>;
  /** IFLA_IFALIAS ('' clears it): a network's record bridge says `overlay-flannel multicast=off` there. */
  setLinkAlias(name: string, alias: string): Promise<void>;
  /** net.ipv4.conf.<dev>.forwarding: the kernel forwards what arrives on this device. */
  setForwarding(ifindex: number, on: boolean): Promise<void>;
  /** net.ipv6.conf.all.forwarding=1 in this namespace (src/kernel/links.ts: no per-device v6 switch); UNAVAILABLE if it cannot be set. */
  ensureIpv6Forwarding(): Promise<{ state: 'already' | 'set'; path: string }>;
  /** net.ipv6.conf.<name>.accept_ra=0 (procfs, links.ts), as flanneld on flannel-v6.<VNI>; UNAVAILABLE if it cannot be set. */
  disableAcceptRa(name: string): Promise<{ state: 'already' | 'set'; path: string }>;

  // wireguard (kernel-wireguard.ts: kernel WireGuard over generic netlink where the kernel has it, else wireguard-go)
  /** Make `spec.name` a WireGuard device with this key and port, MTU set and up. A link of that
   *  name that is not our running device (a leftover of an earlier run) is deleted first, as
   *  flanneld does. Neither kernel WireGuard nor wireguard-go: UNSUPPORTED naming what to install. */
  ensureWireguard(spec: WireguardSpec): Promise<WireguardInfo>;
  /** The device's peers; NOT_FOUND when it is not one of our WireGuard devices. */
  listWireguardPeers(name: string): Promise<WireguardPeer[]>;
  /** Add or update peers (each one's allowed IPs replaced), remove `remove` (public keys). */
  updateWireguardPeers(name: string, peers: readonly WireguardPeer[], remove: readonly string[]): Promise<void>;

  // addresses
  /** The link's addresses of `family` (4 by default; 6 includes link-local ones). */
  listAddresses(ifindex: number, family?: IpFamily): Promise<AddressEntry[]>;
  /** Make `cidr` the only address of its family on the link inside `within` (a CIDR of the same
   *  family; other addresses in it are removed, as flannel does for flannel.<VNI> and
   *  flannel-v6.<VNI>). An IPv6 address is added without duplicate address detection. */
  ensureOnlyAddress(ifindex: number, cidr: string, within?: string): Promise<void>;
  /** Delete exactly `cidr` (address and prefix length) from the link: true if it was there. */
  removeAddress(ifindex: number, cidr: string): Promise<boolean>;

  // routes (main table; replaceRoute/deleteRoute take either family by the dst's text)
  listRoutes(oif?: number, family?: IpFamily): Promise<RouteEntry[]>;
  replaceRoute(r: RouteEntry): Promise<void>;
  deleteRoute(dst: string): Promise<void>; // absent is fine
  /** The interface of the IPv4 default route, if any (for IFACE's default). */
  defaultRouteInterface(): Promise<LinkInfo | null>;

  // neighbours (ARP; NDP for an IPv6 ip) and FDB (dst an IPv4 or IPv6 VTEP)
  listNeighbours(ifindex: number, family?: IpFamily): Promise<NeighbourEntry[]>;
  replaceNeighbour(n: NeighbourEntry): Promise<void>;
  deleteNeighbour(ifindex: number, ip: string): Promise<void>;
  listFdb(ifindex: number): Promise<FdbEntry[]>;
  replaceFdb(f: FdbEntry): Promise<void>;
  deleteFdb(ifindex: number, mac: string, dst?: string): Promise<void>;

  // firewall (each network's family told by its text: an IPv6 CIDR's rules go to the `ip6` tables,
  // docs/ipv6.md §6; `ip6 filter` FORWARD for the head block and `ip6 nat` are made when missing)
  /** flannel's forward rules: nftables `ip filter` chain FORWARD accepts traffic from and to
   *  `network` (dockerd sets the FORWARD policy to DROP). Idempotent; 'no-chain' when that chain
   *  does not exist (nothing done). */
  ensureForwardAccept(network: string): Promise<'present' | 'added' | 'no-chain'>;
  /** flannel's ip-masq rules for overlay `network` with this host's `subnet`, at the head of
   *  nftables `ip nat` POSTROUTING, commented "overlay-flannel masq <network>" (nft-masq.ts).
   *  Rewritten (old ones removed) when they differ, e.g. after a subnet change; 'no-chain' when
   *  that chain does not exist (nothing done). */
  ensureMasquerade(network: string, subnet: string): Promise<'present' | 'updated' | 'no-chain'>;
  /** Delete the ip-masq rules of `network`: how many there were, 'no-chain' if no nat chain. */
  removeMasquerade(network: string): Promise<number | 'no-chain'>;
  /** Connection-tracking bypass (NOTRACK) for overlay `network`: make our rules in nftables `ip raw`
   *  exactly `rules` (src/domain/notrack-rules.ts; nft-notrack.ts), creating the table and its
   *  PREROUTING/OUTPUT chains as iptables-nft would when missing. */
  ensureNotrack(network: string, rules: NotrackRule[]): Promise<'present' | 'updated'>;
  /** Delete our NOTRACK rules of `network`: how many there were. */
  removeNotrack(network: string): Promise<number>;
  /** Published ports of endpoint `endpointId`: make its DNAT rules in nftables `ip nat` PREROUTING
   *  and OUTPUT exactly `rules` (found by their comment, src/domain/port-rules.ts; nft-ports.ts).
   *  'no-chain' when there is no `ip nat` table (nothing done). */
  ensurePortMappings(endpointId: string, rules: PortRule[]): Promise<'present' | 'updated' | 'no-chain'>;
  /** Delete endpoint `endpointId`'s DNAT rules: how many there were, 'no-chain' if no nat table. */
  removePortMappings(endpointId: string): Promise<number | 'no-chain'>;
  /** The head block of nftables `ip filter FORWARD` (src/domain/forward-head.ts; nft-isolation.ts):
   *  exactly the accepts within each of `networks` and the drops between every two of them, right
   *  after Docker's DOCKER-USER jump (or at the head). Rewritten in one transaction when not so;
   *  'no-chain' when the chain does not exist (never created). */
  ensureForwardHead(networks: readonly string[]): Promise<ForwardHeadResult>;

  // fast path (nftables netdev table, src/domain/fastpath.ts; nft-fastpath.ts)
  /** Make the table hold `plan`; an empty plan removes it. */
  ensureFastpath(plan: FastpathPlan): Promise<FastpathResult>;
  /** Delete the table: true if it was there. */
  removeFastpath(): Promise<boolean>;

  // multicast and broadcast (nftables netdev table, src/domain/multicast.ts; nft-multicast.ts)
  /** Make the table `netdev overlay-flannel-mcast` hold `plan`; an empty plan removes it. */
  ensureMulticast(plan: MulticastPlan): Promise<MulticastResult>;
  /** Delete that table: true if it was there. */
  removeMulticast(): Promise<boolean>;

  // cross-host names (nfqueue.ts, nft-names.ts)
  /** Bind NFQUEUE `queue` (FAIL_OPEN) and give each of its packets to `handler`. The queue has its
   *  own socket: close it with its handle (Kernel.close() leaves it bound). */
  openPacketQueue(queue: number, handler: PacketHandler, opts?: PacketQueueOptions): Promise<PacketQueue>;
  /** The queue rule in `ip raw` PREROUTING (comment "overlay-flannel names queue") and our table
   *  `ip overlay-flannel-dns` (zone, dnat, guard chains), exactly as `spec` says. */
  ensureNameInterception(spec: NameInterceptionSpec): Promise<'present' | 'updated'>;
  /** Delete the queue rule and our table: true if anything was there. */
  removeNameInterception(): Promise<boolean>;

  close(): Promise<void>;
}
