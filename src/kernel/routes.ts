/**
 * IPv4 routes in the main table (254) only.
 *
 * - The route dump ignores request filters and includes the local table (255): filter here.
 * - Writes use CREATE|REPLACE (upsert keyed by dst/tos/metric/table), protocol boot as `ip route`.
 * - onlink is RTNH_F_ONLINK (4) in rtm_flags, which the package's RouteFlags has no name for:
 *   `{ __unknown: 4 }` out, a bit test on `__unknown` back (it may carry LINKDOWN/DEAD too).
 * - Deletes send scope NOWHERE (255), the kernel's "any scope" wildcard; with scope 0 the kernel
 *   matches only universe-scope routes and a link-scope route (no gateway) would never match.
 */
import { FlagsNew, rt } from 'netlink';
import { invalid } from '../errors';
import { bufToIp4, ip4ToBuf, parseNetworkCidr } from './codec';
import { isErrno } from './errno';
import { getLinkByIndex, publicLink } from './links';
import type { NlSocket } from './netlink-socket';
import type { LinkInfo, RouteEntry } from './types';

const AF_INET = 2;
const MAIN_TABLE = 254;
const RTNH_F_ONLINK = 4;
const CR = FlagsNew.CREATE | FlagsNew.REPLACE;

interface RawRoute extends RouteEntry {
  priority: number;
}

async function dumpMainRoutes(ns: NlSocket): Promise<RawRoute[]> {
  const msgs = await ns.dump('list routes', rt.MessageType.GETROUTE, rt.formatRoute({ family: AF_INET }));
  const out: RawRoute[] = [];
  for (const m of msgs) {
    if (m.kind !== 'route' || m.data.family !== AF_INET) continue;
    if ((m.attrs.table ?? m.data.table) !== MAIN_TABLE) continue;
    if (m.data.type !== 'UNICAST' && m.data.type !== rt.RouteType.UNICAST) continue; // skip blackhole etc.
    const dstLen = m.data.dstLen ?? 0;
    const r: RawRoute = {
      dst: `${bufToIp4(m.attrs.dst) || '0.0.0.0'}/${dstLen}`,
      oif: m.attrs.oif ?? 0,
      onlink: ((m.data.flags?.__unknown ?? 0) & RTNH_F_ONLINK) !== 0,
      priority: m.attrs.priority ?? 0,
    };
    const gw = bufToIp4(m.attrs.gateway);
    if (gw) r.gateway = gw;
    out.push(r);
  }
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
  const data: rt.Route = {
    family: AF_INET,
    dstLen: dst.len,
    table: MAIN_TABLE,
    protocol: 'BOOT',
    scope: r.gateway ? 'UNIVERSE' : 'LINK',
    type: 'UNICAST',
    flags: r.onlink ? { __unknown: RTNH_F_ONLINK } : {},
  };
  const attrs: rt.RouteAttrs = {};
  if (dst.len > 0) attrs.dst = ip4ToBuf(dst.ip);
  if (r.gateway) attrs.gateway = ip4ToBuf(r.gateway, 'gateway');
  if (r.oif) attrs.oif = r.oif;
  await ns.call(`replace ${describeRoute(r)}`, (s, timeout) => s.newRoute(data, attrs, { flags: CR, timeout }));
}

/** Delete the main-table route to `dst` (whatever its gateway/oif); absent is fine. */
export async function deleteRoute(ns: NlSocket, dstCidr: string): Promise<void> {
  const dst = parseNetworkCidr(dstCidr);
  const attrs: rt.RouteAttrs = dst.len > 0 ? { dst: ip4ToBuf(dst.ip) } : {};
  try {
    await ns.call(`delete route ${dstCidr}`, (s, timeout) =>
      s.delRoute({ family: AF_INET, dstLen: dst.len, table: MAIN_TABLE, scope: 'NOWHERE' }, attrs, { timeout }),
    );
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
