/**
 * IPv4 and IPv6 addresses. The address dump ignores the ifindex in the request (no NETLINK_GET_STRICT_CHK),
 * so we dump all and filter here. Deletes carry both IFA_LOCAL and IFA_ADDRESS: only then does the
 * kernel also match the prefix length, so "10.1.15.0/24" never removes "10.1.15.0/32".
 *
 * ensureOnlyAddress removes the unwanted addresses FIRST, then adds the wanted one (as flannel).
 * Doing it the other way round can lose the new address: if it was added as a secondary of an old
 * primary in the same subnet, deleting that primary also deletes its secondaries.
 *
 * IPv6 (issue 21): an address or CIDR with a ':' is AF_INET6; the list takes the family (4 by
 * default), and lists link-local (fe80::/10) addresses too. A v6 address is added with IFA_F_NODAD:
 * flannel-v6.<VNI> floods nothing, so duplicate address detection could only delay the address
 * (about a second "tentative", unusable as a source) and never find a duplicate. ensureOnlyAddress
 * without `within` leaves a v6 link's link-local address alone (the kernel made it).
 */
import { FlagsNew, rt } from 'netlink';
import { invalid } from '../errors';
import { bufToIp4, cidrContains, ip4ToBuf, parseCidr } from './codec';
import { AF_INET, AF_INET6, bufToIp6, cidr6ContainsText, familyOf, ip6ToBuf, parseCidr6 } from './codec6';
import { isErrno } from './errno';
import type { NlSocket } from './netlink-socket';
import type { AddressEntry } from './types';

const CE = FlagsNew.CREATE | FlagsNew.EXCL;

interface RawAddress extends AddressEntry {
  peer: string; // IFA_ADDRESS (equals `address` unless point-to-point)
}

async function dumpAddresses(ns: NlSocket, ifindex: number, family: 4 | 6 = 4): Promise<RawAddress[]> {
  const af = family === 6 ? AF_INET6 : AF_INET;
  const text = family === 6 ? bufToIp6 : bufToIp4;
  const msgs = await ns.dump(`list ${family === 6 ? 'IPv6 ' : ''}addresses of link #${ifindex}`, rt.MessageType.GETADDR, rt.formatAddress({ family: af }));
  const out: RawAddress[] = [];
  for (const m of msgs) {
    if (m.kind !== 'address' || m.data.family !== af || m.data.index !== ifindex) continue;
    const address = text(m.attrs.local ?? m.attrs.address);
    if (!address) continue;
    out.push({ ifindex, address, prefixLen: m.data.prefixlen ?? (family === 6 ? 128 : 32), peer: text(m.attrs.address) || address });
  }
  return out;
}

export async function listAddresses(ns: NlSocket, ifindex: number, family: 4 | 6 = 4): Promise<AddressEntry[]> {
  return (await dumpAddresses(ns, ifindex, family)).map(({ ifindex: i, address, prefixLen }) => ({ ifindex: i, address, prefixLen }));
}

const addrBuf = (ip: string): Buffer => (familyOf(ip) === 6 ? ip6ToBuf(ip) : ip4ToBuf(ip));

export async function addAddress(ns: NlSocket, ifindex: number, address: string, prefixLen: number): Promise<void> {
  const v6 = familyOf(address) === 6;
  const buf = addrBuf(address);
  const data: rt.Address = v6 ? { family: AF_INET6, prefixlen: prefixLen, index: ifindex, flags: { nodad: true } } : { family: AF_INET, prefixlen: prefixLen, index: ifindex };
  try {
    await ns.call(`add address ${address}/${prefixLen} to link #${ifindex}`, (s, timeout) => s.newAddress(data, { local: buf, address: buf }, { flags: CE, timeout }));
  } catch (e) {
    if (isErrno(e, 'EEXIST')) return;
    throw e;
  }
}

export async function deleteAddress(ns: NlSocket, a: { ifindex: number; address: string; prefixLen: number; peer?: string }): Promise<void> {
  try {
    await ns.call(`delete address ${a.address}/${a.prefixLen} from link #${a.ifindex}`, (s, timeout) =>
      s.delAddress(
        { family: familyOf(a.address) === 6 ? AF_INET6 : AF_INET, prefixlen: a.prefixLen, index: a.ifindex },
        { local: addrBuf(a.address), address: addrBuf(a.peer ?? a.address) },
        { timeout },
      ),
    );
  } catch (e) {
    if (isErrno(e, 'EADDRNOTAVAIL')) return; // already gone (e.g. removed with its primary)
    throw e;
  }
}

/** An address CIDR of either family: its canonical IP, length, and a containment test of the scope. */
function parseAny(text: string, what: string): { ip: string; len: number; family: 4 | 6; contains(ip: string): boolean } {
  if (familyOf(text) === 6) {
    const c = parseCidr6(text, what);
    return { ip: c.ip, len: c.len, family: 6, contains: (ip) => familyOf(ip) === 6 && cidr6ContainsText(c, ip) };
  }
  const c = parseCidr(text, what);
  return { ip: c.ip, len: c.len, family: 4, contains: (ip) => familyOf(ip) === 4 && cidrContains(c, ip) };
}

export async function ensureOnlyAddress(ns: NlSocket, ifindex: number, cidr: string, within?: string): Promise<void> {
  const want = parseAny(cidr, 'address');
  const scope = within === undefined ? undefined : parseAny(within, 'address scope');
  if (scope && scope.family !== want.family) throw invalid(`address ${cidr} within ${within}: both must be of one family`);
  const current = await dumpAddresses(ns, ifindex, want.family);
  let present = false;
  let deleted = false;
  for (const a of current) {
    if (a.address === want.ip && a.prefixLen === want.len) {
      present = true;
      continue;
    }
    if (want.family === 6 && scope === undefined && /^fe[89ab]/.test(a.address)) continue; // link-local: the kernel's
    if (scope === undefined || scope.contains(a.address)) {
      await deleteAddress(ns, a);
      deleted = true;
    }
  }
  if (!present || deleted) {
    // re-add even when it was present: deleting a same-subnet primary may have taken it along
    await addAddress(ns, ifindex, want.ip, want.len);
  }
}

/** Delete exactly `cidr` from the link (not other prefix lengths of the same IP): true if it was there. */
export async function removeAddress(ns: NlSocket, ifindex: number, cidr: string): Promise<boolean> {
  const want = parseAny(cidr, 'address');
  const found = (await dumpAddresses(ns, ifindex, want.family)).find((a) => a.address === want.ip && a.prefixLen === want.len);
  if (!found) return false;
  await deleteAddress(ns, found);
  return true;
}
