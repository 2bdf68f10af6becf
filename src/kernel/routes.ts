/**
 * IPv4 routes in the main table (254) only.
 *
 * - The route dump ignores request filters and includes the local table (255): filter here.
 * - Writes use CREATE|REPLACE (upsert keyed by dst/tos/metric/table), protocol boot as `ip route`.
 * - onlink is RTNH_F_ONLINK (4) in rtm_flags, which the package's RouteFlags has no name for:
 *   `{ __unknown: 4 }` out, a bit test on `__unknown` back (it may carry LINKDOWN/DEAD too).
 * - Deletes send scope NOWHERE (255), the kernel's "any scope" wildcard; with scope 0 the kernel
 *   matches only universe-scope routes and a link-scope route (no gateway) would never match.
 * - Writes and dump replies are encoded/decoded by hand (rtnl-messages.ts), writes batched
 *   (NlSocket.write): with a route per peer this table grows with the overlay.
 */
import { rt } from 'netlink';
import { invalid } from '../errors';
import { ip4ToInt, parseNetworkCidr } from './codec';
import { isErrno } from './errno';
import { getLinkByIndex, publicLink } from './links';
import type { NlSocket } from './netlink-socket';
import { decodeRoute, dumpRequest, NLM_F_CREATE, NLM_F_REPLACE, routeMessage, RTM_DELROUTE, RTM_GETROUTE, RTM_NEWROUTE } from './rtnl-messages';
import type { LinkInfo, RouteEntry } from './types';

const AF_INET = 2;
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

async function dumpMainRoutes(ns: NlSocket): Promise<RawRoute[]> {
  const req = dumpRequest(RTM_GETROUTE, rt.formatRoute({ family: AF_INET }));
  const out = await ns.dumpDecoded('list routes', req, (b, start, end, type): RawRoute | null => {
    const d = type === RTM_NEWROUTE ? decodeRoute(b, start, end) : null;
    if (!d || d.family !== AF_INET || d.table !== MAIN_TABLE) return null;
    if (d.type !== RTN_UNICAST) return null; // skip blackhole etc.
    const r: RawRoute = { dst: `${d.dst || '0.0.0.0'}/${d.dstLen}`, oif: d.oif, onlink: (d.flags & RTNH_F_ONLINK) !== 0, priority: d.priority };
    if (d.gateway) r.gateway = d.gateway;
    return r;
  });
  return out;
}

/** Main-table unicast routes, optionally only those leaving through `oif`. */
export async function listRoutes(ns: NlSocket, oif?: number): Promise<RouteEntry[]> {
  const all = await dumpMainRoutes(ns);
  return all
    .filter((r) => oif === undefined || r.oif === oif)
    .map(({ dst, gateway, oif: o, onlink }) => (gateway ? { dst, gateway, oif: o, onlink } : { dst, oif: o, onlink }));
}

export function describeRoute(r: RouteEntry): string {
  return `route ${r.dst}${r.gateway ? ` via ${r.gateway}` : ''}${r.oif ? ` dev #${r.oif}` : ''}${r.onlink ? ' onlink' : ''}`;
}

export async function replaceRoute(ns: NlSocket, r: RouteEntry): Promise<void> {
  const dst = parseNetworkCidr(r.dst);
  if (!Number.isInteger(r.oif) || r.oif < 0) throw invalid(`${describeRoute(r)}: bad oif ${r.oif}`);
  if (!r.gateway && !r.oif) throw invalid(`${describeRoute(r)}: needs a gateway or an oif`);
  if (r.onlink && (!r.gateway || !r.oif)) throw invalid(`${describeRoute(r)}: onlink needs both a gateway and an oif`);
  const msg = routeMessage(RTM_NEWROUTE, CR, {
    dstLen: dst.len,
    dst: dst.len > 0 ? dst.net : null,
    table: MAIN_TABLE,
    protocol: RTPROT_BOOT,
    scope: r.gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK,
    type: RTN_UNICAST,
    flags: r.onlink ? RTNH_F_ONLINK : 0,
    ...(r.gateway ? { gateway: ip4ToInt(r.gateway, 'gateway') } : {}),
    oif: r.oif,
  });
  await ns.write(`replace ${describeRoute(r)}`, msg);
}

/** Delete the main-table route to `dst` (whatever its gateway/oif); absent is fine. */
export async function deleteRoute(ns: NlSocket, dstCidr: string): Promise<void> {
  const dst = parseNetworkCidr(dstCidr);
  const msg = routeMessage(RTM_DELROUTE, 0, { dstLen: dst.len, dst: dst.len > 0 ? dst.net : null, table: MAIN_TABLE, protocol: 0, scope: RT_SCOPE_NOWHERE, type: 0, flags: 0 });
  try {
    await ns.write(`delete route ${dstCidr}`, msg);
  } catch (e) {
    if (isErrno(e, 'ESRCH')) return;
    throw e;
  }
}

/** The link of the main-table default route with the lowest metric, or null. */
export async function defaultRouteInterface(ns: NlSocket): Promise<LinkInfo | null> {
  const defaults = (await dumpMainRoutes(ns)).filter((r) => r.dst === '0.0.0.0/0' && r.oif > 0);
  defaults.sort((a, b) => a.priority - b.priority);
  const best = defaults[0];
  if (!best) return null;
  const link = await getLinkByIndex(ns, best.oif);
  return link ? publicLink(link) : null;
}
