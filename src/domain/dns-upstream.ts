/**
 * Whether cross-host names can work with this host's Docker DNS configuration: Docker's embedded
 * resolver dials an upstream on the host's loopback (127.0.0.0/8, ::1) from the HOST's namespace,
 * so those queries never pass our container devices and overlay names of other hosts cannot be
 * answered (docs/names-design.md §2). The plugin reads what dockerd reads, through the host's root:
 *   - daemon.json's "dns" list, when set (dockerd's --dns flag would win; it is not visible here);
 *   - else resolv.conf's nameservers; when that is only systemd-resolved's stub (127.0.0.53),
 *     dockerd reads /run/systemd/resolve/resolv.conf instead, as it does.
 * No servers at all: Docker uses its public defaults, which pass through the overlay: fine.
 * A file that cannot be read or parsed is no verdict (null): we only warn about what we know.
 */
export interface DnsConfigFiles {
  daemonJson: string | null;
  resolvConf: string | null;
  systemdResolvConf: string | null;
}

const isLoopback = (ip: string): boolean => /^127\./.test(ip) || ip === '::1';

function nameservers(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m) out.push(m[1]!.replace(/%.*$/, ''));
  }
  return out;
}

/** The servers dockerd forwards to, as far as these files tell (null: cannot tell). */
export function dockerUpstreams(f: DnsConfigFiles): { servers: string[]; from: string } | null {
  if (f.daemonJson !== null) {
    let cfg: unknown;
    try {
      cfg = JSON.parse(f.daemonJson);
    } catch {
      return null;
    }
    const dns = (cfg as { dns?: unknown } | null)?.dns;
    if (Array.isArray(dns) && dns.length > 0) return { servers: dns.filter((x): x is string => typeof x === 'string'), from: '/etc/docker/daemon.json "dns"' };
  }
  if (f.resolvConf === null) return null;
  const servers = nameservers(f.resolvConf);
  if (servers.length > 0 && servers.every((s) => s === '127.0.0.53') && f.systemdResolvConf !== null) {
    return { servers: nameservers(f.systemdResolvConf), from: '/run/systemd/resolve/resolv.conf' };
  }
  return { servers, from: '/etc/resolv.conf' };
}

/** The problem, in the operator's words, or null when names can work (or we cannot tell). */
export function upstreamProblem(f: DnsConfigFiles): string | null {
  const up = dockerUpstreams(f);
  if (!up || up.servers.length === 0 || !up.servers.every(isLoopback)) return null;
  return (
    `Docker's upstream DNS (${up.servers.join(', ')}, from ${up.from}) is on the host's loopback: Docker asks it from the host's ` +
    'namespace, past the overlay, so containers cannot resolve the names of other hosts\' containers; set "dns": ["<a non-loopback ' +
    'server>"] in /etc/docker/daemon.json (or dockerd --dns) and restart dockerd'
  );
}
