/**
 * Link primitives: read (by name, by index, dump), parse IFLA_LINKINFO, create, modify, delete.
 * The "ensure" logic built on them lives in link-ensure.ts. Also the forwarding switches: v4 per
 * device over rtnetlink, v6 host-wide through procfs (ensureIpv6Forwarding), and a v6 device's
 * accept_ra through procfs (disableAcceptRa).
 *
 * Encoding notes: IFLA_LINKINFO is a raw Buffer in the package (ifla.formatInfo/parseInfo), the
 * vxlan data inside it is ifla.formatVxlan/parseVxlan (port is big-endian), and IFLA_LINK (the
 * veth peer / vxlan parent ifindex) comes back as a little-endian u32 Buffer.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AttrStream, FlagsNew, ifla, rt, type StreamData } from 'netlink';
import { notFound, unavailable, unsupported } from '../errors';
import { bufToIp4, bufToMac, checkIfName, readU32le } from './codec';
import { bufToIp6 } from './codec6';
import { isErrno } from './errno';
import type { NlSocket } from './netlink-socket';
import type { LinkInfo, VxlanInfo } from './types';

export const VXLAN_DEFAULT_PORT = 8472;
const CE = FlagsNew.CREATE | FlagsNew.EXCL;

/** LinkInfo plus what the ensure functions need to compare. */
export interface RawLink extends LinkInfo {
  linkIndex: number; // IFLA_LINK: veth peer or vxlan/vlan parent, 0 if none
  linkNetnsid?: number; // set when IFLA_LINK lives in another namespace (veth peer moved)
  infoData?: Buffer; // IFLA_INFO_DATA, kind-specific
}

export function linkFromMessage(m: rt.LinkMessage): RawLink {
  const a = m.attrs;
  let kind = '';
  let infoData: Buffer | undefined;
  if (a.linkinfo) {
    const info = ifla.parseInfo(a.linkinfo);
    kind = info.kind ?? '';
    infoData = info.data;
  }
  return {
    index: m.data.index ?? 0,
    name: a.ifname ?? '',
    kind,
    mtu: a.mtu ?? 0,
    mac: bufToMac(a.address),
    up: m.data.flags?.up === true,
    master: a.master ?? 0,
    ...(a.ifalias ? { alias: a.ifalias } : {}),
    linkIndex: readU32le(a.link),
    ...(a.linkNetnsid !== undefined ? { linkNetnsid: a.linkNetnsid } : {}),
    ...(infoData ? { infoData } : {}),
  };
}

/** The public LinkInfo shape (drops the internal fields). */
export function publicLink(l: RawLink): LinkInfo {
  return { index: l.index, name: l.name, kind: l.kind, mtu: l.mtu, mac: l.mac, up: l.up, master: l.master, ...(l.alias ? { alias: l.alias } : {}) };
}

export async function getLinkByName(ns: NlSocket, name: string): Promise<RawLink | null> {
  checkIfName(name);
  try {
    const msgs = await ns.call(`get link "${name}"`, (s, timeout) => s.getLink({}, { ifname: name }, { timeout }));
    const m = msgs.find((x): x is rt.LinkMessage => x.kind === 'link');
    return m ? linkFromMessage(m) : null;
  } catch (e) {
    if (isErrno(e, 'ENODEV')) return null;
    throw e;
  }
}

export async function getLinkByIndex(ns: NlSocket, index: number): Promise<RawLink | null> {
  try {
    const msgs = await ns.call(`get link #${index}`, (s, timeout) => s.getLink({ index }, {}, { timeout }));
    const m = msgs.find((x): x is rt.LinkMessage => x.kind === 'link');
    return m ? linkFromMessage(m) : null;
  } catch (e) {
    if (isErrno(e, 'ENODEV')) return null;
    throw e;
  }
}

export async function listLinks(ns: NlSocket): Promise<RawLink[]> {
  const msgs = await ns.dump('list links', rt.MessageType.GETLINK, rt.formatLink({}));
  return msgs.filter((x): x is rt.LinkMessage => x.kind === 'link').map(linkFromMessage);
}

