/**
 * Keeps the fast path's netdev table (domain/fastpath.ts, kernel/nft-fastpath.ts) in step with
 * this host's overlays, peers and endpoints. The kernel is the record here too: the endpoints are
 * the driver's host routes `<address>/32 dev ofh<id>`, the peers the reconciler's routes
 * `<subnet> via <subnet>.0 dev flannel.<VNI> onlink`, the devices are read by name, so a
 * restarted plugin rebuilds the same plan. Checked when an endpoint is created or deleted, when an
 * overlay is joined or becomes ready, and every few seconds (a peer came or went, a device
 * recreated by the reconciler got a new ifindex). Writing is cheap when nothing changed (dumps of
 * the chains and sets) and one small transaction otherwise; since the fast path only accelerates
 * (a packet it misses is routed), a failure is logged once per kind and retried, never raised to
 * Docker. It runs on its own queue, not the host's kernel queue: it writes only its own table and
 * reads through the netlink socket (which serialises dumps), and deleting a veth's chain waits
 * ~10 ms for an RCU grace period that Docker's next plugin call must not wait behind. Endpoint
 * changes are checked after a short delay, so a burst of `docker run` shares one check.
 * A dual-stack overlay's v6 half is gathered the same way: flannel-v6.<VNI> by name, its peer
 * routes `<subnet6> via <subnet6 address> onlink`, the endpoints' `<v6>/128 dev ofh<id>`.
 */
import type { Logger } from 'pino';
import { errorText, OverlayError } from '../errors';
import { fastpathPlan, type FastpathOverlayInput, type FastpathPlan, type FastpathSkip } from '../domain/fastpath';
import { parseCidr, type Cidr } from '../domain/ipv4';
import { parseCidr6, type Cidr6 } from '../domain/ipv6';
import type { FastpathV6Input } from '../domain/fastpath-v6';
import { vxlanV6DeviceName } from '../domain/peers-v6';
import { HOST_VETH_PREFIX } from '../domain/names';
import type { FastpathResult, Kernel, RouteEntry } from '../kernel';
import type { SerialQueue } from '../util/serial-queue';
import { CoalescedTicker } from '../util/coalesced-ticker';
import { StateChanges } from '../util/state-changes';

/** What the plan needs of a joined overlay (the driver's OverlayHandle in production). */
export interface FastpathOverlaySource {
  name: string;
  vxlan(): { vni: number; device: string; directRouting: boolean } | null;
  network(): Cidr | null;
  /** The IPv6Network of a dual-stack overlay. */
  network6?(): Cidr6 | null;
  lease(): { subnet: Cidr; subnet6?: Cidr6 } | null;
}

/** `<gateway>/<len>` routes through `oif` (the reconciler's peer routes), compared in place: no string built per route. */
const peerRoutesOf = (routes: readonly RouteEntry[], oif: number): RouteEntry[] =>
  routes.filter((r) => r.oif === oif && r.onlink && r.gateway !== undefined && r.dst.startsWith(r.gateway) && r.dst.charCodeAt(r.gateway.length) === 47);

