/**
 * ARP entries (AF_INET) and vxlan FDB entries (AF_BRIDGE, NTF_SELF).
 *
 * - Upserts use CREATE|REPLACE: CREATE alone on an existing permanent entry is a silent no-op.
 * - The all-zeros MAC (flood/default entry) cannot be REPLACEd on vxlan (EOPNOTSUPP); several of
 *   them may coexist, one per dst, so it is written with CREATE|APPEND instead.
 * - Listing ARP: NDA_IFINDEX in a non-strict neighbour dump IS honoured by the kernel
 *   (neigh_valid_dump_req), so the dump is per device; we still filter client-side.
 * - Listing FDB: an ndmsg request is not filtered, but the legacy 16-byte ifinfomsg header with
 *   ifi_index is (what `bridge fdb show dev X` sends).
 * - Deletes absorb ENOENT (no entry) and ENODEV (no device: the entries went with it).
 */
import { FlagsNew, rt } from 'netlink';
import { invalid } from '../errors';
import { bufToIp4, bufToMac, ip4ToBuf, macToBuf, u32le } from './codec';
import { isErrno } from './errno';
import { toBuf } from './links';
import type { NlSocket } from './netlink-socket';
import type { FdbEntry, NeighbourEntry } from './types';

const AF_INET = 2;
const AF_BRIDGE = 7;
const CR = FlagsNew.CREATE | FlagsNew.REPLACE;
const CA = FlagsNew.CREATE | FlagsNew.APPEND;
const ZERO_MAC = '00:00:00:00:00:00';

function checkIndex(ifindex: number, what: string): void {
  if (!Number.isInteger(ifindex) || ifindex <= 0) throw invalid(`${what}: bad ifindex ${ifindex}`);
}

export async function listNeighbours(ns: NlSocket, ifindex: number): Promise<NeighbourEntry[]> {
  checkIndex(ifindex, 'list neighbours');
  const req = Buffer.concat([rt.formatNeighbor({ family: AF_INET }), toBuf(rt.formatNeighborAttrs({ ifindex: u32le(ifindex) }))]);
  const msgs = await ns.dump(`list neighbours of link #${ifindex}`, rt.MessageType.GETNEIGH, req);
  const out: NeighbourEntry[] = [];
  for (const m of msgs) {
    if (m.kind !== 'neighbor' || m.data.family !== AF_INET || m.data.ifindex !== ifindex) continue;
    const ip = bufToIp4(m.attrs.dst);
    if (!ip || !m.attrs.lladdr) continue; // INCOMPLETE/FAILED entries have no MAC: nothing to report
    out.push({ ifindex, ip, mac: bufToMac(m.attrs.lladdr), permanent: m.data.state?.permanent === true });
  }
  return out;
}

export async function replaceNeighbour(ns: NlSocket, n: NeighbourEntry): Promise<void> {
  checkIndex(n.ifindex, `replace neighbour ${n.ip}`);
  const dst = ip4ToBuf(n.ip, 'neighbour IP');
  const lladdr = macToBuf(n.mac, 'neighbour MAC');
  const state = n.permanent ? { permanent: true as const } : { reachable: true as const };
  await ns.call(`replace neighbour ${n.ip} lladdr ${n.mac} dev #${n.ifindex}`, (s, timeout) =>
    s.newNeighbor({ family: AF_INET, ifindex: n.ifindex, state }, { dst, lladdr }, { flags: CR, timeout }),
  );
}

export async function deleteNeighbour(ns: NlSocket, ifindex: number, ip: string): Promise<void> {
  checkIndex(ifindex, `delete neighbour ${ip}`);
  const dst = ip4ToBuf(ip, 'neighbour IP');
  try {
    await ns.call(`delete neighbour ${ip} dev #${ifindex}`, (s, timeout) => s.delNeighbor({ family: AF_INET, ifindex }, { dst }, { timeout }));
  } catch (e) {
    if (isErrno(e, 'ENOENT', 'ENODEV')) return;
    throw e;
  }
}

export async function listFdb(ns: NlSocket, ifindex: number): Promise<FdbEntry[]> {
  checkIndex(ifindex, 'list fdb');
  const req = rt.formatLink({ family: AF_BRIDGE, index: ifindex }); // legacy ifinfomsg: per-device dump
  const msgs = await ns.dump(`list fdb of link #${ifindex}`, rt.MessageType.GETNEIGH, req);
  const out: FdbEntry[] = [];
  for (const m of msgs) {
    if (m.kind !== 'neighbor' || m.data.family !== AF_BRIDGE || m.data.ifindex !== ifindex || !m.attrs.lladdr) continue;
    out.push({ ifindex, mac: bufToMac(m.attrs.lladdr), dst: bufToIp4(m.attrs.dst), permanent: m.data.state?.permanent === true });
  }
  return out;
}

export async function replaceFdb(ns: NlSocket, f: FdbEntry): Promise<void> {
  checkIndex(f.ifindex, `replace fdb ${f.mac}`);
  const lladdr = macToBuf(f.mac, 'fdb MAC');
  const dst = ip4ToBuf(f.dst, 'fdb dst');
  const zero = bufToMac(lladdr) === ZERO_MAC;
  const state = f.permanent ? { permanent: true as const } : { reachable: true as const };
  try {
    await ns.call(`replace fdb ${f.mac} dst ${f.dst} dev #${f.ifindex}`, (s, timeout) =>
      s.newNeighbor({ family: AF_BRIDGE, ifindex: f.ifindex, flags: { self: true }, state }, { lladdr, dst }, { flags: zero ? CA : CR, timeout }),
    );
  } catch (e) {
    if (zero && isErrno(e, 'EEXIST')) return;
    throw e;
  }
}

/** Delete the FDB entry of `mac` (only the one towards `dst` if given, for 00:00:… entries). */
export async function deleteFdb(ns: NlSocket, ifindex: number, mac: string, dst?: string): Promise<void> {
  checkIndex(ifindex, `delete fdb ${mac}`);
  const attrs: rt.NeighborAttrs = { lladdr: macToBuf(mac, 'fdb MAC') };
  if (dst) attrs.dst = ip4ToBuf(dst, 'fdb dst');
  try {
    await ns.call(`delete fdb ${mac}${dst ? ` dst ${dst}` : ''} dev #${ifindex}`, (s, timeout) =>
      s.delNeighbor({ family: AF_BRIDGE, ifindex, flags: { self: true } }, attrs, { timeout }),
    );
  } catch (e) {
    if (isErrno(e, 'ENOENT', 'ENODEV')) return;
    throw e;
  }
}
