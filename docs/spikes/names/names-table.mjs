// The lab's name records (what the etcd watch would hold): per Docker network, names/aliases ->
// IPv4 addresses, plus which sources belong to which network. Isolation = look names up ONLY in
// the network of the query's source address.
export const networks = [
  { id: 'net-a', name: 'appnet', cidrs: ['10.1.15.7/32', '10.1.16.0/24'],
    names: { c2: ['10.1.16.5'], web: ['10.1.16.5', '10.1.16.6', '10.1.16.7'] } },
  { id: 'net-b', name: 'othernet', cidrs: ['10.1.17.0/24'], names: { secret: ['10.1.17.5'] } },
];
const toInt = (s) => s.split('.').reduce((a, b) => ((a << 8) | Number(b)) >>> 0, 0);
const inCidr = (ip, c) => { const [b, l] = c.split('/'); const m = l === '0' ? 0 : (0xffffffff << (32 - Number(l))) >>> 0; return ((toInt(ip) & m) >>> 0) === ((toInt(b) & m) >>> 0); };
export function networkOf(srcIp) { return networks.find((n) => n.cidrs.some((c) => inCidr(srcIp, c))) ?? null; }
/** Docker's rule (sandbox.go ResolveName): "name" or "name.<network name>"; null = not ours. */
export function lookup(net, name) {
  if (!net) return null;
  if (Object.hasOwn(net.names, name)) return net.names[name];
  const suffix = `.${net.name}`;
  if (name.endsWith(suffix)) { const n = name.slice(0, -suffix.length); if (Object.hasOwn(net.names, n)) return net.names[n]; }
  return null;
}