/** The plan from the overlays this host joined and the kernel's links and host routes. */
export async function gatherFastpath(overlays: readonly FastpathOverlaySource[], kernel: Pick<Kernel, 'listLinks' | 'listRoutes'>): Promise<{ plan: FastpathPlan; skipped: FastpathSkip[] }> {
  const links = await kernel.listLinks();
  const byName = new Map(links.map((l) => [l.name, l]));
  const byIndex = new Map(links.map((l) => [l.index, l]));
  const ready: (Omit<FastpathOverlayInput, 'peerRoutes' | 'v6'> & { v6?: Omit<FastpathV6Input, 'peerRoutes'> })[] = [];
  const skipped: FastpathSkip[] = [];
  for (const o of overlays) {
    const vx = o.vxlan();
    const network = o.network();
    const subnet = o.lease()?.subnet;
    if (!vx || !network || !subnet) continue; // host-gw, or not ready yet
    if (vx.directRouting) {
      skipped.push({ overlay: o.name, reason: 'DirectRouting sends same-segment peers around the vxlan device: left to routing' });
      continue;
    }
    const dev = byName.get(vx.device);
    if (!dev?.up) continue;
    const network6 = o.network6?.() ?? null;
    const subnet6 = o.lease()?.subnet6;
    const dev6 = byName.get(vxlanV6DeviceName(vx.vni));
    const v6 = network6 && subnet6 && dev6?.up ? { v6: { network: network6, subnet: subnet6, device: dev6.name, index: dev6.index, mtu: dev6.mtu } } : {};
    ready.push({ name: o.name, vni: vx.vni, network, subnet, vxlanDevice: vx.device, vxlanIndex: dev.index, ...v6 });
  }
  const routes = ready.length === 0 ? [] : await kernel.listRoutes();
  const routes6 = ready.some((o) => o.v6) ? (await kernel.listRoutes(undefined, 6)).filter((r) => r.dst.includes(':')) : [];
  // The reconciler's peer routes: `<subnet> via <subnet>.0 dev flannel.<VNI> onlink` (v6: via the subnet6 address).
  const inputs: FastpathOverlayInput[] = ready.map(({ v6, ...o }) => ({
    ...o,
    peerRoutes: peerRoutesOf(routes, o.vxlanIndex).map((r) => parseCidr(r.dst)),
    ...(v6 ? { v6: { ...v6, peerRoutes: peerRoutesOf(routes6, v6.index).map((r) => parseCidr6(r.dst)) } } : {}),
  }));
  const hostRoutes = routes.filter((r) => r.dst.endsWith('/32') && !r.gateway).flatMap((r) => {
    const name = byIndex.get(r.oif)?.name;
    return name ? [{ dst: parseCidr(r.dst), oif: r.oif, oifName: name }] : [];
  });
  const hostRoutes6 = routes6.filter((r) => r.dst.endsWith('/128') && !r.gateway).flatMap((r) => {
    const name = byIndex.get(r.oif)?.name;
    return name ? [{ dst: parseCidr6(r.dst), oif: r.oif, oifName: name }] : [];
  });
  const planned = fastpathPlan(inputs, hostRoutes, HOST_VETH_PREFIX, hostRoutes6);
  return { plan: planned.plan, skipped: [...skipped, ...planned.skipped] };
}

export class FastpathKeeper {
  /** 'problem' (an error kind, or 'none'), 'overlays' and 'skipped' as last logged. */
  private readonly seen = new StateChanges();
  private readonly ticker: CoalescedTicker;

  constructor(
    private readonly gather: () => Promise<{ plan: FastpathPlan; skipped: FastpathSkip[] }>,
    private readonly ensure: (plan: FastpathPlan) => Promise<FastpathResult>,
    queue: SerialQueue,
    private readonly log: Logger,
    intervalMs = 5000,
  ) {
    this.ticker = new CoalescedTicker(() => this.check(), queue, (e) => this.log.error({ err: errorText(e) }, 'fast path check failed (a bug)'), intervalMs);
    this.seen.changed('overlays', ''); // no overlays covered yet: only a non-empty set is news
  }

  start(): void {
    this.ticker.start();
  }

  stop(): void {
    this.ticker.stop();
  }

  /** Check the table in `delayMs` (coalesced with a check already waiting). */
  kick(delayMs = 0): void {
    this.ticker.kick(delayMs);
  }

  private async check(): Promise<void> {
    try {
      const { plan, skipped } = await this.gather();
      const skippedText = skipped.map((s) => `${s.overlay}: ${s.reason}`).join('; ');
      if (this.seen.changed('skipped', skippedText) && skipped.length > 0) this.log.info({ skipped }, 'overlays without the fast path (their packets are routed)');
      const result = await this.ensure(plan);
      const overlays = plan.overlays.map((o) => `${o.name}/${o.vxlanDevice}`).join(',');
      if (this.seen.changed('overlays', overlays)) this.log.info({ overlays: plan.overlays.map((o) => ({ overlay: o.name, device: o.vxlanDevice, endpoints: o.endpoints.length })) }, 'fast path (nftables netdev table overlay-flannel) covers these overlays');
      else if (result === 'updated' || result === 'rewritten') this.log.debug({ result, endpoints: plan.overlays.reduce((n, o) => n + o.endpoints.length, 0), peers: plan.overlays.reduce((n, o) => n + o.peers.length, 0) }, 'fast path table changed');
      if (this.seen.get('problem') !== undefined && this.seen.changed('problem', 'none')) this.log.info('fast path written again after the earlier problem');
    } catch (e) {
      const text = errorText(e);
      const kind = e instanceof OverlayError ? e.code : 'other';
      if (this.seen.changed('problem', kind)) {
        this.log.warn({ err: text }, kind === 'UNSUPPORTED' ? 'fast path unavailable; overlay packets are routed (correct, a little slower)' : 'could not write the fast path; overlay packets are routed meanwhile; retrying');
      }
    }
  }
}
