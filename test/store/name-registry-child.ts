/**
 * name-registry-child.ts — a separate "host" for name-records.test.ts: registers COUNT name
 * records of HOST on a lease of TTL seconds, prints one JSON line { lease }, then keeps the lease
 * alive until a signal:
 * - SIGKILL (a dead host): nothing is revoked, the names expire with the lease;
 * - SIGTERM (a clean stop): the registry is stopped, which revokes the lease, and the process
 *   exits 0 (or 1 when the stop fails), so the names go at once.
 * Env: ETCD_ENDPOINT, PREFIX, HOST, TTL, COUNT (default 3), NETWORK (default net1).
 */
import { openStore } from '../../src/store';
import { testLogger } from '../helpers/store-fixtures';

async function main(): Promise<void> {
  const store = openStore({ etcdEndpoints: [process.env.ETCD_ENDPOINT!], etcdPrefix: process.env.PREFIX! }, testLogger());
  const host = process.env.HOST!;
  const networkId = process.env.NETWORK ?? 'net1';
  const reg = store.overlay().nameRegistry({ host, ttlSec: Number(process.env.TTL) });
  const count = Number(process.env.COUNT ?? '3');
  const tag = host.split('.').pop();
  await reg.replaceAll(
    Array.from({ length: count }, (_, i) => ({
      networkId,
      networkName: 'appnet',
      containerName: `c${tag}-${i}`,
      endpointId: `h${tag}e${i}`,
      aliases: [],
      ipv4: [`10.1.77.${i + 2}`],
      ipv6: [],
      host,
      updatedAt: new Date().toISOString(),
    })),
  );
  const alive = setInterval(() => undefined, 60_000); // alive until a signal
  process.once('SIGTERM', () => {
    clearInterval(alive);
    reg
      .stop()
      .then(() => store.close())
      .then(
        () => process.exit(0),
        () => process.exit(1),
      );
  });
  process.stdout.write(`${JSON.stringify({ lease: reg.lease.id })}\n`);
}

main().catch((e) => {
  process.stdout.write(`${JSON.stringify({ error: String(e) })}\n`);
  process.exit(1);
});
