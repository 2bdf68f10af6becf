/**
 * store-fixtures.ts — shared pieces of the store tests (test/store/*.test.ts) and the store bench:
 * a random flannel prefix per test, loggers (silent, or capturing lines to assert on warnings),
 * vxlan attributes for a PublicIP, and a wait for the next typed event of an emitter.
 * Set TEST_LOG=debug to see the store's logs on stderr.
 */
import { randomBytes } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import { after, before } from 'node:test';
import pino, { type Logger } from 'pino';
import { openStore, type Store } from '../../src/store';
import { startEtcd, type EtcdServer } from './etcd-server';
import type { LeaseAttrs } from '../../src/domain/lease';
import { vtepMacFor } from '../../src/domain/mac';
import type { NetworkConfig } from '../../src/domain/network-config';

/** A fresh flannel-like prefix, e.g. `/t-3f9a1c/coreos.com/network`. */
export function randomPrefix(tag = 't'): string {
  return `/${tag}-${randomBytes(4).toString('hex')}/coreos.com/network`;
}

/** A logger for tests: silent unless TEST_LOG is set. */
export function testLogger(): Logger {
  return pino({ level: process.env.TEST_LOG ?? 'silent' }, pino.destination(2));
}

/** A logger that keeps every line (JSON objects) in `lines`, for assertions on warnings. */
export function captureLogger(level = 'debug'): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const echo = process.env.TEST_LOG !== undefined;
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) {
        if (!l) continue;
        lines.push(JSON.parse(l) as Record<string, unknown>);
        if (echo) process.stderr.write(`${l}\n`);
      }
      cb();
    },
  });
  return { logger: pino({ level }, stream), lines };
}

/** attrsFor of a vxlan host with this PublicIP (VtepMAC derived as the daemon does). */
export function vxlanAttrsFor(publicIP: string): (cfg: NetworkConfig) => LeaseAttrs {
  return (cfg) => ({
    publicIP,
    backendType: 'vxlan',
    vxlan: { vni: cfg.backend.type === 'vxlan' ? cfg.backend.vni : 1, vtepMac: vtepMacFor(1, publicIP) },
  });
}

/** Resolve with the next `event` emitted for which `pred` holds; reject after `timeoutMs`. */
export function nextEvent<T>(emitter: EventEmitter, event: string, timeoutMs = 10_000, pred: (v: T) => boolean = () => true): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for '${event}'`));
    }, timeoutMs);
    const on = (v: T) => {
      if (!pred(v)) return;
      clearTimeout(t);
      emitter.off(event, on);
      resolve(v);
    };
    emitter.on(event, on);
  });
}

/** Collects every event of an emitter in order. */
export function record<T>(emitter: EventEmitter, event: string): T[] {
  const out: T[] = [];
  emitter.on(event, (v: T) => out.push(v));
  return out;
}

/** A TCP proxy in front of etcd, to cut or freeze a client's connections without touching etcd. */
export interface TcpProxy {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  /** Stop moving bytes on open connections (they stay open, as in a partition); new ones wait too. */
  freeze(): void;
  /** Destroy every open connection and move bytes again. */
  resetAndThaw(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const { createServer, connect } = await import('node:net');
  const pairs = new Set<[import('node:net').Socket, import('node:net').Socket]>();
  let frozen = false;
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    const pair: [typeof client, typeof upstream] = [client, upstream];
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
    if (frozen) {
      client.pause();
      upstream.pause();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as import('node:net').AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    freeze() {
      frozen = true;
      for (const [a, b] of pairs) {
        a.unpipe(b);
        b.unpipe(a);
        a.pause();
        b.pause();
      }
    },
    resetAndThaw() {
      frozen = false;
      for (const [a, b] of [...pairs]) {
        a.destroy();
        b.destroy();
      }
      pairs.clear();
    },
    async close() {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      await new Promise((r) => server.close(r));
    },
  };
}

/**
 * One etcd and one store for a whole test file (CI has 2 cores: never one etcd per test).
 * `onReady` receives them in before(); both are closed and removed in after().
 */
export function withEtcdStore(onReady: (etcd: EtcdServer, store: Store) => void): void {
  let etcd: EtcdServer | undefined;
  let store: Store | undefined;
  before(async () => {
    etcd = await startEtcd();
    store = openStore({ etcdEndpoints: [etcd.endpoint], etcdPrefix: '/unused' }, testLogger());
    onReady(etcd, store);
  });
  after(async () => {
    await store?.close();
    await etcd?.cleanup();
  });
}

/** As {@link withEtcdStore}, with two stores on the one etcd (two allocators, two hosts). */
export function withEtcdStores(onReady: (etcd: EtcdServer, a: Store, b: Store) => void): void {
  let etcd: EtcdServer | undefined;
  let stores: Store[] = [];
  before(async () => {
    etcd = await startEtcd();
    stores = [0, 1].map(() => openStore({ etcdEndpoints: [etcd!.endpoint], etcdPrefix: '/unused' }, testLogger()));
    onReady(etcd, stores[0]!, stores[1]!);
  });
  after(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await etcd?.cleanup();
  });
}

/** An assert.rejects matcher: an OverlayError of `code` whose message matches `re`. */
export const isOverlayError = (code: string, re: RegExp) => (e: unknown): boolean =>
  (e as { code?: string }).code === code && re.test((e as Error).message);
