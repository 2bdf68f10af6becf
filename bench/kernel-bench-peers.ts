/**
 * kernel-bench-peers.ts — the kernel benchmark's synthetic flannel peers and what the kernel holds
 * of them. The overlay is flannel's: Network 10.0.0.0/13 (2047 leasable /24s, flannel's default
 * SubnetMin/SubnetMax) for up to 2000 peers, 10.0.0.0/10 (16383 /24s) above that (issue 23:
 * KERNEL_BENCH_PEERS=10000), vxlan VNI 1; a peer's lease value is flannel's exact JSON bytes.
 *
 * Design note: peers' PublicIPs come from the documentation ranges only (198.51.100.0/24,
 * 203.0.113.0/24 and 192.0.2.0/24 less our own .1 and the gateway .254), reused round-robin; no
 * packet is ever sent to them (the FDB only names them). Split out of kernel-bench.ts.
 */
import type { Etcd3 } from 'etcd3';
import { cidr, parseIPv4 } from '../src/domain/ipv4';
import { encodeLeaseAttrs, leaseKeyOf } from '../src/domain/lease';
import { stableMac } from '../src/domain/mac';
import type { Kernel } from '../src/kernel';

const TXN_OPS = 100; // etcd's --max-txn-ops is 128

export const PREFIX = '/coreos.com/network';
export const VNI = 1;
/** Remote leases the daemon holds while it is measured: KERNEL_BENCH_PEERS, default 2000. */
export const PEERS = peerCount(process.env.KERNEL_BENCH_PEERS);
/** Deadlines and budgets grow with the peer count (1 at 2000). */
export const SCALE = Math.max(1, PEERS / 2000);
const PREFIX_LEN = PEERS <= 2000 ? 13 : 10;
export const NETWORK = `10.0.0.0/${PREFIX_LEN}`;
/** The last /24 (10.7.255.0/24 in the /13), flannel's default SubnetMax for this Network. */
export const LAST_SLOT = 2 ** (24 - PREFIX_LEN) - 1;

function peerCount(text: string | undefined): number {
  const n = Number(text ?? 2000);
  if (!Number.isInteger(n) || n < 100 || n > 15_000) throw new Error(`KERNEL_BENCH_PEERS=${text}: an integer from 100 to 15000`);
  return n;
}

/** Underlay addresses for synthetic peers: documentation ranges only, reused round-robin. */
export function peerPublicIPs(): string[] {
  const ips: string[] = [];
  for (const net of ['198.51.100', '203.0.113']) for (let h = 1; h <= 254; h++) ips.push(`${net}.${h}`);
  for (let h = 2; h <= 253; h++) ips.push(`192.0.2.${h}`); // .1 is us, .254 the gateway
  return ips;
}

/** The i-th /24 of NETWORK (1 … LAST_SLOT are leasable: flannel's default SubnetMin/SubnetMax). */
export function slotSubnet(i: number) {
  return cidr((parseIPv4('10.0.0.0') + i * 256) >>> 0, 24);
}

export function leaseValue(publicIP: string, vtepMac: string): string {
  return encodeLeaseAttrs({ publicIP, backendType: 'vxlan', vxlan: { vni: VNI, vtepMac } });
}

/** Writes PEERS leases (slots 1 … PEERS) under `etcdLeaseId`, TXN_OPS a transaction; their keys. */
export async function seedPeerLeases(client: Etcd3, etcdLeaseId: string): Promise<string[]> {
  const ips = peerPublicIPs();
  const keys: string[] = [];
  for (let first = 1; first <= PEERS; first += TXN_OPS) {
    const ops = [];
    for (let i = first; i < Math.min(first + TXN_OPS, PEERS + 1); i++) {
      const key = `${PREFIX}/subnets/${leaseKeyOf(slotSubnet(i))}`;
      keys.push(key);
      const value = leaseValue(ips[(i - 1) % ips.length] as string, stableMac('bench-peer', i));
      ops.push({ request_put: { key: Buffer.from(key), value: Buffer.from(value), lease: etcdLeaseId } });
    }
    await client.kv.txn({ success: ops });
  }
  return keys;
}

/** Deletes these lease keys, TXN_OPS a transaction. */
export async function deletePeerLeases(client: Etcd3, keys: readonly string[]): Promise<void> {
  for (let i = 0; i < keys.length; i += TXN_OPS) {
    const ops = keys.slice(i, i + TXN_OPS).map((key) => ({ request_delete_range: { key: Buffer.from(key) } }));
    await client.kv.txn({ success: ops });
  }
}

/** The peer entries on the vxlan device: permanent FDB entries (not the flood ones), neighbours, gateway routes. */
export interface KernelCount {
  fdb: number;
  neighbours: number;
  routes: number;
}

export async function fdbCount(k: Kernel, ifindex: number): Promise<number> {
  return (await k.listFdb(ifindex)).filter((f) => f.permanent && f.mac !== '00:00:00:00:00:00').length;
}

export async function countKernel(k: Kernel, ifindex: number): Promise<KernelCount> {
  const fdb = await fdbCount(k, ifindex);
  const neighbours = (await k.listNeighbours(ifindex)).filter((n) => n.permanent).length;
  const routes = (await k.listRoutes()).filter((r) => r.oif === ifindex && r.gateway).length;
  return { fdb, neighbours, routes };
}
