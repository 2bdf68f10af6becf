/**
 * Keeps multicast and broadcast across hosts (issue 17, domain/multicast.ts) in step with this
 * host's overlays and endpoints: the netdev table `overlay-flannel-mcast`, and whether each
 * overlay's dataplane gives its overlay-flannel peers flood entries. The kernel is the record, as
 * for the fast path: a network is its record bridge `ofb-…` (gateway = this host's subnet .1;
 * routed when it holds 169.254.1.1; multicast off when its alias says so), its endpoints are the
 * routed veths' host routes `<address>/32 dev ofh…` or the bridge's `ofh…` ports. So a restarted
 * plugin rebuilds the same plan. Checked when an endpoint comes or goes (after a short delay, so a
 * burst shares one check), when an overlay joins or becomes ready, and every few seconds (a
 * device recreated with a new ifindex). Runs on its own queue; a failure is logged once per kind
 * and retried, never raised to Docker (unicast never depends on this table).
 * host-gw and alloc overlays have no vxlan device to replicate through: their multicast and
 * broadcast stay on each host (logged once).
 */
import type { Logger } from 'pino';
import { errorText, OverlayError } from '../errors';
import { gatewayOf } from '../domain/addresses';
import { LINK_LOCAL_GATEWAY } from '../domain/datapath';
import { cidrContains, formatIPv4, parseCidr, type Cidr } from '../domain/ipv4';
import { MULTICAST_OFF_ALIAS, multicastPlan, type MulticastOverlayInput, type MulticastPlan } from '../domain/multicast';
import { BRIDGE_PREFIX, HOST_VETH_PREFIX } from '../domain/names';
import type { Kernel, MulticastResult } from '../kernel';
import type { SerialQueue } from '../util/serial-queue';
import { CoalescedTicker } from '../util/coalesced-ticker';
import { StateChanges } from '../util/state-changes';

/** What the plan needs of a joined overlay (the daemon's OverlayHandle). */
export interface MulticastOverlaySource {
  name: string;
  vxlan(): { vni: number; device: string; directRouting: boolean } | null;
  lease(): { subnet: Cidr } | null;
  /** Flood entries for overlay-flannel peers on or off (the overlay's dataplane). */
  setFlooding?(on: boolean): void;
}

export interface MulticastGathered {
  plan: MulticastPlan;
  /** overlay name → whether its peers get flood entries (a local network with multicast on) */
  flooding: Map<string, boolean>;
  /** overlays that cannot carry multicast across hosts, with why */
  skipped: { overlay: string; reason: string }[];
}

