/**
 * soak-faults.ts — the faults a soak injects, and the seeded schedule that places them.
 * Each fault is a bounded async step that leaves the lab working again (or throws saying why):
 *   plugin-kill      SIGKILL the plugin on one host; Docker restarts it (else disable -f / enable)
 *   plugin-cycle     `docker plugin disable -f` and `enable` on one host
 *   plugin-upgrade   `docker plugin upgrade` on one host to the other of two releases (disable -f,
 *                    upgrade, enable: the way Docker upgrades a managed plugin), traffic running
 *   etcd-restart     etcd SIGKILLed, down for 5 s, started again on its data dir
 *   dockerd-live     h1's dockerd restarted with --live-restore (containers keep running)
 *   dockerd-cold     h2's dockerd restarted without it (containers stop; --restart=always ones return)
 *   link-cut         h2's LAN link down for longer than NAME_TTL (its names expire), then up again
 * The schedule is a pure function of the seed, printed by the runner, so a run can be repeated.
 */
import type { DockerHost } from '../helpers/docker-lab';
import type { EtcdServer } from '../helpers/etcd-server';
import { run } from '../helpers/run';
import { sleep, waitFor } from '../helpers/wait';
import * as L from '../lab/docker-plugin-lab';

export const FAULT_KINDS = ['plugin-kill', 'plugin-cycle', 'plugin-upgrade', 'etcd-restart', 'dockerd-live', 'dockerd-cold', 'link-cut'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** mulberry32: a small seeded PRNG, [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface PlannedFault {
  atMs: number;
  kind: FaultKind;
  /** 0 = h1, 1 = h2 (for the kinds that pick a host). */
  host: 0 | 1;
}

/**
 * `count` faults spread over [startMs, endMs): one per equal slot at a random point of it, kinds
 * cycling through `kinds` in a seeded order so that every kind comes once before any comes twice.
 */
export function planFaults(seed: number, count: number, startMs: number, endMs: number, kinds: readonly FaultKind[] = FAULT_KINDS): PlannedFault[] {
  const rnd = prng(seed);
  const order = [...kinds];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const slot = (endMs - startMs) / Math.max(1, count);
  return Array.from({ length: count }, (_, i) => ({
    atMs: Math.round(startMs + slot * i + rnd() * slot * 0.8),
    kind: order[i % order.length]!,
    host: (rnd() < 0.5 ? 0 : 1) as 0 | 1,
  }));
}

export interface FaultTargets {
  etcd: EtcdServer;
  docker: [DockerHost, DockerHost];
  /** NAME_TTL of the plugins, in seconds (the link cut lasts longer). */
  nameTtlSec: number;
  /** The LAN namespace, where h2's link is cut (its `p2` end: the host keeps its eth0 and routes). */
  lanNs: string;
  /** The two releases in the lab's registry a `plugin-upgrade` moves between (null: that kind cannot run). */
  releases: [string, string] | null;
  /** The overlay's etcd prefix: a `plugin-upgrade` checks the host's lease (subnet, VtepMAC) is kept. */
  prefix: string;
}

async function onePlugin(d: DockerHost, timeoutMs = 60_000): Promise<number> {
  const [pid] = await waitFor(async () => {
    const p = await L.pluginPids(d.host);
    return p.length === 1 && p;
  }, { timeoutMs, intervalMs: 200, what: `one plugin process on ${d.host.ns}` });
  return pid!;
}

/** Run one fault to its end; returns a line saying what happened. */
export async function injectFault(f: PlannedFault, t: FaultTargets): Promise<string> {
  const d = t.docker[f.host];
  const t0 = Date.now();
  const took = () => `${Date.now() - t0} ms`;
  switch (f.kind) {
    case 'plugin-kill': {
      const pid = await onePlugin(d);
      process.kill(pid, 'SIGKILL');
      try {
        await waitFor(async () => {
          const p = await L.pluginPids(d.host);
          return p.length === 1 && p[0] !== pid;
        }, { timeoutMs: 30_000, intervalMs: 100, what: 'Docker restarting the plugin' });
        return `plugin ${pid} on ${d.host.ns} SIGKILLed; Docker restarted it (${took()})`;
      } catch {
        await d.docker(['plugin', 'disable', '-f', 'overlay-flannel'], { timeoutMs: 60_000 });
        await d.dockerOk(['plugin', 'enable', 'overlay-flannel'], { timeoutMs: 60_000 });
        return `plugin ${pid} on ${d.host.ns} SIGKILLed; not restarted by Docker within 30 s, re-enabled (${took()})`;
      }
    }
    case 'plugin-cycle':
      await d.dockerOk(['plugin', 'disable', '-f', 'overlay-flannel'], { timeoutMs: 60_000 });
      await d.dockerOk(['plugin', 'enable', 'overlay-flannel'], { timeoutMs: 60_000 });
      await onePlugin(d);
      return `plugin on ${d.host.ns} disabled and enabled (${took()})`;
    case 'plugin-upgrade': {
      if (!t.releases) throw new Error('plugin-upgrade needs two releases in the registry (startFaultLab({ nextRelease: true }))');
      const from = (await d.dockerOk(['plugin', 'inspect', '-f', '{{.PluginReference}}', 'overlay-flannel'])).stdout.trim();
      const to = from === t.releases[1] ? t.releases[0] : t.releases[1];
      const leaseOf = async () => (await L.vxlanLeases(t.etcd, t.prefix)).find((l) => l.publicIP === d.host.ip);
      const before = await leaseOf();
      if (!before) throw new Error(`no vxlan lease of ${d.host.ip} under ${t.prefix} before the upgrade`);
      await d.dockerOk(['plugin', 'disable', '-f', 'overlay-flannel'], { timeoutMs: 60_000 });
      await d.dockerOk(['plugin', 'upgrade', '--grant-all-permissions', '--skip-remote-check', 'overlay-flannel', to], { timeoutMs: 180_000 });
      await d.dockerOk(['plugin', 'enable', 'overlay-flannel'], { timeoutMs: 60_000 });
      await onePlugin(d);
      const now = (await d.dockerOk(['plugin', 'inspect', '-f', '{{.PluginReference}}', 'overlay-flannel'])).stdout.trim();
      if (now !== to) throw new Error(`plugin on ${d.host.ns} is ${now} after upgrading to ${to}`);
      // The upgraded plugin must keep this host's subnet and VtepMAC (peers need no change).
      const after = await waitFor(async () => {
        const l = await leaseOf();
        return l && l.subnet === before.subnet && l.vtepMac === before.vtepMac && l;
      }, { timeoutMs: 30_000, intervalMs: 250, what: `${d.host.ns}'s lease ${before.subnet} ${before.vtepMac} kept after the upgrade` });
      return `plugin on ${d.host.ns} upgraded ${from} → ${to}, lease ${after.subnet} and VtepMAC ${after.vtepMac} kept (${took()})`;
    }
    case 'etcd-restart':
      await t.etcd.kill();
      await sleep(5_000); // the outage itself
      await t.etcd.start();
      return `etcd killed, restarted after 5 s (${took()})`;
    case 'dockerd-live': {
      const h1 = t.docker[0];
      await h1.restart();
      await onePlugin(h1);
      return `dockerd on ${h1.host.ns} restarted with live-restore (${took()})`;
    }
    case 'dockerd-cold': {
      const h2 = t.docker[1];
      await h2.restart();
      await onePlugin(h2);
      return `dockerd on ${h2.host.ns} restarted without live-restore (${took()})`;
    }
    case 'link-cut': {
      const h2 = t.docker[1].host;
      const ms = (t.nameTtlSec + 5) * 1000;
      await run('ip', ['-n', t.lanNs, 'link', 'set', 'p2', 'down']);
      try {
        await sleep(ms); // the cut itself: longer than NAME_TTL, far shorter than the subnet lease
      } finally {
        await run('ip', ['-n', t.lanNs, 'link', 'set', 'p2', 'up']);
      }
      return `${h2.ns} cut from the LAN for ${ms} ms (${took()})`;
    }
  }
}
