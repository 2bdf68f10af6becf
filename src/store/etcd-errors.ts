/**
 * What went wrong talking to etcd, said in our words: the one place etcd3/gRPC errors become
 * OverlayErrors ({@link toStoreError}).
 *
 * Design note.
 * - A message names the endpoint(s) and the setting to fix: "etcd at https://… refused this host's
 *   client certificate (ETCD_CERTFILE=…)". It never quotes gRPC's or OpenSSL's text ("14
 *   UNAVAILABLE: No connection established. Last error: …"); that raw text stays on the error as
 *   its `cause`, and callers log it at debug level ({@link rawErrorText} in src/errors.ts).
 * - Which endpoints and files were used is known only where the client was made. createEtcdClient
 *   registers an {@link EtcdTarget} per client, and tags every error one of its calls throws with
 *   it (see etcd-client.ts); a watch error is tagged by its ListWatch ({@link tagWithTarget}).
 *   An untagged error still translates, only without the endpoint.
 * - The kinds: refused, unreachable (no route), name not resolved, timed out, connection dropped,
 *   TLS: client certificate refused / server certificate not trusted / no TLS on one side,
 *   authentication failed, authentication required, permission denied.
 * - The password never appears in a message: every registered secret is redacted.
 */
import type { Etcd3 } from 'etcd3';
import {
  ClientClosedError,
  EtcdAuthenticationFailedError,
  EtcdLeaseInvalidError,
  EtcdPermissionDeniedError,
  EtcdWatchStreamEnded,
  GRPCDeadlineExceededError,
  GRPCInvalidArgumentError,
  GRPCOutOfRangeError,
  GRPCUnauthenticatedError,
  GRPCUnavailableError,
} from 'etcd3';
import { isBrokenCircuitError } from 'cockatiel';
import { OverlayError, rawErrorText, redact, registerSecret } from '../errors';

/** Where and how a client talks to etcd: what a message about a failure should name. */
export interface EtcdTarget {
  endpoints: readonly string[];
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  username?: string;
  /** Per-call deadline in ms. */
  deadlineMs: number;
}

const TARGET = Symbol('etcdTarget');
const targets = new WeakMap<Etcd3, EtcdTarget>();

export function registerTarget(client: Etcd3, target: EtcdTarget, password?: string): void {
  targets.set(client, target);
  registerSecret(password);
}

/** Remember on `e` which etcd it came from (no-op for non-objects or an already tagged error). */
export function tagError(e: unknown, target: EtcdTarget): unknown {
  if (e !== null && typeof e === 'object' && !(TARGET in e)) {
    try {
      Object.defineProperty(e, TARGET, { value: target, enumerable: false });
    } catch {
      // a frozen object: translated without the endpoint
    }
  }
  return e;
}

/** Tag `e` with the target of `client` (for errors that did not come through a call: watches). */
export function tagWithTarget(e: unknown, client: Etcd3): unknown {
  const t = targets.get(client);
  return t ? tagError(e, t) : e;
}

function targetOf(e: unknown): EtcdTarget | undefined {
  return e !== null && typeof e === 'object' ? ((e as Record<symbol, unknown>)[TARGET] as EtcdTarget | undefined) : undefined;
}

/** The raw text of an error and its causes (gRPC, OpenSSL), redacted: for debug logs only. */
export const rawEtcdText = rawErrorText;

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

const CLIENT_ALERT = /alert (bad certificate|certificate required|unknown ca|certificate unknown|certificate revoked|certificate expired|unsupported certificate|access denied|handshake failure)/i;
const SERVER_UNTRUSTED =
  /(certificate verify failed|unable to verify[^:\n.]*|self[- ]signed certificate[^:\n.]*|unable to get (?:local )?issuer certificate|certificate has expired|certificate is not yet valid|Hostname\/IP does not match[^:\n]*|ERR_TLS_CERT[A-Z_]*)/i;

/**
 * A TLS failure said so an operator knows which file to fix; null when `msg` is not about TLS.
 * Only OpenSSL's alert or reason is quoted (in brackets), never the rest of its text.
 */
export function tlsProblem(msg: string, t?: EtcdTarget): string | null {
  const at = t ? `etcd at ${t.endpoints.join(', ')}` : 'etcd';
  const alert = CLIENT_ALERT.exec(msg)?.[1];
  if (alert) {
    if (t && !t.certFile) {
      return `${at} refused the TLS connection: it asks for a client certificate and none is set: set ETCD_CERTFILE and ETCD_KEYFILE [TLS alert: ${alert}]`;
    }
    const files = t ? `ETCD_CERTFILE=${t.certFile}, ETCD_KEYFILE=${t.keyFile ?? '(not set)'}` : 'ETCD_CERTFILE, ETCD_KEYFILE';
    return (
      `${at} refused this host's client certificate (${files}): it must be signed by a CA etcd trusts ` +
      `(etcd's --trusted-ca-file), be valid now and allow client authentication [TLS alert: ${alert}]`
    );
  }
  const verify = SERVER_UNTRUSTED.exec(msg)?.[1];
  if (verify) {
    const ca = t ? `ETCD_CAFILE=${t.caFile ?? '(not set: the system CAs)'}` : 'ETCD_CAFILE';
    return (
      `${at} presented a server certificate this host does not trust (${ca}): ETCD_CAFILE must hold the CA that signed ` +
      `etcd's certificate, and the certificate must name the host in ETCD_ENDPOINTS [${verify.trim()}]`
    );
  }
  // A plain etcd answers a ClientHello by closing the socket: node usually reports "disconnected
  // before secure TLS connection was established", but about one connect in twelve (measured) the
  // close arrives as a reset of a connection that never came up.
  const resetBeforeTls = t !== undefined && t.endpoints.every((e) => e.startsWith('https://')) && /No connection established[^]*ECONNRESET/.test(msg);
  if (resetBeforeTls || /before secure TLS connection was established|wrong version number|packet length too long|http request/i.test(msg)) {
    return `${at} refused the TLS handshake: is it serving https? Use http:// in ETCD_ENDPOINTS for an etcd without TLS, or give etcd --cert-file/--key-file`;
  }
  if (/certificate|SSL routines|\bTLS\b|\bSSL\b/i.test(msg)) {
    const reason = /SSL routines:[^:]*:([^:]+)/.exec(msg)?.[1];
    return `the TLS connection to ${at} failed: check ETCD_CAFILE, ETCD_CERTFILE, ETCD_KEYFILE and that ETCD_ENDPOINTS use https://${reason ? ` [${reason.trim()}]` : ''}`;
  }
  return null;
}

