/**
 * FakeNetlink: the in-memory netlink half of FakeKernel (test/fakes/fake-kernel.ts): links,
 * addresses, routes, neighbours and FDB entries, the test hooks, and the call log. FakeKernel adds
 * the firewall rule tables (nftables/iptables) on top; tests use FakeKernel.
 *
 * It models the kernel behaviour callers can trip over, not just a key/value store:
 * - links get fresh ifindexes when recreated; deleting a link takes its veth peer, addresses,
 *   routes, neighbours and FDB entries with it, and releases bridge ports;
 * - an address with prefix < 32 on an UP link adds the connected ("proto kernel") route;
 * - neighbours and FDB entries as the kernel keys them (fake-neighbours.ts);
 * - a route needs its oif up (ENETDOWN) and, without onlink, a gateway on a connected route
 *   (ENETUNREACH); neighbours/FDB need an existing link (ENODEV);
 * - errors are the same KernelError/OverlayError kinds and messages as the real adapter;
 * - IPv6 by the text, as the real adapter (fake-v6.ts): a v6 vxlan's MTU is at most parent − 70,
 *   a v6 /128 address brings its /128 route, dumps filter by family and print RFC 5952.
 * Test hooks: addDevice() (a plain NIC), failNext() (inject a failure), writes (a call log).
 * Subclasses go through enter() on every call, so failNext(), close() and the call log apply to them.
 */
import { conflict, invalid, notFound, OverlayError } from '../../src/errors';
import { checkIfName, ip4ToInt, macToBuf, parseCidr } from '../../src/kernel/codec';
import { FakeNeighbourTables } from './fake-neighbours';
import { anyCidr, anyContains, anyIp, anyNetwork, connectedRouteOf, familyOf } from './fake-v6';
import { KernelError } from '../../src/kernel/errno';
import { bridgeMacFor } from '../../src/domain/mac';
import type {
  AddressEntry,
  FdbEntry,
  IpFamily,
  Kernel,
  LinkInfo,
  NeighbourEntry,
  RouteEntry,
  VxlanInfo,
  VxlanSpec,
  WireguardPeer,
} from '../../src/kernel/types';

export interface FakeLink extends LinkInfo {
  vx?: { vni: number; local: string; port: number; learning: boolean; gbp: boolean; parentIndex: number };
  peer?: number; // veth peer ifindex
  peerMoved?: boolean; // peer moved to another netns (simulates Docker's Join)
  /** A WireGuard device's configuration (FakeKernel's ensureWireguard); peers by public key. */
  wg?: { privateKey: string; listenPort: number; peers: Map<string, WireguardPeer> };
  /** net.ipv6.conf.<name>.accept_ra; unset = 1, the kernel's default. */
  acceptRa?: number;
}
interface FakeRoute extends RouteEntry {
  connected?: boolean;
}

const DEFAULT_PORT = 8472;

function kerr(what: string, errno: string): KernelError {
  return new KernelError(`${what}: ${errno}`, errno);
}

export class FakeNetlink {
  private nextIndex = 2;
  private readonly links = new Map<number, FakeLink>();
  private addrs: AddressEntry[] = [];
  private routes: FakeRoute[] = [];
  private readonly neighbours = new FakeNeighbourTables((ifindex, what) => this.requireLink(ifindex, what));
  private closed = false;
  private readonly failures: { method: string; error: Error }[] = [];
  /** Every write call, as "method arg…", in order. */
  readonly writes: string[] = [];

  constructor() {
    this.links.set(1, { index: 1, name: 'lo', kind: '', mtu: 65536, mac: '00:00:00:00:00:00', up: true, master: 0 });
  }

  /** Test hook: a plain device (like a NIC), optionally up with one address. */
  addDevice(name: string, opts: { mtu?: number; up?: boolean; mac?: string; cidr?: string; cidr6?: string } = {}): LinkInfo {
    const l = this.newLink(name, '', opts.mtu ?? 1500, opts.mac);
    l.up = opts.up ?? true;
    if (opts.cidr) this.addAddr(l.index, parseCidr(opts.cidr).ip, parseCidr(opts.cidr).len);
    if (opts.cidr6) this.addAddr(l.index, anyCidr(opts.cidr6, 'address').ip, anyCidr(opts.cidr6, 'address').len);
    return { ...l };
  }

  /** Test hook: the next call of `method` throws `error` (e.g. a KernelError). */
  failNext(method: keyof Kernel, error: Error): void {
    this.failures.push({ method, error });
  }

  /** Test hook: simulate Docker moving a veth peer into a container namespace. */
  movePeerAway(peerName: string): void {
    const p = this.byName(peerName);
    if (!p || p.peer === undefined) throw new Error(`no veth "${peerName}"`);
    const h = this.links.get(p.peer);
    this.links.delete(p.index);
    if (h) h.peerMoved = true;
  }