export async function gatherMulticast(overlays: readonly MulticastOverlaySource[], kernel: Pick<Kernel, 'listLinks' | 'listRoutes' | 'listAddresses'>): Promise<MulticastGathered> {
  const links = await kernel.listLinks();
  const byName = new Map(links.map((l) => [l.name, l]));
  const byIndex = new Map(links.map((l) => [l.index, l]));
  const bridges: { name: string; index: number; alias?: string; addresses: string[] }[] = [];
  for (const l of links) {
    if (l.kind === 'bridge' && l.name.startsWith(BRIDGE_PREFIX)) bridges.push({ name: l.name, index: l.index, ...(l.alias ? { alias: l.alias } : {}), addresses: (await kernel.listAddresses(l.index)).map((a) => a.address) });
  }
  let routes: { dst: string; oif: number; gateway?: string }[] | null = null;
  const inputs: MulticastOverlayInput[] = [];
  const flooding = new Map<string, boolean>();
  const skipped: MulticastGathered['skipped'] = [];
  for (const o of overlays) {
    const vx = o.vxlan();
    const subnet = o.lease()?.subnet;
    if (!subnet) continue;
    if (!vx) {
      skipped.push({ overlay: o.name, reason: 'no vxlan device (host-gw or alloc backend): multicast and broadcast stay on each host' });
      continue;
    }
    const dev = byName.get(vx.device);
    if (!dev?.up) continue;
    const gw = formatIPv4(gatewayOf(subnet));
    const bridge = bridges.find((b) => b.addresses.includes(gw));
    let network: MulticastOverlayInput['network'] = null;
    if (bridge) {
      const mode = bridge.addresses.includes(LINK_LOCAL_GATEWAY) ? 'routed' : 'bridge';
      let veths: { name: string; index: number }[];
      if (mode === 'bridge') {
        veths = links.filter((l) => l.master === bridge.index && l.name.startsWith(HOST_VETH_PREFIX)).map((l) => ({ name: l.name, index: l.index }));
      } else {
        routes ??= await kernel.listRoutes();
        veths = routes.flatMap((r) => {
          const name = byIndex.get(r.oif)?.name;
          if (r.gateway || !r.dst.endsWith('/32') || !name?.startsWith(HOST_VETH_PREFIX) || !cidrContains(subnet, parseCidr(r.dst).base)) return [];
          return [{ name, index: r.oif }];
        });
        veths = [...new Map(veths.map((v) => [v.name, v])).values()];
      }
      network = { mode, enabled: bridge.alias !== MULTICAST_OFF_ALIAS, bridge: { name: bridge.name, index: bridge.index }, veths };
    }
    flooding.set(o.name, network?.enabled === true);
    inputs.push({ overlay: o.name, vni: vx.vni, vxlan: { name: dev.name, index: dev.index }, network });
  }
  return { plan: multicastPlan(inputs), flooding, skipped };
}

export class MulticastKeeper {
  private readonly seen = new StateChanges();
  private readonly ticker: CoalescedTicker;

  constructor(
    private readonly gather: () => Promise<MulticastGathered>,
    private readonly ensure: (plan: MulticastPlan) => Promise<MulticastResult>,
    private readonly overlays: () => readonly MulticastOverlaySource[],
    queue: SerialQueue,
    private readonly log: Logger,
    intervalMs = 5000,
  ) {
    this.ticker = new CoalescedTicker(() => this.check(), queue, (e) => this.log.error({ err: errorText(e) }, 'multicast check failed (a bug)'), intervalMs);
  }

  start(): void {
    this.ticker.start();
  }

  stop(): void {
    this.ticker.stop();
  }

  kick(delayMs = 0): void {
    this.ticker.kick(delayMs);
  }

  private async check(): Promise<void> {
    try {
      const { plan, flooding, skipped } = await this.gather();
      const skippedText = skipped.map((s) => `${s.overlay}: ${s.reason}`).join('; ');
      if (this.seen.changed('skipped', skippedText) && skipped.length > 0) this.log.info({ skipped }, 'overlays without multicast across hosts');
      const result = await this.ensure(plan);
      // Flood entries only after the table is there: a peer's copies then already stop at our vxlan ingress.
      for (const o of this.overlays()) {
        const on = flooding.get(o.name);
        if (on !== undefined) o.setFlooding?.(on);
      }
      const summary = [...flooding].map(([k, v]) => `${k}=${v ? 'on' : 'off'}`).join(',');
      if (this.seen.changed('flooding', summary) && flooding.size > 0) this.log.info({ multicast: Object.fromEntries(flooding) }, 'multicast across hosts (netdev table overlay-flannel-mcast)');
      else if (result === 'rewritten') this.log.debug({ chains: plan.chains.length }, 'multicast table rewritten');
      if (this.seen.get('problem') !== undefined && this.seen.changed('problem', 'none')) this.log.info('multicast table written again after the earlier problem');
    } catch (e) {
      const kind = e instanceof OverlayError ? e.code : 'other';
      if (this.seen.changed('problem', kind)) {
        this.log.warn({ err: errorText(e) }, kind === 'UNSUPPORTED' ? 'multicast across hosts unavailable on this kernel; unicast is unaffected' : 'could not write the multicast table; retrying');
      }
    }
  }
}
