/**
 * net.ipv6.conf.all.forwarding of this process's network namespace. Unlike IPv4's per-device
 * forwarding (links.ts, over rtnetlink), IPv6 has no netlink door for it (the kernel's
 * inet6_set_link_af takes only the token and addr_gen_mode) and the forwarding decision reads the
 * `all` flag (ip6_forward), so a Docker --ipv6 network needs the host-wide switch, as Docker's own
 * bridge driver sets it. /proc/sys/net is per network namespace of the *writer*, so any procfs
 * mount works: a managed plugin, whose /proc/sys is read-only, tries the host's procfs under the
 * host-root mount next (its `ro` covers only the top mount, not the host's /proc mounted below).
 * Turning it on also makes the host ignore router advertisements where accept_ra=1 (docs/ipv6.md §5).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { unavailable } from '../errors';

const KEY = 'net/ipv6/conf/all/forwarding';

export interface Ipv6ForwardingResult {
  state: 'already' | 'set';
  /** The file that said so (or was written). */
  path: string;
}

/** 'already' when it was on, 'set' when we turned it on; UNAVAILABLE naming the sysctl when no root could. */
export async function ensureIpv6Forwarding(sysctlRoots: readonly string[]): Promise<Ipv6ForwardingResult> {
  const errors: string[] = [];
  for (const root of sysctlRoots) {
    const path = join(root, KEY);
    try {
      if ((await readFile(path, 'utf8')).trim() === '1') return { state: 'already', path };
      await writeFile(path, '1\n');
      if ((await readFile(path, 'utf8')).trim() === '1') return { state: 'set', path };
      errors.push(`${path}: still 0 after writing 1`);
    } catch (e) {
      errors.push(`${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  }
  throw unavailable(
    `IPv6 forwarding is off on this host and could not be turned on (${errors.join('; ')}): ` +
      'run sysctl -w net.ipv6.conf.all.forwarding=1 on the host (containers of --ipv6 networks need it to reach other hosts)',
  );
}
