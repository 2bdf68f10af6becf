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
 */
import { Cidr, cidrEquals, formatCidr } from './ipv4';
import { describeLeaseBackend, Lease } from './lease';
import type { WireguardBackend } from './wireguard-config';
import type { UapiPeer } from './wg-uapi';

export interface WireguardPeersInput {
  readonly backend: WireguardBackend;
  readonly ownSubnet: Cidr | null;
  readonly ownPublicKey: string;
  readonly leases: readonly Lease[];
}

export interface WireguardPeersResult {
  readonly peers: UapiPeer[];
  readonly skipped: { subnet: string; reason: string }[];
}

export function desiredWireguardPeers(input: WireguardPeersInput): WireguardPeersResult {
  const peers: UapiPeer[] = [];
  const skipped: { subnet: string; reason: string }[] = [];
  const byKey = new Map<string, string>(); // public key → the subnet that has it
  const sorted = [...input.leases].sort((a, b) => a.subnet.base - b.subnet.base);
  const b = input.backend;
  for (const lease of sorted) {
    if (input.ownSubnet && cidrEquals(lease.subnet, input.ownSubnet)) continue;
    const subnet = formatCidr(lease.subnet);
    const key = lease.attrs.wireguard?.publicKey;
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
      endpoint: `${lease.attrs.publicIP}:${b.listenPort}`,
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
