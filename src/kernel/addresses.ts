/**
 * IPv4 addresses. The address dump ignores the ifindex in the request (no NETLINK_GET_STRICT_CHK),
 * so we dump all and filter here. Deletes carry both IFA_LOCAL and IFA_ADDRESS: only then does the
 * kernel also match the prefix length, so "10.1.15.0/24" never removes "10.1.15.0/32".
 *
 * ensureOnlyAddress removes the unwanted addresses FIRST, then adds the wanted one (as flannel).
 * Doing it the other way round can lose the new address: if it was added as a secondary of an old
 * primary in the same subnet, deleting that primary also deletes its secondaries.
 */
import { FlagsNew, rt } from 'netlink';
import { bufToIp4, cidrContains, ip4ToBuf, parseCidr } from './codec';
import { isErrno } from './errno';
import type { NlSocket } from './netlink-socket';
import type { AddressEntry } from './types';

const AF_INET = 2;
const CE = FlagsNew.CREATE | FlagsNew.EXCL;

interface RawAddress extends AddressEntry {
  peer: string; // IFA_ADDRESS (equals `address` unless point-to-point)
}

async function dumpAddresses(ns: NlSocket, ifindex: number): Promise<RawAddress[]> {
  const msgs = await ns.dump(`list addresses of link #${ifindex}`, rt.MessageType.GETADDR, rt.formatAddress({ family: AF_INET }));
  const out: RawAddress[] = [];
  for (const m of msgs) {
    if (m.kind !== 'address' || m.data.family !== AF_INET || m.data.index !== ifindex) continue;
    const address = bufToIp4(m.attrs.local ?? m.attrs.address);
    if (!address) continue;
    out.push({ ifindex, address, prefixLen: m.data.prefixlen ?? 32, peer: bufToIp4(m.attrs.address) || address });
  }
  return out;
}

export async function listAddresses(ns: NlSocket, ifindex: number): Promise<AddressEntry[]> {
  return (await dumpAddresses(ns, ifindex)).map(({ ifindex: i, address, prefixLen }) => ({ ifindex: i, address, prefixLen }));
}

export async function addAddress(ns: NlSocket, ifindex: number, address: string, prefixLen: number): Promise<void> {
  const buf = ip4ToBuf(address);
  try {
    await ns.call(`add address ${address}/${prefixLen} to link #${ifindex}`, (s, timeout) =>
      s.newAddress({ family: AF_INET, prefixlen: prefixLen, index: ifindex }, { local: buf, address: buf }, { flags: CE, timeout }),
    );
  } catch (e) {
    if (isErrno(e, 'EEXIST')) return;
    throw e;
  }
}

export async function deleteAddress(ns: NlSocket, a: { ifindex: number; address: string; prefixLen: number; peer?: string }): Promise<void> {
  try {
    await ns.call(`delete address ${a.address}/${a.prefixLen} from link #${a.ifindex}`, (s, timeout) =>
      s.delAddress(
        { family: AF_INET, prefixlen: a.prefixLen, index: a.ifindex },
        { local: ip4ToBuf(a.address), address: ip4ToBuf(a.peer ?? a.address) },
        { timeout },
      ),
    );
  } catch (e) {
    if (isErrno(e, 'EADDRNOTAVAIL')) return; // already gone (e.g. removed with its primary)
    throw e;
  }
}

export async function ensureOnlyAddress(ns: NlSocket, ifindex: number, cidr: string, within?: string): Promise<void> {
  const want = parseCidr(cidr, 'address');
  const scope = within === undefined ? undefined : parseCidr(within, 'address scope');
  const current = await dumpAddresses(ns, ifindex);
  let present = false;
  let deleted = false;
  for (const a of current) {
    if (a.address === want.ip && a.prefixLen === want.len) {
      present = true;
      continue;
    }
    if (scope === undefined || cidrContains(scope, a.address)) {
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
  const want = parseCidr(cidr, 'address');
  const found = (await dumpAddresses(ns, ifindex)).find((a) => a.address === want.ip && a.prefixLen === want.len);
  if (!found) return false;
  await deleteAddress(ns, found);
  return true;
}
