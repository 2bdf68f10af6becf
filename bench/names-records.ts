/**
 * names-records.ts — synthetic name records for the names benchmark's memory phase, written with
 * the product's own writer (store NameRegistry: the record encoding, keys and lease a real host
 * uses). Run in the lab's LAN namespace, where etcd listens:
 *
 *   nsenter --net=/var/run/netns/<lan> node --import tsx bench/names-records.ts \
 *       <etcd endpoint> <prefix> <docker network name> <count> <hosts>
 *
 * `count` records spread over `hosts` fake hosts (198.51.100.1…; none of them is a lab host, so no
 * real host's audit touches them), each fake host with its own registry and NAME_TTL lease, on the
 * network `<docker network name>` (the records key networks by name). Addresses in 10.255/16 (above 64,000 records on into 10.254/16).
 * Prints {"written":n,"ms":…,"retrying":k} once every registry's write returned (k of them
 * still retrying in the background); on a "stop" line on stdin revokes the leases
 * (the records go at once, as a host's clean stop does), prints {"stopped":true,"ms":…} and exits.
 * Bounded: gives up after 120 s (× count / 10,000 above 10,000); stdin closing stops as "stop" does.
 */
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import pino from 'pino';
import type { NameRecord } from '../src/domain/name-record';
import { openStore } from '../src/store';

const [endpoint, prefix, net, countText, hostsText] = process.argv.slice(2);
if (!endpoint || !prefix || !net) throw new Error('usage: names-records.ts <etcd endpoint> <prefix> <network> <count> <hosts>');
const COUNT = Number(countText ?? 10_000);
const HOSTS = Number(hostsText ?? 20);
setTimeout(() => {
  console.error('names-records: budget exceeded');
  process.exit(2);
}, 120_000 * Math.max(1, COUNT / 10_000)).unref();

async function main(): Promise<void> {
  const store = openStore({ etcdEndpoints: [endpoint!], etcdPrefix: prefix! } as Parameters<typeof openStore>[0], pino({ level: 'warn' }));
  const ov = store.overlay();
  const at = new Date().toISOString();
  const registries = Array.from({ length: HOSTS }, (_, h) => {
    const host = `198.51.100.${h + 1}`;
    const records: NameRecord[] = [];
    for (let i = h; i < COUNT; i += HOSTS) {
      records.push({
        networkId: net!,
        networkName: net!,
        containerName: `synth-${i}`,
        containerId: `c${i.toString(16).padStart(11, '0')}`,
        endpointId: `e${i.toString(16).padStart(63, '0')}`,
        aliases: [`synth-alias-${i}`],
        ipv4: [`10.${255 - Math.floor(i / 64_000)}.${Math.floor(i / 250) % 256}.${(i % 250) + 2}`],
        ipv6: [],
        host,
        updatedAt: at,
      });
    }
    return { reg: ov.nameRegistry({ host, ttlSec: 60 }), records };
  });
  // One fake host after the other (each registry puts 32 at a time), as hosts register. A flush
  // that etcd does not answer in time (a loaded machine) rejects UNAVAILABLE but stays held and
  // is retried by the registry: counted, and the bench waits for the daemons' tables instead.
  const t0 = performance.now();
  let retrying = 0;
  for (const r of registries) await r.reg.replaceAll(r.records, { scanStale: false }).catch(() => void retrying++);
  console.log(JSON.stringify({ written: registries.reduce((a, r) => a + r.records.length, 0), ms: Math.round(performance.now() - t0), retrying }));
  const stop = async () => {
    const t1 = performance.now();
    await Promise.all(registries.map((r) => r.reg.stop()));
    console.log(JSON.stringify({ stopped: true, ms: Math.round(performance.now() - t1) }));
    await store.close();
    process.exit(0);
  };
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (l) => void (l.trim() === 'stop' && stop()));
  rl.on('close', () => void stop());
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exit(1);
});