  // ---- links

  async getLink(name: string): Promise<LinkInfo | null> {
    this.enter('getLink', name);
    const l = this.byName(name);
    return l ? pub(l) : null;
  }
  async listLinks(): Promise<LinkInfo[]> {
    this.enter('listLinks');
    return [...this.links.values()].map(pub);
  }
  async getVxlan(name: string): Promise<VxlanInfo | null> {
    this.enter('getVxlan', name);
    const l = this.byName(name);
    return l?.vx ? vxPub(l) : null;
  }

  async ensureVxlan(spec: VxlanSpec): Promise<VxlanInfo> {
    this.enter('ensureVxlan', spec.name, true);
    checkIfName(spec.name, 'vxlan name');
    if (!Number.isInteger(spec.vni) || spec.vni < 1 || spec.vni > 0xffffff) throw invalid(`vxlan "${spec.name}": vni ${spec.vni} is not in 1..16777215`);
    const local = anyIp(spec.local, `vxlan "${spec.name}" local`);
    macToBuf(spec.mac, `vxlan "${spec.name}" MAC`);
    const parent = spec.parentIndex ? this.links.get(spec.parentIndex) : undefined;
    if (spec.parentIndex && !parent) throw kerr(`create vxlan "${spec.name}"`, 'ENODEV');
    const headroom = familyOf(local) === 6 ? 70 : 50; // the kernel's VXLAN6_HEADROOM / VXLAN_HEADROOM
    const want = { vni: spec.vni, local, port: spec.port || DEFAULT_PORT, learning: spec.learning, gbp: spec.gbp, parentIndex: spec.parentIndex };
    let l = this.byName(spec.name);
    if (l && !(l.vx && (Object.keys(want) as (keyof typeof want)[]).every((k) => l?.vx?.[k] === want[k]))) {
      this.removeLink(l);
      l = undefined;
    }
    if (!l) {
      l = this.newLink(spec.name, 'vxlan', parent ? parent.mtu - headroom : 1500 - headroom);
      l.vx = want;
    }
    const maxMtu = parent ? parent.mtu - headroom : 65535;
    if (spec.mtu > maxMtu) throw kerr(`set vxlan "${spec.name}" mtu ${spec.mtu} address ${spec.mac} up`, 'EINVAL');
    l.mtu = spec.mtu;
    l.mac = spec.mac.toLowerCase();
    this.bringUp(l);
    return vxPub(l);
  }

  async ensureBridge(name: string, mtu: number): Promise<LinkInfo> {
    this.enter('ensureBridge', name, true);
    checkIfName(name, 'bridge name');
    let l = this.byName(name);
    if (l && l.kind !== 'bridge') {
      throw conflict(`ensure bridge "${name}": a link of kind "${l.kind || 'device'}" already has this name; remove it or choose another bridge name`);
    }
    if (!l) l = this.newLink(name, 'bridge', 1500);
    l.mtu = mtu;
    l.mac = bridgeMacFor(name);
    this.bringUp(l);
    return pub(l);
  }

  async ensureVethPair(hostName: string, peerName: string, mtu: number, bridgeName?: string): Promise<LinkInfo> {
    this.enter('ensureVethPair', `${hostName} ${peerName}`, true);
    checkIfName(hostName, 'veth host name');
    checkIfName(peerName, 'veth peer name');
    if (hostName === peerName) throw invalid(`veth "${hostName}": host and peer names must differ`);
    const bridge = bridgeName !== undefined ? this.byName(bridgeName) : undefined;
    if (bridgeName !== undefined && !bridge) throw notFound(`attach veth "${hostName}" to bridge "${bridgeName}": no such bridge`);
    if (bridge && bridge.kind !== 'bridge') throw conflict(`attach veth "${hostName}" to "${bridgeName}": that link is a ${bridge.kind || 'device'}, not a bridge`);
    let h = this.byName(hostName);
    let p = this.byName(peerName);
    for (const l of [h, p]) {
      if (l && l.kind !== 'veth') throw conflict(`ensure veth "${hostName}"/"${peerName}": "${l.name}" exists and is a ${l.kind || 'device'}, not a veth`);
    }
    const paired = h && p && h.peer === p.index && p.peer === h.index;
    const moved = h && !p && h.peerMoved === true;
    if (!(paired || moved)) {
      if (h) this.removeLink(h);
      if (p && this.links.has(p.index)) this.removeLink(p);
      h = this.newLink(hostName, 'veth', mtu);
      p = this.newLink(peerName, 'veth', mtu);
      h.peer = p.index;
      p.peer = h.index;
    }
    const host = h as FakeLink;
    host.mtu = mtu;
    if (bridge) host.master = bridge.index;
    this.bringUp(host);
    if (p) p.mtu = mtu;
    return pub(host);
  }

