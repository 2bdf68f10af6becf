/**
 * The netfilter side of one overlay on this host, kept by the dataplane on every full sync and
 * lease change (the rules name our subnet): flannel's FORWARD accept rules, flannel's masquerade
 * rules (IP_MASQ) and our conntrack bypass (NOTRACK). Each is idempotent in src/kernel; failures
 * are logged once per state change and never fail a sync. remove() (a clean stop) takes the
 * masquerade and NOTRACK rules away again; FORWARD accepts stay, as with flanneld.
 * A dual-stack overlay has two: one for Network and one for IPv6Network (the same rules in the
 * `ip6` tables, src/kernel telling the family from the network's text).
 * Callers run these inside the host's serial queue.
 */
import type { Logger } from 'pino';
import type { Kernel } from '../kernel';
import { StateChanges } from '../util/state-changes';
import { errorText } from '../errors';
import { masqCommands } from '../domain/masq-rules';
import { notrackCommands, notrackRules } from '../domain/notrack-rules';

export interface FirewallOptions {
  readonly ipMasq: boolean;
  readonly notrack: boolean;
}

/** What the overlay's vxlan device receives on (none for host-gw). */
export interface VxlanEndpoint {
  publicIP: string;
  port: number;
}

export class OverlayFirewall {
  /** The last state of each rule set ('forward', 'masq', 'notrack'): logged once per change. */
  private readonly seen = new StateChanges<'forward' | 'masq' | 'notrack'>();
  /** `ip` or `ip6`: the nftables family of this network's rules (for the logs). */
  private readonly family: 'ip' | 'ip6';
  private readonly tool: 'iptables' | 'ip6tables';

  constructor(
    private readonly kernel: Kernel,
    private readonly log: Logger,
    private readonly network: string,
    private readonly opts: FirewallOptions,
  ) {
    this.family = network.includes(':') ? 'ip6' : 'ip';
    this.tool = this.family === 'ip6' ? 'ip6tables' : 'iptables';
  }

  /** All three rule sets for this host's `subnet` (null before the lease: forward rules only). */
  async ensure(subnet: string | null, vxlan: VxlanEndpoint | null): Promise<void> {
    await this.ensureForward();
    await this.ensureMasq(subnet);
    await this.ensureNotrack(subnet, vxlan);
  }

  /**
   * flannel's forward rules (FORWARD accepts from and to the overlay Network): dockerd sets the
   * FORWARD policy to DROP, which drops every routed overlay packet. Checked on every full sync
   * (dockerd may create its chain after we start).
   */
  private async ensureForward(): Promise<void> {
    const network = this.network;
    let state: 'present' | 'added' | 'no-chain';
    try {
      state = await this.kernel.ensureForwardAccept(network);
    } catch (e) {
      if (this.seen.changed('forward', 'error')) {
        this.log.warn({ err: errorText(e), network }, 'could not add the FORWARD accept rules of the overlay; overlay traffic is dropped where the FORWARD policy is DROP');
      }
      return;
    }
    const changed = this.seen.changed('forward', state);
    if (state === 'added') this.log.info({ network }, `FORWARD accept rules of the overlay added (nftables ${this.family} filter FORWARD)`);
    else if (state === 'no-chain' && changed) {
      const t = this.tool;
      this.log.info(
        { network },
        `no nftables "${this.family} filter FORWARD" chain (yet); if this host filters forwarded traffic with ${t}-legacy, allow the overlay: ` +
          `${t} -A FORWARD -s ${network} -j ACCEPT; ${t} -A FORWARD -d ${network} -j ACCEPT`,
      );
    }
  }

  /**
   * flannel's ip-masq rules (IP_MASQ, nft-masq.ts): containers leaving the overlay get the host's
   * address, overlay ↔ overlay is never translated. With IP_MASQ off, rules a previous run left
   * are removed once.
   */
  private async ensureMasq(subnet: string | null): Promise<void> {
    const network = this.network;
    if (!this.opts.ipMasq) {
      if (!this.seen.changed('masq', 'off')) return;
      const n = await this.kernel.removeMasquerade(network).catch(() => 0);
      if (typeof n === 'number' && n > 0) this.log.info({ network, rules: n }, 'IP_MASQ is off: removed the masquerade rules of an earlier run');
      return;
    }
    if (!subnet) return;
    let state: 'present' | 'updated' | 'no-chain';
    try {
      state = await this.kernel.ensureMasquerade(network, subnet);
    } catch (e) {
      if (this.seen.changed('masq', 'error')) this.log.warn({ err: errorText(e), network }, 'could not write the masquerade rules (IP_MASQ); containers may not reach the outside');
      return;
    }
    const changed = this.seen.changed('masq', state);
    if (state === 'updated') this.log.info({ network, subnet }, `masquerade rules written (nftables ${this.family} nat POSTROUTING)`);
    else if (state === 'no-chain' && changed) {
      this.log.warn(
        { network, commands: masqCommands(network, subnet) },
        `no nftables "${this.family} nat POSTROUTING" chain (yet; dockerd creates it); with ${this.tool}-legacy, add the masquerade rules by hand`,
      );
    }
  }

  /** NOTRACK (domain/notrack-rules.ts): overlay ↔ overlay and vxlan packets skip conntrack. */
  private async ensureNotrack(subnet: string | null, vxlan: VxlanEndpoint | null): Promise<void> {
    const network = this.network;
    if (!this.opts.notrack) {
      if (!this.seen.changed('notrack', 'off')) return;
      const n = await this.kernel.removeNotrack(network).catch(() => 0);
      if (n > 0) this.log.info({ network, rules: n }, 'NOTRACK is off: removed the conntrack bypass rules of an earlier run');
      return;
    }
    if (!subnet) return;
    const rules = notrackRules(network, subnet, vxlan);
    try {
      const state = await this.kernel.ensureNotrack(network, rules);
      if (state === 'updated') this.log.info({ network, subnet, rules: rules.length }, `conntrack bypass rules written (nftables ${this.family} raw PREROUTING/OUTPUT)`);
      this.seen.changed('notrack', state);
    } catch (e) {
      if (this.seen.changed('notrack', 'error')) {
        this.log.warn(
          { err: errorText(e), network, commands: notrackCommands(network, rules) },
          `could not write the conntrack bypass rules (NOTRACK); overlay traffic works but is tracked. With ${this.tool}-legacy add them by hand, or set NOTRACK=false`,
        );
      }
    }
  }

  /** A clean stop: remove our masquerade and NOTRACK rules. Never throws. */
  async remove(): Promise<void> {
    const network = this.network;
    if (this.opts.ipMasq) {
      try {
        const n = await this.kernel.removeMasquerade(network);
        if (typeof n === 'number' && n > 0) this.log.info({ network, rules: n }, 'masquerade rules removed');
      } catch (e) {
        this.log.warn({ err: errorText(e), network }, 'could not remove the masquerade rules');
      }
    }
    if (this.opts.notrack) {
      try {
        const n = await this.kernel.removeNotrack(network);
        if (n > 0) this.log.info({ network, rules: n }, 'conntrack bypass rules removed');
      } catch (e) {
        this.log.warn({ err: errorText(e), network }, 'could not remove the conntrack bypass rules');
      }
    }
  }
}
