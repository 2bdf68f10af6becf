/**
 * IPv4 and IPv6 routes in the main table (254) only.
 *
 * - The route dump ignores request filters and includes the local table (255): filter here.
 * - Writes use CREATE|REPLACE (upsert keyed by dst/tos/metric/table), protocol boot as `ip route`.
 * - onlink is RTNH_F_ONLINK (4) in rtm_flags, which the package's RouteFlags has no name for:
 *   `{ __unknown: 4 }` out, a bit test on `__unknown` back (it may carry LINKDOWN/DEAD too).
 * - Deletes send scope NOWHERE (255), the kernel's "any scope" wildcard; with scope 0 the kernel
 *   matches only universe-scope routes and a link-scope route (no gateway) would never match.
 * - Writes and dump replies are encoded/decoded by hand (rtnl-messages.ts), writes batched
 *   (NlSocket.write): with a route per peer this table grows with the overlay.
 * - IPv6 (issue 21): a route whose dst has a ':' is AF_INET6 (gateway too, 16 bytes); listRoutes
 *   takes the family (4 by default). The kernel's own v6 routes (the /128 of an address, fe80::/64
 *   on every device) are listed like any other: the reconciler keeps only those with a gateway.
 */
import { rt } from 'netlink';
import { invalid } from '../errors';
import { ip4ToInt, parseNetworkCidr } from './codec';
import { AF_INET, AF_INET6, canonicalIp6, familyOf, ip6ToBuf, parseNetworkCidr6 } from './codec6';
import { isErrno } from './errno';
import { getLinkByIndex, publicLink } from './links';
import type { NlSocket } from './netlink-socket';
import { decodeRoute, dumpRequest, type DumpedRoute, NLM_F_CREATE, NLM_F_REPLACE, routeMessage, RTM_DELROUTE, RTM_GETROUTE, RTM_NEWROUTE } from './rtnl-messages';
import type { LinkInfo, RouteEntry } from './types';

const MAIN_TABLE = 254;
const RTNH_F_ONLINK = 4;
const CR = NLM_F_CREATE | NLM_F_REPLACE;
const RTPROT_BOOT = 3;
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
const RT_SCOPE_NOWHERE = 255;
const RTN_UNICAST = 1;

interface RawRoute extends RouteEntry {
  priority: number;
}

/** Main-table unicast routes of `family`, each made by `make` from its decoded message (null: left out). */
async function dumpMainRoutes<T>(ns: NlSocket, family: 4 | 6, make: (d: DumpedRoute, dst: string) => T | null): Promise<T[]> {
  const af = family === 6 ? AF_INET6 : AF_INET;
  const req = dumpRequest(RTM_GETROUTE, rt.formatRoute({ family: af }));
  return ns.dumpDecoded(family === 6 ? 'list IPv6 routes' : 'list routes', req, (b, start, end, type): T | null => {
    const d = type === RTM_NEWROUTE ? decodeRoute(b, start, end) : null;
    if (!d || d.family !== af || d.table !== MAIN_TABLE) return null;
    if (d.type !== RTN_UNICAST) return null; // skip blackhole etc.
    return make(d, `${d.dst || (family === 6 ? '::' : '0.0.0.0')}/${d.dstLen}`);
  });
}

/** Main-table unicast routes of `family` (4 by default), optionally only those leaving through `oif`.
 *  Built once, in the dump's callback (a full sync at 10,000 peers lists 10,000 routes). */
export async function listRoutes(ns: NlSocket, oif?: number, family: 4 | 6 = 4): Promise<RouteEntry[]> {
  return dumpMainRoutes(ns, family, (d, dst): RouteEntry | null => {
    if (oif !== undefined && d.oif !== oif) return null;
    const onlink = (d.flags & RTNH_F_ONLINK) !== 0;
    return d.gateway ? { dst, gateway: d.gateway, oif: d.oif, onlink } : { dst, oif: d.oif, onlink };
  });
}