  async deleteLink(name: string): Promise<void> {
    this.enter('deleteLink', name, true);
    checkIfName(name);
    const l = this.byName(name);
    if (l) this.removeLink(l);
  }

  async setLinkUp(name: string): Promise<void> {
    this.enter('setLinkUp', name, true);
    const l = this.byName(name);
    if (!l) throw notFound(`set link "${name}" up: no such link`);
    this.bringUp(l);
  }


  // ---- addresses

  async listAddresses(ifindex: number, family: IpFamily = 4): Promise<AddressEntry[]> {
    this.enter('listAddresses');
    return this.addrs.filter((a) => a.ifindex === ifindex && familyOf(a.address) === family).map((a) => ({ ...a }));
  }

  async ensureOnlyAddress(ifindex: number, cidr: string, within?: string): Promise<void> {
    this.enter('ensureOnlyAddress', `${ifindex} ${cidr} ${within ?? ''}`, true);
    const want = anyCidr(cidr, 'address');
    const scope = within === undefined ? undefined : anyCidr(within, 'address scope');
    if (scope && scope.family !== want.family) throw invalid(`address ${cidr} within ${within}: both must be of one family`);
    this.requireLink(ifindex, `add address ${want.ip}/${want.len} to link #${ifindex}`);
    for (const a of this.addrs.filter((x) => x.ifindex === ifindex && familyOf(x.address) === want.family)) {
      if (a.address === want.ip && a.prefixLen === want.len) continue;
      if (scope === undefined || anyContains(within as string, a.address)) this.delAddr(a);
    }
    if (!this.addrs.some((a) => a.ifindex === ifindex && a.address === want.ip && a.prefixLen === want.len)) this.addAddr(ifindex, want.ip, want.len);
  }

  async removeAddress(ifindex: number, cidr: string): Promise<boolean> {
    this.enter('removeAddress', `${ifindex} ${cidr}`, true);
    const want = anyCidr(cidr, 'address');
    const a = this.addrs.find((x) => x.ifindex === ifindex && x.address === want.ip && x.prefixLen === want.len);
    if (!a) return false;
    this.delAddr(a);
    return true;
  }

  // ---- routes

  async listRoutes(oif?: number, family: IpFamily = 4): Promise<RouteEntry[]> {
    this.enter('listRoutes');
    return this.routes.filter((r) => (oif === undefined || r.oif === oif) && familyOf(r.dst) === family).map(routePub);
  }

  async replaceRoute(r: RouteEntry): Promise<void> {
    this.enter('replaceRoute', `${r.dst} ${r.gateway ?? ''} ${r.oif}`, true);
    const dst = anyNetwork(r.dst);
    if (r.gateway && familyOf(r.gateway) !== familyOf(dst)) throw invalid(`route ${r.dst} via ${r.gateway}: an IPv6 route needs an IPv6 gateway`);
    const what = `replace route ${r.dst}${r.gateway ? ` via ${r.gateway}` : ''}${r.oif ? ` dev #${r.oif}` : ''}${r.onlink ? ' onlink' : ''}`;
    if (!r.gateway && !r.oif) throw invalid(`${what}: needs a gateway or an oif`);
    if (r.onlink && (!r.gateway || !r.oif)) throw invalid(`${what}: onlink needs both a gateway and an oif`);
    let oif = r.oif;
    if (oif) {
      if (!this.requireLink(oif, what).up) throw kerr(what, 'ENETDOWN');
    }
    if (r.gateway && !r.onlink) {
      const gw = r.gateway;
      const via = this.routes.find((c) => !c.gateway && (!oif || c.oif === oif) && anyContains(c.dst, gw));
      if (!via) throw kerr(what, 'ENETUNREACH');
      oif = via.oif;
    }
    const entry: FakeRoute = { dst, oif, onlink: r.onlink };
    if (r.gateway) entry.gateway = anyIp(r.gateway, 'gateway');
    const i = this.routes.findIndex((x) => x.dst === entry.dst);
    if (i >= 0) this.routes[i] = entry;
    else this.routes.push(entry);
  }

  async deleteRoute(dst: string): Promise<void> {
    this.enter('deleteRoute', dst, true);
    const key = anyNetwork(dst);
    const i = this.routes.findIndex((x) => x.dst === key);
    if (i >= 0) this.routes.splice(i, 1);
  }

  async defaultRouteInterface(): Promise<LinkInfo | null> {
    this.enter('defaultRouteInterface');
    const r = this.routes.find((x) => x.dst === '0.0.0.0/0' && x.oif > 0);
    const l = r ? this.links.get(r.oif) : undefined;
    return l ? pub(l) : null;
  }

  // ---- neighbours and FDB (fake-neighbours.ts)

