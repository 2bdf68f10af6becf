/**
 * Published ports (`docker run -p`) as data: the DNAT rules src/kernel/nft-ports.ts writes to
 * nftables `ip nat` PREROUTING (traffic arriving for a local address of the host) and OUTPUT
 * (traffic from the host itself), one rule per chain and binding. Pure: no I/O.
 *
 * Each rule's comment is "overlay-flannel port <endpoint id, 12 chars> <proto> <host ip|*>:<host
 * port> > <container>:<port>": the prefix finds an endpoint's rules without any other state (a
 * plugin restart loses nothing), the whole comment identifies the rule (idempotent ensure).
 * IPv6 (issue 21): an endpoint with a v6 address also gets v6 rules (in `ip6 nat`, the kernel
 * telling the family from `toAddress`) for bindings on any address (HostIP '', as Docker's bridge
 * driver binds both families then) and on an IPv6 HostIP ('::' = any v6); '0.0.0.0' stays v4
 * only. Their comments end "> [<v6>]:<port>".
 */
import { conflict, unsupported } from '../errors';
import { formatIPv4, parseIPv4 } from './ipv4';
import { formatIPv6, parseIPv6 } from './ipv6';

/** A published port as Docker asks for it (`-p [hostIP:]hostPort[-hostPortEnd]:port/proto`). */
export interface PortBinding {
  proto: number; // 6 tcp, 17 udp, 132 sctp
  ip: string; // the container's address Docker knows ('' when not yet known)
  port: number; // in the container
  hostIP: string; // '' or 0.0.0.0 = any local address
  hostPort: number; // 0 = ephemeral (-P)
  hostPortEnd: number; // = hostPort unless a range was given
}

/** An exposed port (`EXPOSE 80/tcp`). */
export interface TransportPort {
  proto: number;
  port: number;
}

export type PortChain = 'PREROUTING' | 'OUTPUT';
export interface PortRule {
  chain: PortChain;
  proto: 6 | 17;
  /** Destination address to match, or null = any local address of the host (`-m addrtype --dst-type LOCAL`). */
  hostIP: string | null;
  hostPort: number;
  /** OUTPUT with any address: `! -d 127.0.0.0/8` (`! -d ::1/128` in v6; DNAT of loopback traffic needs route_localnet). */
  notLoopback: boolean;
  toAddress: string;
  toPort: number;
  comment: string;
}

export function portCommentPrefix(endpointId: string): string {
  return `overlay-flannel port ${endpointId.slice(0, 12)}`;
}
export function isPortCommentOf(comment: string | undefined, endpointId: string): boolean {
  const p = portCommentPrefix(endpointId);
  return comment !== undefined && (comment === p || comment.startsWith(`${p} `));
}

const PROTO_NAMES: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 132: 'sctp' };

/**
 * The rules for endpoint `endpointId` with container address `address` (plain IP or CIDR), its v6
 * address `address6` if it has one, and Docker's port map. IPv6 bindings (hostIP "::…") of an
 * endpoint without a v6 address are skipped (returned in `skipped`); a host port range (hostPort <
 * hostPortEnd, "-p 8000-8010:80": Docker means "any one of them") uses its first port. Throws
 * UNSUPPORTED for ephemeral host ports (hostPort 0, `-P`) and protocols other than tcp/udp.
 */
