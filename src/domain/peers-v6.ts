/**
 * Desired kernel state of an overlay's IPv6 half (issue 21): what flanneld's v6 vxlan backend
 * programs on flannel-v6.<VNI> for every remote dual-stack lease (docs/ipv6.md). Pure, like
 * peers.ts, and in peers.ts's shapes, so the same planner (planPeers) and the same staged apply
 * (neighbour → FDB → route, removal in reverse) serve both families.
 *
 * Per remote vxlan lease with a v6 subnet, a PublicIPv6 and BackendV6Data:
 *   neighbour  <subnet6 address> → BackendV6Data.VtepMAC           (NDP, permanent)
 *   FDB        BackendV6Data.VtepMAC → PublicIPv6                   (the remote v6 VTEP)
 *   route      <subnet6> via <subnet6 address> onlink dev flannel-v6.<VNI>
 * A lease without one of those (a v4-only host in a dual-stack overlay, a host whose interface
 * has no v6 address) gets no v6 entries, with the reason. DirectRouting's v6 route via PublicIPv6
 * is not built: v6 peers always go through the device.
 */
import { cidr6Equals, Cidr6, formatCidr6, formatIPv6 } from './ipv6';
import { describeLeaseBackend, Lease } from './lease';
import type { DesiredResult, PeerState } from './peers';

export interface DesiredV6Input {
  ownSubnet6: Cidr6 | null;
  leases: readonly Lease[];
}

/** The same shape as the v4 half's: entries to program, and leases skipped with the reason. */
export type DesiredV6Result = DesiredResult;

export function desiredPeersV6(input: DesiredV6Input): DesiredV6Result {
  const state: PeerState = { neighbours: [], fdb: [], routes: [], flood: [] };
  const skipped: DesiredV6Result['skipped'] = [];
  for (const lease of input.leases) {
    const s6 = lease.subnet6;
    if (!s6) continue; // a v4-only lease: nothing to do in the v6 half (not worth a warning)
    if (input.ownSubnet6 && cidr6Equals(s6, input.ownSubnet6)) continue;
    const subnet = formatCidr6(s6);
    const { backendType, publicIPv6, vxlan6 } = lease.attrs;
    if (backendType !== 'vxlan') {
      skipped.push({ subnet, reason: `its backend is ${describeLeaseBackend(backendType)}; the v6 data plane is vxlan's (flannel-v6)` });
      continue;
    }
    if (!vxlan6) {
      skipped.push({ subnet, reason: 'dual-stack vxlan lease without BackendV6Data' });
      continue;
    }
    if (!publicIPv6) {
      skipped.push({ subnet, reason: 'dual-stack vxlan lease without PublicIPv6' });
      continue;
    }
    const gw = formatIPv6(s6.base);
    state.neighbours.push({ ip: gw, mac: vxlan6.vtepMac });
    state.fdb.push({ mac: vxlan6.vtepMac, dst: publicIPv6 });
    state.routes.push({ dst: subnet, gateway: gw, dev: 'vxlan', onlink: true });
  }
  return { state, skipped };
}

/** flanneld's v6 device name (flannel-v6.<VNI>), shortened past IFNAMSIZ as vxlanDeviceName does. */
export function vxlanV6DeviceName(vni: number): string {
  const name = `flannel-v6.${vni}`;
  return name.length <= 15 ? name : `fl6.${vni}`;
}