export function describeRoute(r: RouteEntry): string {
  return `route ${r.dst}${r.gateway ? ` via ${r.gateway}` : ''}${r.oif ? ` dev #${r.oif}` : ''}${r.onlink ? ' onlink' : ''}`;
}

/** dst (and gateway) as the message carries them, by the dst's family. */
function routeTarget(dstCidr: string, gateway?: string): { family: number; dstLen: number; dst: number | Buffer | null; gateway?: number | Buffer } {
  if (familyOf(dstCidr) === 6) {
    const d = parseNetworkCidr6(dstCidr);
    if (gateway !== undefined && familyOf(gateway) !== 6) throw invalid(`route ${dstCidr} via ${gateway}: an IPv6 route needs an IPv6 gateway`);
    return { family: AF_INET6, dstLen: d.len, dst: d.len > 0 ? d.bytes : null, ...(gateway ? { gateway: ip6ToBuf(canonicalIp6(gateway, 'gateway'), 'gateway') } : {}) };
  }
  const d = parseNetworkCidr(dstCidr);
  return { family: AF_INET, dstLen: d.len, dst: d.len > 0 ? d.net : null, ...(gateway ? { gateway: ip4ToInt(gateway, 'gateway') } : {}) };
}

const describeReplace = (r: RouteEntry): string => `replace ${describeRoute(r)}`;
const describeDelete = (dst: string): string => `delete route ${dst}`;

/** Not async: one promise per write, not two (a full program of 10,000 peers makes 10,000 of these). */
export function replaceRoute(ns: NlSocket, r: RouteEntry): Promise<void> {
  try {
    return ns.write(replaceRouteMessage(r), describeReplace, r);
  } catch (e) {
    return Promise.reject(e);
  }
}

function replaceRouteMessage(r: RouteEntry): Buffer {
  const t = routeTarget(r.dst, r.gateway || undefined);
  if (!Number.isInteger(r.oif) || r.oif < 0) throw invalid(`${describeRoute(r)}: bad oif ${r.oif}`);
  if (!r.gateway && !r.oif) throw invalid(`${describeRoute(r)}: needs a gateway or an oif`);
  if (r.onlink && (!r.gateway || !r.oif)) throw invalid(`${describeRoute(r)}: onlink needs both a gateway and an oif`);
  return routeMessage(RTM_NEWROUTE, CR, {
    family: t.family,
    dstLen: t.dstLen,
    dst: t.dst,
    table: MAIN_TABLE,
    protocol: RTPROT_BOOT,
    scope: r.gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK,
    type: RTN_UNICAST,
    flags: r.onlink ? RTNH_F_ONLINK : 0,
    ...(t.gateway !== undefined ? { gateway: t.gateway } : {}),
    oif: r.oif,
  });
}

/** Delete the main-table route to `dst` (whatever its gateway/oif); absent is fine. */
export async function deleteRoute(ns: NlSocket, dstCidr: string): Promise<void> {
  const t = routeTarget(dstCidr);
  const msg = routeMessage(RTM_DELROUTE, 0, { family: t.family, dstLen: t.dstLen, dst: t.dst, table: MAIN_TABLE, protocol: 0, scope: RT_SCOPE_NOWHERE, type: 0, flags: 0 });
  try {
    await ns.write(msg, describeDelete, dstCidr);
  } catch (e) {
    if (isErrno(e, 'ESRCH')) return;
    throw e;
  }
}

/** The link of the main-table default route with the lowest metric, or null. */
export async function defaultRouteInterface(ns: NlSocket): Promise<LinkInfo | null> {
  const defaults = (await dumpMainRoutes(ns, 4, (d, dst): RawRoute | null => (dst === '0.0.0.0/0' && d.oif > 0 ? { dst, oif: d.oif, onlink: (d.flags & RTNH_F_ONLINK) !== 0, priority: d.priority, ...(d.gateway ? { gateway: d.gateway } : {}) } : null)));
  defaults.sort((a, b) => a.priority - b.priority);
  const best = defaults[0];
  if (!best) return null;
  const link = await getLinkByIndex(ns, best.oif);
  return link ? publicLink(link) : null;
}
