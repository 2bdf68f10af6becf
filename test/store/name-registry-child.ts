/**
 * name-registry-child.ts — a separate "host" for name-records.test.ts: registers COUNT name
 * records of HOST on a lease of TTL seconds, prints one JSON line { lease } and then keeps the
 * lease alive until it is killed (the test SIGKILLs it: a dead host that never revokes).
 * Env: ETCD_ENDPOINT, PREFIX, HOST, TTL, COUNT.
 */
import { openStore } from '../../src/store';
import { testLogger } from '../helpers/store-fixtures';

async function main(): Promise<void> {
  const store = openStore({ etcdEndpoints: [process.env.ETCD_ENDPOINT!], etcdPrefix: process.env.PREFIX! }, testLogger());
  const host = process.env.HOST!;
  const reg = store.overlay().nameRegistry({ host, ttlSec: Number(process.env.TTL) });
  const count = Number(process.env.COUNT ?? '3');
  await reg.replaceAll(
    Array.from({ length: count }, (_, i) => ({
      networkId: 'net1',
      networkName: 'appnet',
      containerName: `dead-${i}`,
      endpointId: `dead${i}`,
      aliases: [],
      ipv4: [`10.1.77.${i + 2}`],
      ipv6: [],
      host,
      updatedAt: new Date().toISOString(),
    })),
  );
  process.stdout.write(`${JSON.stringify({ lease: reg.lease.id })}\n`);
  setInterval(() => undefined, 60_000); // alive until killed
}

main().catch((e) => {
  process.stdout.write(`${JSON.stringify({ error: String(e) })}\n`);
  process.exit(1);
});
