/**
 * acquire-child.ts — a separate process acquiring leases, for the cross-process race test in
 * lease-keeper.test.ts. Env: ETCD_ENDPOINT, PREFIX, IPS (comma-separated PublicIPs), CONFIG (JSON).
 * Prints one JSON line: [{ publicIP, subnet }] or { error }. Never deletes what it acquired.
 */
import { parseNetworkConfig } from '../../src/domain/network-config';
import { formatCidr } from '../../src/domain/ipv4';
import { openStore } from '../../src/store';
import { testLogger, vxlanAttrsFor } from '../helpers/store-fixtures';

async function main(): Promise<void> {
  const store = openStore({ etcdEndpoints: [process.env.ETCD_ENDPOINT!], etcdPrefix: process.env.PREFIX! }, testLogger());
  const ov = store.overlay();
  const config = parseNetworkConfig(process.env.CONFIG!);
  const ips = process.env.IPS!.split(',');
  try {
    const leases = await Promise.all(
      ips.map((ip) =>
        ov.keeper({ publicIP: ip, attrsFor: vxlanAttrsFor(ip), ttlSec: 60, renewMarginSec: 20 }).acquire(config, AbortSignal.timeout(20_000)),
      ),
    );
    process.stdout.write(`${JSON.stringify(leases.map((l) => ({ publicIP: l.attrs.publicIP, subnet: formatCidr(l.subnet) })))}\n`);
  } catch (e) {
    process.stdout.write(`${JSON.stringify({ error: String(e) })}\n`);
    process.exitCode = 1;
  } finally {
    await store.close();
  }
}

void main();
