/**
 * Idempotent link creation: ensureVxlan, ensureBridge, ensureVethPair.
 *
 * Each reads the current link, decides keep / repair / recreate, creates with CREATE|EXCL, and
 * finishes with ONE setLink carrying MTU, MAC, master and IFF_UP (the kernel applies the address
 * before the flags, and vxlan accepts a MAC change while up). Policies:
 * - vxlan (as flannel's vxlanLinksIncompat): keep only if vni, parent, local, port (0 = 8472),
 *   learning and gbp match and no group/l2miss is set; otherwise delete and recreate. A non-vxlan
 *   link of that name is ours to replace (the name flannel.<VNI> is reserved for us).
 * - bridge: a non-bridge link of that name is somebody else's: CONFLICT, never deleted. Its MAC is
 *   set to bridgeMacFor(name), which pins it (see src/domain/mac.ts): ports coming and going never
 *   change the gateway's MAC.
 * - veth: kept when both ends pair up, or when the host end's peer lives in another namespace
 *   (Docker already moved it into the container: recreating would cut the container off).
 *   A foreign non-veth link under either name is a CONFLICT.
 * A CREATE that loses a race (EEXIST) re-reads and re-decides once.
 * IPv6 (issue 21): a vxlan whose `local` is an IPv6 address (flannel-v6.<VNI>) is created with
 * IFLA_VXLAN_LOCAL6; the kernel caps its MTU at parent − 70 (IPv6 outer header), so an MTU above
 * that is EINVAL (docs/spikes/ipv6/results.txt) and the caller must ask for parent − 70.
 */
import { ifla, rt } from 'netlink';
import { conflict, invalid, notFound, OverlayError } from '../errors';
import { bridgeMacFor } from '../domain/mac';
import { checkIfName, ip4ToBuf, macToBuf } from './codec';
import { canonicalIp6, familyOf, ip6ToBuf } from './codec6';
import { isErrno } from './errno';
import {
  createLink,
  deleteLinkByName,
  getLinkByName,
  linkInfoAttr,
  modifyLink,
  publicLink,
  toBuf,
  vxlanFromLink,
  VXLAN_DEFAULT_PORT,
  type RawLink,
  type VxlanDetails,
} from './links';
import type { NlSocket } from './netlink-socket';
import type { LinkInfo, VxlanSpec } from './types';

/** Run `attempt`; if it hits EEXIST (someone created the link meanwhile), run it once more. */
async function retryOnExists<T>(attempt: () => Promise<T>): Promise<T> {
  try {
    return await attempt();
  } catch (e) {
    if (isErrno(e, 'EEXIST')) return attempt();
    throw e;
  }
}

/** Differences that force a vxlan to be recreated; [] = compatible. */
export function vxlanIncompat(cur: VxlanDetails, spec: VxlanSpec): string[] {
  const d: string[] = [];
  const wantPort = spec.port || VXLAN_DEFAULT_PORT;
  if (cur.vni !== spec.vni) d.push(`vni ${cur.vni} != ${spec.vni}`);
  if (cur.parentIndex !== spec.parentIndex) d.push(`parent #${cur.parentIndex} != #${spec.parentIndex}`);
  const wantLocal = familyOf(spec.local) === 6 ? canonicalIp6(spec.local) : spec.local;
  if (cur.local !== wantLocal) d.push(`local ${cur.local || 'none'} != ${wantLocal}`);
  if ((cur.port || VXLAN_DEFAULT_PORT) !== wantPort) d.push(`port ${cur.port} != ${wantPort}`);
  if (cur.learning !== spec.learning) d.push(`learning ${cur.learning} != ${spec.learning}`);
  if (cur.gbp !== spec.gbp) d.push(`gbp ${cur.gbp} != ${spec.gbp}`);
  if (cur.group !== '') d.push(`group ${cur.group} set`);
  if (cur.l2miss) d.push('l2miss set');
  return d;
}

function checkVxlanSpec(spec: VxlanSpec): void {
  checkIfName(spec.name, 'vxlan name');
  if (!Number.isInteger(spec.vni) || spec.vni < 1 || spec.vni > 0xffffff) throw invalid(`vxlan "${spec.name}": vni ${spec.vni} is not in 1..16777215`);
  if (!Number.isInteger(spec.port) || spec.port < 0 || spec.port > 65535) throw invalid(`vxlan "${spec.name}": port ${spec.port} is not in 0..65535`);
  if (!Number.isInteger(spec.parentIndex) || spec.parentIndex < 0) throw invalid(`vxlan "${spec.name}": bad parent index ${spec.parentIndex}`);
  if (!Number.isInteger(spec.mtu) || spec.mtu < 68) throw invalid(`vxlan "${spec.name}": bad MTU ${spec.mtu}`);
}