/** Why etcd could not be reached, in our words; `msg` is the raw (redacted) text. */
function unavailableProblem(e: unknown, msg: string, t: EtcdTarget | undefined): string {
  const at = t ? `etcd at ${t.endpoints.join(', ')}` : 'etcd';
  const tls = tlsProblem(msg, t);
  if (tls) return tls;
  if (/ECONNREFUSED/.test(msg)) {
    return `${at} refused the connection (nothing listens there): check ETCD_ENDPOINTS and that etcd is running`;
  }
  if (/ENETUNREACH|EHOSTUNREACH|EHOSTDOWN|EADDRNOTAVAIL/.test(msg)) {
    return `${at} is unreachable (no route to it from this host): check ETCD_ENDPOINTS and this host's network`;
  }
  if (/ENOTFOUND|EAI_AGAIN|name resolution failed|DNS resolution failed/i.test(msg)) {
    return `the host name in ETCD_ENDPOINTS (${t ? t.endpoints.join(', ') : 'etcd'}) does not resolve: check the name or use an IP address`;
  }
  if (e instanceof GRPCDeadlineExceededError || grpcCode(e) === 4 || /DEADLINE_EXCEEDED|ETIMEDOUT/.test(msg)) {
    const s = t ? ` within ${Math.round(t.deadlineMs / 100) / 10} s` : '';
    return `${at} did not answer${s} (timed out): check that etcd runs there and that no firewall drops the traffic`;
  }
  if (e instanceof ClientClosedError) return 'the etcd client was closed';
  if (e instanceof EtcdWatchStreamEnded || /Connection dropped|ECONNRESET|socket hang up|stream ended|Socket closed|Connection closed before/i.test(msg)) {
    return `${at} dropped the connection: etcd may be restarting; retrying`;
  }
  if (/Failed to connect/i.test(msg)) {
    return `${at} closed the connection at once: if etcd serves TLS, use https:// in ETCD_ENDPOINTS and set ETCD_CAFILE`;
  }
  return `${at} is unavailable: check ETCD_ENDPOINTS and that etcd is running`;
}

/**
 * Translate anything an etcd call threw into an OverlayError "<what>: <problem>"; `reason` holds
 * the problem alone, `cause` the raw error.
 * - UNAVAILABLE: refused, unreachable, timed out, dropped, TLS refused; retry later;
 * - INVALID: authentication and permission problems, with the setting to fix;
 * - CONFLICT: the etcd lease is gone (expired or revoked);
 * - INTERNAL: anything else (including reads of compacted history).
 * OverlayErrors pass through unchanged.
 *
 * @example
 *   try { await client.put(k).value(v) } catch (e) { throw toStoreError(e, `write ${k}`) }
 */
export function toStoreError(e: unknown, what: string): OverlayError {
  if (e instanceof OverlayError) return e;
  const t = targetOf(e);
  const at = t ? `etcd at ${t.endpoints.join(', ')}` : 'etcd';
  const msg = redact(e instanceof Error ? e.message : String(e));
  const make = (code: OverlayError['code'], reason: string) => new OverlayError(code, `${what}: ${reason}`, { cause: e, reason });
  if (isUnavailable(e)) return make('UNAVAILABLE', unavailableProblem(e, msg, t));
  const user = t?.username !== undefined ? `user "${t.username}"` : 'the user';
  if (e instanceof EtcdAuthenticationFailedError) {
    return make('INVALID', `${at} rejected the credentials of ${user} (authentication failed): check ETCD_USERNAME/ETCD_PASSWORD`);
  }
  if (e instanceof GRPCInvalidArgumentError && /user name is empty/.test(msg)) {
    return make('INVALID', `${at} requires authentication: set ETCD_USERNAME and ETCD_PASSWORD`);
  }
  if (e instanceof EtcdPermissionDeniedError || e instanceof GRPCUnauthenticatedError) {
    return make('INVALID', `${at} denied ${user} access (permission denied): grant the etcd user of ETCD_USERNAME read/write on the prefix`);
  }
  if (e instanceof EtcdLeaseInvalidError) return make('CONFLICT', 'the etcd lease expired or was revoked');
  if (e instanceof GRPCOutOfRangeError) return make('INTERNAL', `history was compacted: ${msg}`);
  return make('INTERNAL', msg);
}
