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
 * - Writes and dump replies are encoded/decoded by hand (rtnl-messages.ts), writes batched
 *   (NlSocket.write): these are the tables that grow with the number of peers.
 * - IPv6 (issue 21): a neighbour whose IP has a ':' is AF_INET6 (NDP, `ip -6 neigh`); the dump
 *   takes the family. An FDB entry's dst may be an IPv6 VTEP (16-byte NDA_DST, flannel-v6.<VNI>).
 */
import { rt } from 'netlink';
import { invalid } from '../errors';
import { u32le } from './codec';
import { AF_INET, AF_INET6, familyOf } from './codec6';
import { isErrno } from './errno';
import { toBuf } from './links';
import type { NlSocket } from './netlink-socket';
import { decodeNeigh, dumpRequest, neighMessage, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REPLACE, NTF_SELF, NUD_NOARP, NUD_PERMANENT, NUD_REACHABLE, RTM_DELNEIGH, RTM_GETNEIGH, RTM_NEWNEIGH } from './rtnl-messages';
import type { FdbEntry, NeighbourEntry } from './types';

const AF_BRIDGE = 7;
const CR = NLM_F_CREATE | NLM_F_REPLACE;
const CA = NLM_F_CREATE | NLM_F_APPEND;
const ZERO_MAC = '00:00:00:00:00:00';
const stateOf = (permanent: boolean): number => (permanent ? NUD_PERMANENT : NUD_REACHABLE);

function checkIndex(ifindex: number, what: string): void {
  if (!Number.isInteger(ifindex) || ifindex <= 0) throw invalid(`${what}: bad ifindex ${ifindex}`);
}

/** The permanent and resolved neighbours of the link: ARP (family 4, the default) or NDP (6). */
export async function listNeighbours(ns: NlSocket, ifindex: number, family: 4 | 6 = 4): Promise<NeighbourEntry[]> {
  checkIndex(ifindex, 'list neighbours');
  const af = family === 6 ? AF_INET6 : AF_INET;
  const req = dumpRequest(RTM_GETNEIGH, Buffer.concat([rt.formatNeighbor({ family: af }), toBuf(rt.formatNeighborAttrs({ ifindex: u32le(ifindex) }))]));
  return ns.dumpDecoded(`list ${family === 6 ? 'IPv6 ' : ''}neighbours of link #${ifindex}`, req, (b, start, end, type): NeighbourEntry | null => {
    const n = type === RTM_NEWNEIGH ? decodeNeigh(b, start, end) : null;
    if (!n || n.family !== af || n.ifindex !== ifindex) return null;
    if (!n.dst || !n.lladdr) return null; // INCOMPLETE/FAILED entries have no MAC: nothing to report
    if (family === 6 && (n.state & NUD_NOARP) !== 0) return null; // the kernel's multicast entries (ff02::…), as `ip -6 neigh` hides them
    return { ifindex, ip: n.dst, mac: n.lladdr, permanent: (n.state & NUD_PERMANENT) !== 0 };
  });
}

const describeReplaceNeighbour = (n: NeighbourEntry): string => `replace neighbour ${n.ip} lladdr ${n.mac} dev #${n.ifindex}`;
const describeReplaceFdb = (f: FdbEntry): string => `replace fdb ${f.mac} dst ${f.dst} dev #${f.ifindex}`;
const describeDeleteNeighbour = (n: { ifindex: number; ip: string }): string => `delete neighbour ${n.ip} dev #${n.ifindex}`;
const describeDeleteFdb = (f: { ifindex: number; mac: string; dst?: string }): string => `delete fdb ${f.mac}${f.dst ? ` dst ${f.dst}` : ''} dev #${f.ifindex}`;

/** Not async: one promise per write, not two (a full program of 10,000 peers makes 20,000 of these). */
export function replaceNeighbour(ns: NlSocket, n: NeighbourEntry): Promise<void> {
  try {
    checkIndex(n.ifindex, `replace neighbour ${n.ip}`);
    const family = familyOf(n.ip) === 6 ? AF_INET6 : AF_INET;
    const msg = neighMessage(RTM_NEWNEIGH, CR, { family, ifindex: n.ifindex, state: stateOf(n.permanent), ntfFlags: 0, dst: n.ip, lladdr: n.mac });
    return ns.write(msg, describeReplaceNeighbour, n);
  } catch (e) {
    return Promise.reject(e);
  }
}

export async function deleteNeighbour(ns: NlSocket, ifindex: number, ip: string): Promise<void> {
  checkIndex(ifindex, `delete neighbour ${ip}`);
  const msg = neighMessage(RTM_DELNEIGH, 0, { family: familyOf(ip) === 6 ? AF_INET6 : AF_INET, ifindex, state: 0, ntfFlags: 0, dst: ip });
  try {
    await ns.write(msg, describeDeleteNeighbour, { ifindex, ip });
  } catch (e) {
    if (isErrno(e, 'ENOENT', 'ENODEV')) return;
    throw e;
  }
}

export async function listFdb(ns: NlSocket, ifindex: number): Promise<FdbEntry[]> {
  checkIndex(ifindex, 'list fdb');
  const req = dumpRequest(RTM_GETNEIGH, rt.formatLink({ family: AF_BRIDGE, index: ifindex })); // legacy ifinfomsg: per-device dump
  return ns.dumpDecoded(`list fdb of link #${ifindex}`, req, (b, start, end, type): FdbEntry | null => {
    const n = type === RTM_NEWNEIGH ? decodeNeigh(b, start, end) : null;
    if (!n || n.family !== AF_BRIDGE || n.ifindex !== ifindex || !n.lladdr) return null;
    return { ifindex, mac: n.lladdr, dst: n.dst, permanent: (n.state & NUD_PERMANENT) !== 0 };
  });
}

export function replaceFdb(ns: NlSocket, f: FdbEntry): Promise<void> {
  let zero: boolean;
  let written: Promise<void>;
  try {
    checkIndex(f.ifindex, `replace fdb ${f.mac}`);
    zero = typeof f.mac === 'string' && f.mac.toLowerCase() === ZERO_MAC;
    const msg = neighMessage(RTM_NEWNEIGH, zero ? CA : CR, { family: AF_BRIDGE, ifindex: f.ifindex, state: stateOf(f.permanent), ntfFlags: NTF_SELF, dst: f.dst, lladdr: f.mac });
    written = ns.write(msg, describeReplaceFdb, f);
  } catch (e) {
    return Promise.reject(e);
  }
  if (!zero) return written;
  return written.catch((e: unknown) => {
    if (!isErrno(e, 'EEXIST')) throw e;
  });
}

/** Delete the FDB entry of `mac` (only the one towards `dst` if given, for 00:00:… entries). */
export async function deleteFdb(ns: NlSocket, ifindex: number, mac: string, dst?: string): Promise<void> {
  checkIndex(ifindex, `delete fdb ${mac}`);
  const msg = neighMessage(RTM_DELNEIGH, 0, { family: AF_BRIDGE, ifindex, state: 0, ntfFlags: NTF_SELF, lladdr: mac, ...(dst ? { dst } : {}) });
  try {
    await ns.write(msg, describeDeleteFdb, { ifindex, mac, ...(dst ? { dst } : {}) });
  } catch (e) {
    if (isErrno(e, 'ENOENT', 'ENODEV')) return;
    throw e;
  }
}