export function portRules(endpointId: string, address: string, portMap: PortBinding[], address6?: string): { rules: PortRule[]; skipped: PortBinding[] } {
  const to4 = formatIPv4(parseIPv4(address.split('/')[0] ?? '', 'endpoint address'));
  const to6 = address6 ? formatIPv6(parseIPv6(address6.split('/')[0] ?? '', 'endpoint IPv6 address')) : null;
  const rules: PortRule[] = [];
  const skipped: PortBinding[] = [];
  const seen = new Set<string>();
  for (const b of portMap) {
    const v6 = b.hostIP.includes(':');
    if (v6 && !to6) {
      skipped.push(b);
      continue;
    }
    if (b.proto !== 6 && b.proto !== 17) {
      throw unsupported(`published ports over ${PROTO_NAMES[b.proto] ?? `protocol ${b.proto}`} are not supported by overlay-flannel: use tcp or udp`);
    }
    if (!Number.isInteger(b.hostPort) || b.hostPort === 0) {
      throw unsupported(`ephemeral host ports (-P, or -p ${b.port} without a host port) are not supported yet by overlay-flannel: give the host port, e.g. -p 8080:${b.port}`);
    }
    if (b.hostPort < 1 || b.hostPort > 65535 || b.port < 1 || b.port > 65535) throw unsupported(`port binding ${b.hostPort}:${b.port} is out of range`);
    const proto = b.proto;
    const add = (hostIP: string | null, to: string): void => {
      const host = hostIP?.includes(':') ? `[${hostIP}]` : hostIP;
      const target = to.includes(':') ? `[${to}]` : to;
      const comment = `${portCommentPrefix(endpointId)} ${PROTO_NAMES[proto]} ${host ?? '*'}:${b.hostPort} > ${target}:${b.port}`;
      if (seen.has(comment)) return;
      seen.add(comment);
      for (const chain of ['PREROUTING', 'OUTPUT'] as const) {
        rules.push({ chain, proto, hostIP, hostPort: b.hostPort, notLoopback: chain === 'OUTPUT' && hostIP === null, toAddress: to, toPort: b.port, comment });
      }
    };
    if (v6) add(b.hostIP === '::' ? null : formatIPv6(parseIPv6(b.hostIP, 'published host IP')), to6!);
    else {
      add(b.hostIP === '' || b.hostIP === '0.0.0.0' ? null : formatIPv4(parseIPv4(b.hostIP, 'published host IP')), to4);
      if (b.hostIP === '' && to6) add(null, to6);
    }
  }
  return { rules, skipped };
}

/**
 * The first wanted rule whose host port another endpoint already publishes (same protocol and
 * port, same host IP or either of them "any"), as "<other endpoint12> <its binding>", or null.
 * Docker allocates no host ports for a remote driver, so nobody else would notice: the newer
 * DNAT rule would silently shadow the older one. `comments` = the comments found in the chain.
 */
export function portConflict(endpointId: string, wanted: PortRule[], comments: (string | undefined)[]): string | null {
  // Families apart: a v4 and a v6 rule never shadow each other (separate tables).
  const parse = (c: string) => {
    const m = /^overlay-flannel port (\S+) (\S+) (\S+):(\d+) > (\[?)/.exec(c);
    return m ? { ep: m[1]!, proto: m[2]!, ip: m[3]!, port: Number(m[4]), v6: m[5] === '[' } : null;
  };
  const own = endpointId.slice(0, 12);
  for (const c of comments) {
    const o = c ? parse(c) : null;
    if (!o || o.ep === own) continue;
    for (const w of wanted) {
      const x = parse(w.comment)!;
      if (x.v6 === o.v6 && x.proto === o.proto && x.port === o.port && (x.ip === o.ip || x.ip === '*' || o.ip === '*')) return `${o.ep} ${o.proto} ${o.ip}:${o.port}`;
    }
  }
  return null;
}

export const portInUse = (endpointId: string, clash: string) =>
  conflict(`endpoint ${endpointId.slice(0, 12)}: the host port is already published by endpoint ${clash.replace(' ', ' (')}): stop that container or choose another host port`);

/** A rule as `iptables -t nat -S` would print it (for logs and tests). */
export function portRuleText(r: PortRule): string {
  const p = PROTO_NAMES[r.proto];
  const v6 = r.toAddress.includes(':');
  const dst = r.hostIP ? `-d ${r.hostIP}/${v6 ? 128 : 32}` : `${r.notLoopback ? `! -d ${v6 ? '::1/128' : '127.0.0.0/8'} ` : ''}-m addrtype --dst-type LOCAL`;
  return `-A ${r.chain} ${dst} -p ${p} -m ${p} --dport ${r.hostPort} -m comment --comment "${r.comment}" -j DNAT --to-destination ${v6 ? `[${r.toAddress}]` : r.toAddress}:${r.toPort}`;
}