export interface VxlanDetails extends VxlanInfo {
  gbp: boolean;
  group: string; // '' if none
  l2miss: boolean;
}

/** Parse a link already known to be vxlan; null for any other kind. */
export function vxlanFromLink(l: RawLink): VxlanDetails | null {
  if (l.kind !== 'vxlan' || !l.infoData) return null;
  const v = ifla.parseVxlan(l.infoData);
  return {
    ...publicLink(l),
    vni: v.id ?? 0,
    local: bufToIp4(v.local) || bufToIp6(v.local6), // IFLA_VXLAN_LOCAL6 for flannel-v6.<VNI>
    port: v.port && v.port.length === 2 ? v.port.readUInt16BE(0) : VXLAN_DEFAULT_PORT,
    learning: (v.learning ?? 1) !== 0,
    parentIndex: v.link ?? 0,
    gbp: v.gbp === true,
    group: bufToIp4(v.group) || bufToIp6(v.group6),
    l2miss: (v.l2miss ?? 0) !== 0,
  };
}

/**
 * newLink with CREATE|EXCL. `kind` is only for messages; EOPNOTSUPP means the kernel lacks the link
 * type (module not loaded / not built), reported as UNSUPPORTED with the fix.
 */
export async function createLink(ns: NlSocket, kind: string, name: string, attrs: ifla.LinkAttrs): Promise<void> {
  try {
    await ns.call(`create ${kind} "${name}"`, (s, timeout) => s.newLink({}, { ...attrs, ifname: name }, { flags: CE, timeout }));
  } catch (e) {
    if (isErrno(e, 'EOPNOTSUPP')) {
      throw unsupported(
        `create ${kind} "${name}": the kernel does not know link type "${kind}" (EOPNOTSUPP); load the ${kind} module: modprobe ${kind}`,
        e,
      );
    }
    throw e;
  }
}

/** Flatten StreamData (what the package's format* functions return) into one padded Buffer. */
export function toBuf(sd: StreamData): Buffer {
  const s = new AttrStream();
  s.emit(sd);
  return Buffer.concat(s.bufs);
}

export function linkInfoAttr(kind: string, data?: Buffer): Buffer {
  return toBuf(ifla.formatInfo(data ? { kind, data } : { kind }));
}

/** One setLink: attributes plus optionally IFF_UP; skipped when there is nothing to change. */
export async function modifyLink(ns: NlSocket, what: string, index: number, attrs: ifla.LinkAttrs, up?: boolean): Promise<void> {
  if (Object.keys(attrs).length === 0 && up === undefined) return;
  const data: rt.Link = up === undefined ? { index } : { index, flags: up ? { up: true } : {}, change: { up: true } };
  await ns.call(what, (s, timeout) => s.setLink(data, attrs, { timeout }));
}

/** Delete by name; a missing link is fine. Deleting one veth end removes both. */
export async function deleteLinkByName(ns: NlSocket, name: string): Promise<void> {
  checkIfName(name);
  try {
    await ns.call(`delete link "${name}"`, (s, timeout) => s.delLink({}, { ifname: name }, { timeout }));
  } catch (e) {
    if (isErrno(e, 'ENODEV')) return;
    throw e;
  }
}

/** IFLA_IFALIAS of a link ('' clears it); a missing link is NOT_FOUND. */
export async function setLinkAliasByName(ns: NlSocket, name: string, alias: string): Promise<void> {
  const l = await getLinkByName(ns, name);
  if (!l) throw notFound(`set the alias of link "${name}": no such link`);
  if ((l.alias ?? '') !== alias) await modifyLink(ns, `set the alias of link "${name}" to "${alias}"`, l.index, { ifalias: alias });
}

export async function setLinkUpByName(ns: NlSocket, name: string): Promise<void> {
  const l = await getLinkByName(ns, name);
  if (!l) throw notFound(`set link "${name}" up: no such link`);
  if (!l.up) await modifyLink(ns, `set link "${name}" up`, l.index, {}, true);
}

const AF_INET = 2;
const IFLA_INET_CONF = 1;
const IPV4_DEVCONF_FORWARDING = 1;

