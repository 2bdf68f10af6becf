/**
 * flanneld's subnet.env (`--subnet-file`, default /run/flannel/subnet.env), for tools built around
 * flannel: dockerd's `--bip=${FLANNEL_SUBNET} --mtu=${FLANNEL_MTU}`, mk-docker-opts.sh, systemd
 * EnvironmentFile=. Same lines, same order, same values as flanneld (pkg/subnet WriteSubnetFile):
 *
 *   FLANNEL_NETWORK=10.5.0.0/16      only with EnableIPv4 (an IPv6-only overlay has neither v4 line)
 *   FLANNEL_SUBNET=10.5.72.1/24      first host address of the lease, not .0
 *   FLANNEL_IPV6_NETWORK=fd00:10::/48     only with EnableIPv6
 *   FLANNEL_IPV6_SUBNET=fd00:10:0:5::1/64 first host address of the v6 lease
 *   FLANNEL_MTU=1450
 *   FLANNEL_IPMASQ=true
 *
 * Written for the default overlay whenever its lease is acquired or changes: to a temporary file
 * in the same directory, then renamed over the target, so readers never see half a file.
 * Directory created (0755) if missing, file 0644.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Cidr, formatCidr, formatIPv4 } from '../domain/ipv4';
import { Cidr6, formatCidr6, formatIPv6 } from '../domain/ipv6';

export const DEFAULT_SUBNET_FILE = '/run/flannel/subnet.env';

/** The file's text; `network` null for an IPv6-only overlay (flanneld's WriteSubnetFile writes the v4 lines only with EnableIPv4). */
export function subnetEnvContent(network: Cidr | null, subnet: Cidr, mtu: number, ipMasq: boolean, v6?: { network: Cidr6; subnet: Cidr6 }): string {
  const four = network ? `FLANNEL_NETWORK=${formatCidr(network)}\nFLANNEL_SUBNET=${formatIPv4((subnet.base + 1) >>> 0)}/${subnet.len}\n` : '';
  const six = v6 ? `FLANNEL_IPV6_NETWORK=${formatCidr6(v6.network)}\nFLANNEL_IPV6_SUBNET=${formatIPv6(v6.subnet.base + 1n)}/${v6.subnet.len}\n` : '';
  return `${four}${six}FLANNEL_MTU=${mtu}\nFLANNEL_IPMASQ=${ipMasq}\n`;
}

/** Write `content` to `path` atomically (temp file + rename). Throws on failure; callers warn. */
export async function writeSubnetFile(path: string, content: string): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
  try {
    await writeFile(tmp, content, { mode: 0o644 });
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw e;
  }
}
