/**
 * The one etcd3 client of the process. Its errors become OverlayErrors in etcd-errors.ts; every
 * error a call throws is tagged here with the endpoints and files used, so messages can name them.
 *
 * Design note (docs/library-traps.md §2 has the trap behind each choice; test/store/config-store.test.ts
 * and outage.test.ts check them):
 * - etcd3's `dialTimeout` is ignored, so a hung server would stall a call forever. Every unary call
 *   gets a gRPC deadline instead (`defaultCallOptions`); streams (watch) never get one.
 * - etcd3's default fault handling puts a circuit breaker on each host that, after one failed call,
 *   fails every call for 5 s with cockatiel's BrokenCircuitError, even once etcd is back. We replace
 *   it: no breaker per host, and a global retry that only moves a call that failed fast
 *   (UNAVAILABLE, i.e. refused or dropped) on to the next endpoint, a bounded number of times.
 *   Our own loops (keeper, watchers) add the slow, capped backoff on top.
 * - Retried writes are safe for us: every create is a compare-and-create transaction whose
 *   callers recognise their own value when a retry finds the key already written.
 * - Credentials: files are read once, here, and an unreadable one is an INVALID error naming the
 *   setting and the path. The password never appears in a message (see etcd-errors.ts).
 */
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { ConstantBackoff, ExponentialBackoff, handleWhen, IBackoff, IPolicy, noop, retry } from 'cockatiel';
import { Etcd3, GRPCDeadlineExceededError, GRPCUnavailableError, IOptions } from 'etcd3';
import type { Settings } from '../config/settings';
import { OverlayError } from '../errors';
import { EtcdTarget, registerTarget, tagError } from './etcd-errors';

export { isUnavailable, rawEtcdText, tagWithTarget, tlsProblem, toStoreError, type EtcdTarget } from './etcd-errors';

/** The settings the client needs (a subset of {@link Settings}). */
export type EtcdClientSettings = Pick<
  Settings,
  'etcdEndpoints' | 'etcdCaFile' | 'etcdCertFile' | 'etcdKeyFile' | 'etcdUsername' | 'etcdPassword'
>;

export interface EtcdClientOptions {
  /** gRPC deadline of each unary call attempt, in ms. Default 3000. */
  callDeadlineMs?: number;
}

export const DEFAULT_CALL_DEADLINE_MS = 3000;

/**
 * Build the process's etcd client. Throws INVALID when a TLS file cannot be read or the endpoint
 * list mixes http:// and https://.
 *
 * @example
 *   const client = createEtcdClient(settings);
 *   const r = await client.get('/coreos.com/network/config').string();
 */
export function createEtcdClient(settings: EtcdClientSettings, opts: EtcdClientOptions = {}): Etcd3 {
  const deadlineMs = opts.callDeadlineMs ?? DEFAULT_CALL_DEADLINE_MS;
  const hosts = [...settings.etcdEndpoints];
  const target: EtcdTarget = {
    endpoints: hosts,
    deadlineMs,
    ...(settings.etcdCaFile ? { caFile: settings.etcdCaFile } : {}),
    ...(settings.etcdCertFile ? { certFile: settings.etcdCertFile } : {}),
    ...(settings.etcdKeyFile ? { keyFile: settings.etcdKeyFile } : {}),
    ...(settings.etcdUsername !== undefined ? { username: settings.etcdUsername } : {}),
  };
  const options: IOptions = {
    hosts,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + deadlineMs }),
    faultHandling: {
      host: () => noop,
      // One extra attempt per endpoint, only for fast failures; a deadline is not retried on a
      // single endpoint (it would just double the wait).
      global: tagging(
        retry(
          handleWhen((e) => e instanceof GRPCUnavailableError || (hosts.length > 1 && e instanceof GRPCDeadlineExceededError)),
          { maxAttempts: Math.max(1, hosts.length), backoff: new ConstantBackoff(50) },
        ),
        target,
      ),
      // etcd3 types this as IBackoff but calls .next() on it: it wants the factory (as its default).
      // Our ListWatch re-creates watchers itself; this only paces etcd3's own stream reconnects.
      watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 5000 }) as unknown as IBackoff<unknown>,
    },
  };

  const tls = readTlsFiles(settings);
  if (tls) options.credentials = tls;
  if (settings.etcdUsername !== undefined) {
    const password = settings.etcdPassword ?? '';
    options.auth = {
      username: settings.etcdUsername,
      password,
      callOptions: () => ({ deadline: Date.now() + deadlineMs }),
    };
  }
  try {
    const client = new Etcd3(options);
    registerTarget(client, target, settings.etcdPassword);
    return client;
  } catch (e) {
    throw new OverlayError('INVALID', `configure etcd client: ${(e as Error).message} (ETCD_ENDPOINTS)`, { cause: e });
  }
}

function readTlsFiles(s: EtcdClientSettings): IOptions['credentials'] | undefined {
  if (!s.etcdCaFile && !s.etcdCertFile && !s.etcdKeyFile) return undefined;
  const read = (setting: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      throw new OverlayError('INVALID', `read ${setting} "${path}": ${why}; check that the file exists and is readable`, { cause: e });
    }
  };
  return {
    // Without a CA file, trust the system CAs (what https:// alone would do).
    rootCertificate: s.etcdCaFile ? read('ETCD_CAFILE', s.etcdCaFile) : Buffer.from(rootCertificates.join('\n')),
    ...(s.etcdKeyFile ? { privateKey: read('ETCD_KEYFILE', s.etcdKeyFile) } : {}),
    ...(s.etcdCertFile ? { certChain: read('ETCD_CERTFILE', s.etcdCertFile) } : {}),
  };
}

/**
 * `policy`, whose failures carry `target` (etcd3 runs every unary call, and the authentication
 * before it, through the global policy, and only calls its execute()).
 */
function tagging(policy: IPolicy, target: EtcdTarget): IPolicy {
  return new Proxy(policy, {
    get(p, key, receiver) {
      if (key !== 'execute') return Reflect.get(p, key, receiver);
      return (fn: Parameters<IPolicy['execute']>[0], signal?: AbortSignal) =>
        p.execute(fn, signal).catch((e: unknown) => {
          throw tagError(e, target);
        });
    },
  });
}
