/**
 * The one etcd3 client of the process, and the one place etcd3/gRPC errors become OverlayErrors.
 *
 * Design note (docs/library-traps.md §2 has the trap behind each choice):
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
 *   setting and the path. The password never appears in a message (see {@link toStoreError}).
 */
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { ConstantBackoff, ExponentialBackoff, handleWhen, IBackoff, isBrokenCircuitError, noop, retry } from 'cockatiel';
import {
  ClientClosedError,
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdLeaseInvalidError,
  EtcdPermissionDeniedError,
  EtcdWatchStreamEnded,
  GRPCDeadlineExceededError,
  GRPCInvalidArgumentError,
  GRPCOutOfRangeError,
  GRPCUnauthenticatedError,
  GRPCUnavailableError,
  IOptions,
} from 'etcd3';
import type { Settings } from '../config/settings';
import { OverlayError } from '../errors';

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

/** Secrets that must never show up in an error message, registered by createEtcdClient. */
const secrets = new Set<string>();

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
  const options: IOptions = {
    hosts,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + deadlineMs }),
    faultHandling: {
      host: () => noop,
      // One extra attempt per endpoint, only for fast failures; a deadline is not retried on a
      // single endpoint (it would just double the wait).
      global: retry(
        handleWhen((e) => e instanceof GRPCUnavailableError || (hosts.length > 1 && e instanceof GRPCDeadlineExceededError)),
        { maxAttempts: Math.max(1, hosts.length), backoff: new ConstantBackoff(50) },
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
    if (password.length >= 3) secrets.add(password);
    options.auth = {
      username: settings.etcdUsername,
      password,
      callOptions: () => ({ deadline: Date.now() + deadlineMs }),
    };
  }
  try {
    return new Etcd3(options);
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

function redact(text: string): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join('<redacted>');
  return out;
}

/**
 * A TLS failure in an etcd error, said so an operator knows which file to fix; null when the
 * message is not about TLS. gRPC wraps OpenSSL's text ("…:SSL routines:ssl3_read_bytes:sslv3
 * alert bad certificate:…"): only the alert or reason is quoted, never the rest.
 */
export function tlsProblem(msg: string): string | null {
  const alert = /alert ([a-z ]+?)(?::|$|\n)/i.exec(msg)?.[1]?.trim();
  if (alert && /certificate|unknown ca|handshake failure|access denied/i.test(alert)) {
    return (
      `etcd refused this client's certificate (ETCD_CERTFILE, ETCD_KEYFILE): it must be signed by a CA etcd trusts ` +
      `(etcd's --trusted-ca-file), be valid now and allow client authentication [TLS alert: ${alert}]`
    );
  }
  const verify = /(certificate verify failed|unable to verify[^:\n]*|self[- ]signed certificate[^:\n]*|unable to get local issuer certificate|certificate has expired|Hostname\/IP does not match[^:\n]*|ERR_TLS_CERT[A-Z_]*)/i.exec(msg)?.[1];
  if (verify) {
    return `etcd's server certificate is not trusted: ETCD_CAFILE must hold the CA that signed it, and it must name the host of ETCD_ENDPOINTS [${verify.trim()}]`;
  }
  if (/certificate|SSL|TLS|handshake|wrong version number/i.test(msg)) {
    const first = msg.split('\n')[0]!.slice(0, 200);
    return `check ETCD_CAFILE, ETCD_CERTFILE, ETCD_KEYFILE and that ETCD_ENDPOINTS use https:// [${first}]`;
  }
  return null;
}

function grpcCode(e: unknown): number | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** True for failures that mean "etcd cannot be reached right now": retry later. */
export function isUnavailable(e: unknown): boolean {
  return (
    e instanceof GRPCUnavailableError ||
    e instanceof GRPCDeadlineExceededError ||
    e instanceof EtcdWatchStreamEnded ||
    e instanceof ClientClosedError ||
    isBrokenCircuitError(e) ||
    grpcCode(e) === 14 ||
    grpcCode(e) === 4
  );
}

/**
 * Translate anything an etcd call threw into an OverlayError: "<what>: <cause>".
 * - UNAVAILABLE: refused/dropped connections, deadlines, broken circuits, raw gRPC code 14;
 * - INVALID: authentication and permission problems, with the setting to fix;
 * - CONFLICT: the etcd lease is gone (expired or revoked);
 * - INTERNAL: anything else (including reads of compacted history).
 * OverlayErrors pass through unchanged. The password never appears in the message.
 *
 * @example
 *   try { await client.put(k).value(v) } catch (e) { throw toStoreError(e, `write ${k}`) }
 */
export function toStoreError(e: unknown, what: string): OverlayError {
  if (e instanceof OverlayError) return e;
  const msg = redact(e instanceof Error ? e.message : String(e));
  const make = (code: OverlayError['code'], text: string) => new OverlayError(code, `${what}: ${text}`, { cause: e });
  if (isUnavailable(e)) {
    const tls = tlsProblem(msg);
    return make('UNAVAILABLE', tls ? `etcd unavailable: TLS problem: ${tls}` : `etcd unavailable: ${msg}`);
  }
  if (e instanceof EtcdAuthenticationFailedError) {
    return make('INVALID', 'etcd rejected the credentials: check ETCD_USERNAME/ETCD_PASSWORD');
  }
  if (e instanceof GRPCInvalidArgumentError && /user name is empty/.test(msg)) {
    return make('INVALID', 'etcd requires authentication: set ETCD_USERNAME and ETCD_PASSWORD');
  }
  if (e instanceof EtcdPermissionDeniedError || e instanceof GRPCUnauthenticatedError) {
    return make('INVALID', `etcd denied access (${msg}): grant the etcd user of ETCD_USERNAME read/write on the prefix`);
  }
  if (e instanceof EtcdLeaseInvalidError) return make('CONFLICT', 'the etcd lease expired or was revoked');
  if (e instanceof GRPCOutOfRangeError) return make('INTERNAL', `history was compacted: ${msg}`);
  return make('INTERNAL', msg);
}
