/**
 * The wireguard backend's peers (flannel pkg/backend/wireguard, mode "separate" over IPv4): one
 * WireGuard peer per remote lease, with the lease's PublicKey, endpoint `PublicIP:ListenPort` (our
 * configured port: flanneld assumes every host listens on the same one), allowed IPs = the lease's
 * subnet, and the overlay's PSK and keepalive. Pure: leases and what the device listed go in, the
 * peers to set and the keys to remove come out.
 *
 * Leases that cannot be peers are skipped with a reason (the caller logs it once): another
 * backend, the own subnet, our own public key (a stale lease of this host), and a public key
 * that an earlier subnet (in subnet order) already has: WireGuard keys a peer by its public key,
 * so a second lease with the same key would silently take over the first one's allowed IPs.
 * Unlike flanneld, the plan also removes peers no lease asks for (hosts gone while we were down).
 *
 * `family: 6` is the same for flannel-wg-v6 (Mode "separate" of a dual-stack overlay): the lease's
 * v6 subnet, its BackendV6Data PublicKey, endpoint `[PublicIPv6]:ListenPortV6`; a lease with no v6
 * subnet, no PublicIPv6 or no BackendV6Data key is skipped with the reason.
 */
import { Cidr, cidrEquals, formatCidr } from './ipv4';
import { Cidr6, formatCidr6 } from './ipv6';
import { describeLeaseBackend, Lease } from './lease';
import type { WireguardBackend } from './wireguard-config';
import type { UapiPeer } from './wg-uapi';

export interface WireguardPeersInput {
  readonly backend: WireguardBackend;
  readonly ownSubnet: Cidr | null;
  readonly ownPublicKey: string;
  readonly leases: readonly Lease[];
  /** 4 (flannel-wg, the default) or 6 (flannel-wg-v6). */
  readonly family?: 4 | 6;
  /** The own v6 subnet (family 6). */
  readonly ownSubnet6?: Cidr6 | null;
}

/** What one lease offers a device of `family`: its subnet, key and endpoint, or why it cannot be a peer. */
function leaseSide(lease: Lease, input: WireguardPeersInput): { own: boolean; subnet: string; key?: string; endpoint?: string; missing?: string } {
  const b = input.backend;
  if (input.family !== 6) {
    const own = !!input.ownSubnet && cidrEquals(lease.subnet, input.ownSubnet);
    return { own, subnet: formatCidr(lease.subnet), key: lease.attrs.wireguard?.publicKey, endpoint: `${lease.attrs.publicIP}:${b.listenPort}` };
  }
  const s6 = lease.subnet6;
  if (!s6) return { own: false, subnet: formatCidr(lease.subnet), missing: 'it has no IPv6 subnet' };
  const subnet = formatCidr6(s6);
  const own = !!input.ownSubnet6 && s6.base === input.ownSubnet6.base && s6.len === input.ownSubnet6.len;
  if (!lease.attrs.publicIPv6) return { own, subnet, missing: 'it has no PublicIPv6 (its host has no IPv6 underlay address)' };
  const key = lease.attrs.backendType === 'wireguard' ? lease.attrs.wireguard6?.publicKey : undefined;
  if (lease.attrs.backendType === 'wireguard' && !key) return { own, subnet, missing: 'it has no BackendV6Data PublicKey (its host runs no flannel-wg-v6)' };
  return { own, subnet, key, endpoint: `[${lease.attrs.publicIPv6}]:${b.listenPortV6}` };
}

function subnetOrder(family: 4 | 6 | undefined): (a: Lease, b: Lease) => number {
  if (family !== 6) return (a, b) => a.subnet.base - b.subnet.base;
  return (a, b) => {
    const x = a.subnet6?.base ?? -1n;
    const y = b.subnet6?.base ?? -1n;
    return x < y ? -1 : x > y ? 1 : 0;
  };
}

export interface WireguardPeersResult {
  readonly peers: UapiPeer[];
  readonly skipped: { subnet: string; reason: string }[];
}

export function desiredWireguardPeers(input: WireguardPeersInput): WireguardPeersResult {
  const peers: UapiPeer[] = [];
  const skipped: { subnet: string; reason: string }[] = [];
  const byKey = new Map<string, string>(); // public key → the subnet that has it
  const sorted = [...input.leases].sort(subnetOrder(input.family));
  const b = input.backend;
  for (const lease of sorted) {
    const side = leaseSide(lease, input);
    if (side.own) continue;
    const { subnet, key } = side;
    if (side.missing) {
      skipped.push({ subnet, reason: side.missing });
      continue;
    }
    if (lease.attrs.backendType !== 'wireguard' || !key) {
      skipped.push({ subnet, reason: `its backend is ${describeLeaseBackend(lease.attrs.backendType)}, this overlay uses wireguard` });
      continue;
    }
    if (key === input.ownPublicKey) {
      skipped.push({ subnet, reason: 'it carries this host\'s own public key (a stale lease of this host?)' });
      continue;
    }
    const first = byKey.get(key);
    if (first) {
      skipped.push({ subnet, reason: `its public key is already the peer of ${first}; each host needs its own key` });
      continue;
    }
    byKey.set(key, subnet);
    peers.push({
      publicKey: key,
      endpoint: side.endpoint!,
      allowedIPs: [subnet],
      ...(b.psk ? { presharedKey: b.psk } : {}),
      ...(b.persistentKeepaliveInterval ? { persistentKeepalive: b.persistentKeepaliveInterval } : {}),
    });
  }
  return { peers, skipped };
}

function samePeer(a: UapiPeer, b: UapiPeer): boolean {
  const ips = (p: UapiPeer) => [...p.allowedIPs].sort().join(',');
  return a.endpoint === b.endpoint && ips(a) === ips(b) && (a.presharedKey ?? '') === (b.presharedKey ?? '') && (a.persistentKeepalive ?? 0) === (b.persistentKeepalive ?? 0);
}

/** Peers to set (new or different) and public keys to remove, turning `observed` into `desired`. */
export function planWireguardPeers(desired: readonly UapiPeer[], observed: readonly UapiPeer[]): { set: UapiPeer[]; remove: string[] } {
  const have = new Map(observed.map((p) => [p.publicKey, p]));
  const want = new Set(desired.map((p) => p.publicKey));
  const set = desired.filter((p) => {
    const h = have.get(p.publicKey);
    return !h || !samePeer(h, p);
  });
  const remove = observed.filter((p) => !want.has(p.publicKey)).map((p) => p.publicKey);
  return { set, remove };
}

/** What a device's peers program, by subnet (each allowed IP): the peer's public key and endpoint,
 *  never its PSK (this feeds the status view's "programmed"; a subnet two peers claim is the last's,
 *  as WireGuard's allowed-IPs table routes it to the last one set). */
export function peersBySubnet(peers: readonly UapiPeer[]): Map<string, { publicKey: string; endpoint: string | null }> {
  const out = new Map<string, { publicKey: string; endpoint: string | null }>();
  for (const p of peers) for (const ip of p.allowedIPs) out.set(ip, { publicKey: p.publicKey, endpoint: p.endpoint ?? null });
  return out;
}
