/**
 * names-heap.ts — where the names' memory goes: the daemon's own names code (store NameWatcher
 * feeding a domain NameTable, wired as daemon/names-part.ts wires them) alone in a process that
 * can force a garbage collection, so the LIVE heap of N records can be told apart from the RSS a
 * daemon keeps after taking them in (V8 keeps heap it grew). Run in the lab's LAN namespace:
 *
 *   nsenter --net=/var/run/netns/<lan> node --expose-gc --import tsx bench/names-heap.ts <etcd endpoint> <prefix> <count>
 *
 * Prints one JSON line per phase — ready (watch listed), loaded (the table holds `count` more
 * records, 2 s later), removed (back to where it was) — each with heapUsed/rss after two forced
 * GCs and the rss before them (what /proc shows a daemon without forced GCs). Bounded: 150 s (× count / 10,000 above 10,000).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { NameTable } from '../src/domain/name-table';
import { openStore } from '../src/store';

const [endpoint, prefix, countText] = process.argv.slice(2);
if (!endpoint || !prefix) throw new Error('usage: names-heap.ts <etcd endpoint> <prefix> <count>');
const COUNT = Number(countText ?? 10_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
setTimeout(() => {
  console.error('names-heap: budget exceeded');
  process.exit(2);
}, 150_000 * Math.max(1, COUNT / 10_000)).unref();

function measure(phase: string, records: number): void {
  const rawRss = process.memoryUsage().rss;
  gc!();
  gc!();
  const m = process.memoryUsage();
  console.log(JSON.stringify({ phase, records, heapUsed: m.heapUsed, heapTotal: m.heapTotal, rss: m.rss, rssBeforeGc: rawRss, external: m.external }));
}

async function main(): Promise<void> {
  const store = openStore({ etcdEndpoints: [endpoint!], etcdPrefix: prefix! } as Parameters<typeof openStore>[0], pino({ level: 'warn' }));
  const table = new NameTable('192.0.2.99');
  const watcher = store.overlay().nameWatcher();
  watcher.on('upsert', (r) => table.upsert(r)).on('remove', (r) => table.remove(r.endpointId));
  await watcher.start();
  await sleep(1000);
  const base = table.size;
  measure('ready', base);
  const until = async (ok: () => boolean) => {
    while (!ok()) await sleep(100);
  };
  await until(() => table.size >= base + COUNT);
  await sleep(2000);
  measure('loaded', table.size);
  await until(() => table.size <= base);
  await sleep(2000);
  measure('removed', table.size);
  await watcher.stop();
  await store.close();
  process.exit(0);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exit(1);
});