export async function ensureVxlan(ns: NlSocket, spec: VxlanSpec): Promise<VxlanDetails> {
  checkVxlanSpec(spec);
  const v6 = familyOf(spec.local) === 6;
  const local = v6 ? ip6ToBuf(spec.local, `vxlan "${spec.name}" local`) : ip4ToBuf(spec.local, `vxlan "${spec.name}" local`);
  const mac = macToBuf(spec.mac, `vxlan "${spec.name}" MAC`);
  const name = spec.name;

  const link = await retryOnExists(async () => {
    const cur = await getLinkByName(ns, name);
    if (cur) {
      const vx = vxlanFromLink(cur);
      const diff = vx ? vxlanIncompat(vx, spec) : [`kind "${cur.kind || 'device'}" is not vxlan`];
      if (diff.length === 0) return cur;
      await deleteLinkByName(ns, name); // flannel: delete the incompatible link and recreate
    }
    const data: ifla.Vxlan = v6 ? { id: spec.vni, local6: local, learning: spec.learning ? 1 : 0 } : { id: spec.vni, local, learning: spec.learning ? 1 : 0 };
    if (spec.parentIndex) data.link = spec.parentIndex;
    if (spec.port) data.port = Buffer.from([spec.port >> 8, spec.port & 255]);
    if (spec.gbp) data.gbp = true;
    await createLink(ns, 'vxlan', name, { linkinfo: linkInfoAttr('vxlan', toBuf(ifla.formatVxlan(data))) });
    return mustGet(ns, name, 'vxlan');
  });

  const attrs: ifla.LinkAttrs = {};
  if (link.mtu !== spec.mtu) attrs.mtu = spec.mtu;
  if (link.mac !== spec.mac.toLowerCase()) attrs.address = mac;
  await modifyLink(ns, `set vxlan "${name}" mtu ${spec.mtu} address ${spec.mac} up`, link.index, attrs, link.up ? undefined : true);
  const out = vxlanFromLink(await mustGet(ns, name, 'vxlan'));
  if (!out) throw new OverlayError('KERNEL', `ensure vxlan "${name}": link vanished or changed kind while being set up`);
  return out;
}

export async function ensureBridge(ns: NlSocket, name: string, mtu: number): Promise<LinkInfo> {
  checkIfName(name, 'bridge name');
  if (!Number.isInteger(mtu) || mtu < 68) throw invalid(`bridge "${name}": bad MTU ${mtu}`);
  const link = await retryOnExists(async () => {
    const cur = await getLinkByName(ns, name);
    if (cur) {
      if (cur.kind !== 'bridge') {
        throw conflict(`ensure bridge "${name}": a link of kind "${cur.kind || 'device'}" already has this name; remove it or choose another bridge name`);
      }
      return cur;
    }
    await createLink(ns, 'bridge', name, { linkinfo: linkInfoAttr('bridge') });
    return mustGet(ns, name, 'bridge');
  });
  const mac = bridgeMacFor(name);
  const attrs: ifla.LinkAttrs = {};
  if (link.mtu !== mtu) attrs.mtu = mtu;
  if (link.mac !== mac) attrs.address = macToBuf(mac, `bridge "${name}" MAC`);
  await modifyLink(ns, `set bridge "${name}" mtu ${mtu} address ${mac} up`, link.index, attrs, link.up ? undefined : true);
  return publicLink(await mustGet(ns, name, 'bridge'));
}

export async function ensureVethPair(ns: NlSocket, hostName: string, peerName: string, mtu: number, bridgeName?: string): Promise<LinkInfo> {
  checkIfName(hostName, 'veth host name');
  checkIfName(peerName, 'veth peer name');
  if (hostName === peerName) throw invalid(`veth "${hostName}": host and peer names must differ`);
  if (!Number.isInteger(mtu) || mtu < 68) throw invalid(`veth "${hostName}": bad MTU ${mtu}`);
  let bridge: RawLink | null = null;
  if (bridgeName !== undefined) {
    bridge = await getLinkByName(ns, bridgeName);
    if (!bridge) throw notFound(`attach veth "${hostName}" to bridge "${bridgeName}": no such bridge`);
    if (bridge.kind !== 'bridge') throw conflict(`attach veth "${hostName}" to "${bridgeName}": that link is a ${bridge.kind || 'device'}, not a bridge`);
  }

  const host = await retryOnExists(async () => {
    const h = await getLinkByName(ns, hostName);
    const p = await getLinkByName(ns, peerName);
    for (const l of [h, p]) {
      if (l && l.kind !== 'veth') throw conflict(`ensure veth "${hostName}"/"${peerName}": "${l.name}" exists and is a ${l.kind || 'device'}, not a veth`);
    }
    const paired = h && p && h.linkIndex === p.index && p.linkIndex === h.index && h.linkNetnsid === undefined;
    const moved = h && !p && h.linkNetnsid !== undefined; // peer already in the container's netns
    if (h && (paired || moved)) return h;
    if (h) await deleteLinkByName(ns, hostName);
    if (p) await deleteLinkByName(ns, peerName); // ENODEV (gone with its old partner) is absorbed
    const peer = Buffer.concat([rt.formatLink({}), toBuf(ifla.formatLinkAttrs({ ifname: peerName, mtu }))]);
    await createLink(ns, 'veth', hostName, { mtu, linkinfo: linkInfoAttr('veth', toBuf(ifla.formatVethInfo({ peer }))) });
    return mustGet(ns, hostName, 'veth');
  });

  const attrs: ifla.LinkAttrs = {};
  if (host.mtu !== mtu) attrs.mtu = mtu;
  if (bridge && host.master !== bridge.index) attrs.master = bridge.index;
  await modifyLink(ns, `set veth "${hostName}" mtu ${mtu}${bridge ? ` master "${bridge.name}"` : ''} up`, host.index, attrs, host.up ? undefined : true);
  const peer = host.linkNetnsid === undefined ? await getLinkByName(ns, peerName) : null;
  if (peer && peer.mtu !== mtu) await modifyLink(ns, `set veth "${peerName}" mtu ${mtu}`, peer.index, { mtu });
  return { ...publicLink(host), mtu, up: true, master: bridge ? bridge.index : host.master };
}

async function mustGet(ns: NlSocket, name: string, kind: string): Promise<RawLink> {
  const l = await getLinkByName(ns, name);
  if (!l) throw new OverlayError('KERNEL', `read back ${kind} "${name}": link vanished right after creation`);
  return l;
}