/**
 * Per-device IPv4 forwarding (net.ipv4.conf.<dev>.forwarding) over rtnetlink (IFLA_AF_SPEC),
 * which works where /proc/sys is read-only (a managed plugin). The kernel checks the flag of the
 * ingress device, so the overlay's own devices are enough: no host-wide ip_forward change.
 */
export async function setIpv4Forwarding(ns: NlSocket, index: number, on: boolean): Promise<void> {
  const value = Buffer.alloc(4);
  value.writeUInt32LE(on ? 1 : 0);
  const conf = new AttrStream();
  conf.push(IPV4_DEVCONF_FORWARDING, value);
  const inet = new AttrStream();
  inet.push(IFLA_INET_CONF, Buffer.concat(conf.bufs));
  const afSpec = new Map([[AF_INET, Buffer.concat(inet.bufs)]]);
  await ns.call(`set forwarding on link #${index}`, (s, timeout) => s.setLink({ index }, { afSpec } as ifla.LinkAttrs, { timeout }));
}

/**
 * net.ipv6.conf.all.forwarding of this process's network namespace. Unlike IPv4's per-device
 * forwarding (setIpv4Forwarding above, over rtnetlink), IPv6 has no netlink door for it (the kernel's
 * inet6_set_link_af takes only the token and addr_gen_mode) and the forwarding decision reads the
 * `all` flag (ip6_forward), so a Docker --ipv6 network needs the host-wide switch, as Docker's own
 * bridge driver sets it. /proc/sys/net is per network namespace of the *writer*, so any procfs
 * mount works: a managed plugin, whose /proc/sys is read-only, tries the host's procfs under the
 * host-root mount next (its `ro` covers only the top mount, not the host's /proc mounted below).
 * Turning it on also makes the host ignore router advertisements where accept_ra=1 (docs/ipv6.md §5).
 */
const KEY = 'net/ipv6/conf/all/forwarding';

export interface Ipv6ForwardingResult {
  state: 'already' | 'set';
  /** The file that said so (or was written). */
  path: string;
}

/** `key` (under /proc/sys) made `want` through the first root that can; the errors of every root otherwise. */
async function ensureSysctl(roots: readonly string[], key: string, want: string): Promise<Ipv6ForwardingResult | string[]> {
  const errors: string[] = [];
  for (const root of roots) {
    const path = join(root, key);
    try {
      if ((await readFile(path, 'utf8')).trim() === want) return { state: 'already', path };
      await writeFile(path, `${want}\n`);
      if ((await readFile(path, 'utf8')).trim() === want) return { state: 'set', path };
      errors.push(`${path}: still not ${want} after writing it`);
    } catch (e) {
      errors.push(`${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  }
  return errors;
}

/** 'already' when it was on, 'set' when we turned it on; UNAVAILABLE naming the sysctl when no root could. */
export async function ensureIpv6Forwarding(sysctlRoots: readonly string[]): Promise<Ipv6ForwardingResult> {
  const r = await ensureSysctl(sysctlRoots, KEY, '1');
  if (!Array.isArray(r)) return r;
  throw unavailable(
    `IPv6 forwarding is off on this host and could not be turned on (${r.join('; ')}): ` +
      'run sysctl -w net.ipv6.conf.all.forwarding=1 on the host (containers of --ipv6 networks need it to reach other hosts)',
  );
}

/**
 * net.ipv6.conf.<device>.accept_ra=0, as flanneld sets it on flannel-v6.<VNI> when it creates it:
 * the device takes no router advertisement (no SLAAC address, no default route through the
 * overlay). Per device and, like forwarding, only through procfs (the same roots, in order).
 */
export async function disableAcceptRa(sysctlRoots: readonly string[], device: string): Promise<Ipv6ForwardingResult> {
  checkIfName(device);
  const r = await ensureSysctl(sysctlRoots, `net/ipv6/conf/${device}/accept_ra`, '0');
  if (!Array.isArray(r)) return r;
  throw unavailable(`could not set net.ipv6.conf.${device}.accept_ra=0 (${r.join('; ')})`);
}