  async listNeighbours(ifindex: number, family: IpFamily = 4): Promise<NeighbourEntry[]> {
    this.enter('listNeighbours');
    return this.neighbours.listNeighbours(ifindex, family);
  }
  async replaceNeighbour(n: NeighbourEntry): Promise<void> {
    this.enter('replaceNeighbour', `${n.ip} ${n.mac}`, true);
    this.neighbours.replaceNeighbour(n);
  }
  async deleteNeighbour(ifindex: number, ip: string): Promise<void> {
    this.enter('deleteNeighbour', ip, true);
    this.neighbours.deleteNeighbour(ifindex, ip);
  }
  async listFdb(ifindex: number): Promise<FdbEntry[]> {
    this.enter('listFdb');
    return this.neighbours.listFdb(ifindex);
  }
  async replaceFdb(f: FdbEntry): Promise<void> {
    this.enter('replaceFdb', `${f.mac} ${f.dst}`, true);
    this.neighbours.replaceFdb(f);
  }
  async deleteFdb(ifindex: number, mac: string, dst?: string): Promise<void> {
    this.enter('deleteFdb', `${mac} ${dst ?? ''}`, true);
    this.neighbours.deleteFdb(ifindex, mac, dst);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  // ---- internals

  protected enter(method: keyof Kernel, arg = '', write = false): void {
    if (this.closed) throw new OverlayError('UNAVAILABLE', `${method}: netlink socket is closed`);
    const i = this.failures.findIndex((f) => f.method === method);
    if (i >= 0) {
      const [f] = this.failures.splice(i, 1);
      throw (f as { error: Error }).error;
    }
    if (write) this.writes.push(arg ? `${method} ${arg}` : method);
  }

  /** The link with this ifindex; ENODEV naming `what` (as the real adapter) when there is none. */
  protected requireLink(ifindex: number, what: string): FakeLink {
    const l = this.links.get(ifindex);
    if (!l) throw kerr(what, 'ENODEV');
    return l;
  }

  protected byName(name: string): FakeLink | undefined {
    checkIfName(name);
    for (const l of this.links.values()) if (l.name === name) return l;
    return undefined;
  }

  protected newLink(name: string, kind: string, mtu: number, mac?: string): FakeLink {
    const index = this.nextIndex++;
    const l: FakeLink = { index, name, kind, mtu, mac: mac ?? fakeMac(index), up: false, master: 0 };
    this.links.set(index, l);
    return l;
  }

  protected removeLink(l: FakeLink): void {
    this.links.delete(l.index);
    if (l.peer !== undefined && this.links.has(l.peer)) this.removeLink(this.links.get(l.peer) as FakeLink);
    for (const other of this.links.values()) if (other.master === l.index) other.master = 0;
    this.addrs = this.addrs.filter((a) => a.ifindex !== l.index);
    this.routes = this.routes.filter((r) => r.oif !== l.index);
    this.neighbours.dropDevice(l.index);
  }

  protected bringUp(l: FakeLink): void {
    if (l.up) return;
    l.up = true;
    for (const a of this.addrs.filter((x) => x.ifindex === l.index)) this.addConnected(a);
  }

  private addAddr(ifindex: number, address: string, prefixLen: number): void {
    const a = { ifindex, address, prefixLen };
    this.addrs.push(a);
    if (this.links.get(ifindex)?.up) this.addConnected(a);
  }

  private delAddr(a: AddressEntry): void {
    this.addrs = this.addrs.filter((x) => x !== a);
    const dst = connectedRouteOf(a.address, a.prefixLen);
    this.routes = this.routes.filter((r) => !(r.connected && r.oif === a.ifindex && r.dst === dst));
  }

  private addConnected(a: AddressEntry): void {
    const dst = connectedRouteOf(a.address, a.prefixLen); // none for a v4 /32
    if (dst && !this.routes.some((r) => r.dst === dst && r.oif === a.ifindex)) this.routes.push({ dst, oif: a.ifindex, onlink: false, connected: true });
  }
}

function fakeMac(index: number): string {
  return `02:fa:ce:00:${((index >> 8) & 255).toString(16).padStart(2, '0')}:${(index & 255).toString(16).padStart(2, '0')}`;
}

function pub(l: FakeLink): LinkInfo {
  return { index: l.index, name: l.name, kind: l.kind, mtu: l.mtu, mac: l.mac, up: l.up, master: l.master, ...(l.alias ? { alias: l.alias } : {}) };
}

function vxPub(l: FakeLink): VxlanInfo {
  const v = l.vx as NonNullable<FakeLink['vx']>;
  return { ...pub(l), vni: v.vni, local: v.local, port: v.port, learning: v.learning, parentIndex: v.parentIndex };
}

function routePub(r: FakeRoute): RouteEntry {
  return r.gateway ? { dst: r.dst, gateway: r.gateway, oif: r.oif, onlink: r.onlink } : { dst: r.dst, oif: r.oif, onlink: r.onlink };
}
