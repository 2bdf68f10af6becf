/**
 * Published ports (`docker run -p`) as data: the DNAT rules src/kernel/nft-ports.ts writes to
 * nftables `ip nat` PREROUTING (traffic arriving for a local address of the host) and OUTPUT
 * (traffic from the host itself), one rule per chain and binding. Pure: no I/O.
 *
 * Each rule's comment is "overlay-flannel port <endpoint id, 12 chars> <proto> <host ip|*>:<host
 * port> > <container>:<port>": the prefix finds an endpoint's rules without any other state (a
 * plugin restart loses nothing), the whole comment identifies the rule (idempotent ensure).
 */
import { conflict, unsupported } from '../errors';
import { formatIPv4, parseIPv4 } from './ipv4';

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
  /** OUTPUT with any address: `! -d 127.0.0.0/8` (DNAT of loopback traffic needs route_localnet). */
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
 * The rules for endpoint `endpointId` with container address `address` (plain IP or CIDR) and
 * Docker's port map. IPv6 bindings (hostIP "::…") are skipped (returned in `skipped`); a host port
 * range (hostPort < hostPortEnd, "-p 8000-8010:80": Docker means "any one of them") uses its first
 * port. Throws UNSUPPORTED for ephemeral host ports (hostPort 0, `-P`) and protocols other than
 * tcp/udp.
 */
export function portRules(endpointId: string, address: string, portMap: PortBinding[]): { rules: PortRule[]; skipped: PortBinding[] } {
  const to = formatIPv4(parseIPv4(address.split('/')[0] ?? '', 'endpoint address'));
  const rules: PortRule[] = [];
  const skipped: PortBinding[] = [];
  const seen = new Set<string>();
  for (const b of portMap) {
    if (b.hostIP.includes(':')) {
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
    const hostIP = b.hostIP === '' || b.hostIP === '0.0.0.0' ? null : formatIPv4(parseIPv4(b.hostIP, 'published host IP'));
    const proto = b.proto;
    const comment = `${portCommentPrefix(endpointId)} ${PROTO_NAMES[proto]} ${hostIP ?? '*'}:${b.hostPort} > ${to}:${b.port}`;
    if (seen.has(comment)) continue;
    seen.add(comment);
    for (const chain of ['PREROUTING', 'OUTPUT'] as const) {
      rules.push({ chain, proto, hostIP, hostPort: b.hostPort, notLoopback: chain === 'OUTPUT' && hostIP === null, toAddress: to, toPort: b.port, comment });
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
  const parse = (c: string) => {
    const m = /^overlay-flannel port (\S+) (\S+) (\S+):(\d+) > /.exec(c);
    return m ? { ep: m[1]!, proto: m[2]!, ip: m[3]!, port: Number(m[4]) } : null;
  };
  const own = endpointId.slice(0, 12);
  for (const c of comments) {
    const o = c ? parse(c) : null;
    if (!o || o.ep === own) continue;
    for (const w of wanted) {
      const x = parse(w.comment)!;
      if (x.proto === o.proto && x.port === o.port && (x.ip === o.ip || x.ip === '*' || o.ip === '*')) return `${o.ep} ${o.proto} ${o.ip}:${o.port}`;
    }
  }
  return null;
}

export const portInUse = (endpointId: string, clash: string) =>
  conflict(`endpoint ${endpointId.slice(0, 12)}: the host port is already published by endpoint ${clash.replace(' ', ' (')}): stop that container or choose another host port`);

/** A rule as `iptables -t nat -S` would print it (for logs and tests). */
export function portRuleText(r: PortRule): string {
  const p = PROTO_NAMES[r.proto];
  const dst = r.hostIP ? `-d ${r.hostIP}/32` : `${r.notLoopback ? '! -d 127.0.0.0/8 ' : ''}-m addrtype --dst-type LOCAL`;
  return `-A ${r.chain} ${dst} -p ${p} -m ${p} --dport ${r.hostPort} -m comment --comment "${r.comment}" -j DNAT --to-destination ${r.toAddress}:${r.toPort}`;
}
