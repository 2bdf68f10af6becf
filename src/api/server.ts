/**
 * The Docker plugin HTTP server: fastify over a unix socket, POST /<Iface>.<Method> per routes.ts.
 *
 * Design notes (details in docs/docker-protocol.md §1–§2):
 * - Docker posts with NO Content-Type and sometimes an empty body; fastify would answer 415. All
 *   built-in parsers are removed and one catch-all '*' string parser does JSON itself, so every
 *   content type (or none) is read the same way; empty and `null` bodies become {}.
 * - Every failure answers non-2xx with {"Err","Error"} (NetworkDriver reads Err, IpamDriver Error)
 *   and Content-Type application/vnd.docker.plugins.v1+json. Status by OverlayError code: INVALID
 *   400, CONFLICT 409, UNAVAILABLE 503, anything else 500 (NOT_FOUND included: 404 means "call not
 *   implemented" to Docker, which it treats as success for Program/RevokeExternalConnectivity).
 *   404 is reserved for unknown paths and non-POST methods.
 * - Nothing a request carries may crash the process: parse, schema and driver errors all land in
 *   one error handler; malformed HTTP is answered by clientErrorHandler; observer faults are caught.
 * - A body over the limit is answered 413 at once, and its connection closed only after the rest
 *   of the body was read and discarded (bounded: drain-body.ts), so a client still writing reads
 *   its answer instead of EPIPE/ECONNRESET.
 * - An empty body where fields are required gets its own message: Docker's plugin client resends a
 *   call whose connection broke (the plugin restarted while answering) with the body already
 *   consumed, i.e. empty; "NetworkID is required" alone would puzzle the user (fault suite).
 * - No serialisation here: Docker calls in parallel and the driver orders what must be ordered.
 * - Logging: one debug line per call (call, ids, status, ms); expected failures at warn, unexpected
 *   ones at error with the stack, each exactly once, always with the request id.
 */
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import Fastify, { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { PluginDriver } from '../driver/types';
import { conflict, ErrorCode, errorText, invalid, isOverlayError, OverlayError, rawErrorText } from '../errors';
import { DEFAULT_DRAIN_BOUNDS, DrainBounds, drainThenClose, isDraining } from './drain-body';
import { ROUTES } from './routes';

export const PLUGIN_CONTENT_TYPE = 'application/vnd.docker.plugins.v1+json';
export const DEFAULT_BODY_LIMIT = 1024 * 1024;
/** Owner (root) only: see listenOnSocket. */
export const SOCKET_MODE = 0o600;

/** Metrics hook: called once per answered request (not for connection-level HTTP errors). */
export interface ApiObserver {
  /** call = "NetworkDriver.Join", or "unknown" for paths we do not serve (bounded label set). */
  onCall(call: string, status: number, ms: number): void;
}

export interface ApiOptions {
  /** Largest accepted request body in bytes (default 1 MiB); larger gets 413. */
  bodyLimit?: number;
  /** How much of an over-limit body is still read and discarded after its 413 (drain-body.ts). */
  overLimitDrain?: DrainBounds;
  observer?: ApiObserver;
}

/** HTTP status for an OverlayError code (never 404: see the note at the top). */
export function statusForCode(code: ErrorCode): number {
  switch (code) {
    case 'INVALID':
      return 400;
    case 'CONFLICT':
      return 409;
    case 'UNAVAILABLE':
      return 503;
    default:
      return 500;
  }
}

function errorBody(message: string): string {
  return JSON.stringify({ Err: message, Error: message });
}

/** A Buffer, not a string: fastify would append "; charset=utf-8" to the content type of a string. */
function sendJson(reply: FastifyReply, status: number, json: string): FastifyReply {
  return reply.code(status).header('content-type', PLUGIN_CONTENT_TYPE).send(Buffer.from(json, 'utf8'));
}

/** The path of a request, bounded so a hostile URL cannot flood logs or answers. */
function pathOf(req: FastifyRequest): string {
  const p = req.url.split('?')[0] ?? '';
  return p.length > 200 ? `${p.slice(0, 200)}…` : p;
}

function callOf(req: FastifyRequest): string {
  return req.routeOptions.url?.slice(1) ?? 'unknown';
}

/** The ids worth a log line, when present as strings (bounded in length). */
function callIds(body: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof body !== 'object' || body === null) return out;
  for (const k of ['NetworkID', 'EndpointID', 'PoolID', 'Address'] as const) {
    const v = (body as Record<string, unknown>)[k];
    if (typeof v === 'string' && v !== '') out[k] = v.length > 80 ? `${v.slice(0, 80)}…` : v;
  }
  return out;
}

/** Requests whose body was empty (no bytes, or whitespace only): see the note at the top. */
const emptyBodies = new WeakSet<object>();

function rejectProtoKeys(key: string, value: unknown): unknown {
  if (key === '__proto__') throw new SyntaxError('the key "__proto__" is not allowed');
  return value;
}

/** One ajv error → "IPv4Data[0].Pool is required" / "NetworkID must be string". */
function describeValidation(err: FastifyError): string {
  const v = err.validation?.[0];
  if (!v) return err.message;
  const pointer = v.instancePath.replace(/^\//, '');
  const field = pointer
    .split('/')
    .filter((s) => s !== '')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s, i) => (/^\d+$/.test(s) ? `[${s}]` : i === 0 ? s : `.${s}`))
    .join('');
  const params = v.params as Record<string, unknown>;
  if (v.keyword === 'required') {
    const missing = String(params.missingProperty ?? '?');
    return `${field ? `${field}.` : ''}${missing} is required`;
  }
  const what = field || 'the body';
  if (v.keyword === 'type') return `${what} must be ${String(params.type).split(',').join(' or ')}`;
  if (v.keyword === 'minLength' && params.limit === 1) return `${what} must not be empty`;
  return `${what} ${v.message ?? 'is invalid'}`;
}

/**
 * A Fastify instance serving the plugin protocol over `driver` (not listening: see listenOnSocket;
 * tests use app.inject).
 */
export function buildApi(driver: PluginDriver, logger: Logger, opts: ApiOptions = {}): FastifyInstance {
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const drainBounds = opts.overLimitDrain ?? DEFAULT_DRAIN_BOUNDS;
  const app = Fastify({
    logger: false, // we log each call ourselves (onResponse), with our own fields
    bodyLimit,
    // Refuse wrong types instead of coercing them; never rewrite the body.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allowUnionTypes: true } },
    clientErrorHandler(err, socket) {
      // Malformed HTTP (no request object): answer like every other failure, then drop the connection.
      if ((err as NodeJS.ErrnoException).code === 'ECONNRESET' || socket.destroyed) return;
      // A client that got its 413 and closed before sending the rest of its body: nothing to answer.
      if (isDraining(socket)) return void socket.destroy();
      logger.warn({ err: errorText(err) }, 'malformed HTTP request on the plugin socket');
      if (socket.writable) {
        const body = errorBody(`malformed HTTP request: ${errorText(err)}`);
        socket.write(
          `HTTP/1.1 400 Bad Request\r\nContent-Type: ${PLUGIN_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        );
      }
      socket.destroy();
    },
  });
  apiLoggers.set(app, logger);

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (req, raw, done) => {
    if (req.is404) return done(null, {}); // the 404 answer must not depend on the body
    const text = (raw as string).trim();
    if (text === '') {
      emptyBodies.add(req);
      return done(null, {});
    }
    try {
      done(null, JSON.parse(text, rejectProtoKeys) ?? {});
    } catch (e) {
      // The reviver recurses: absurd nesting overflows the stack here, safely, before any handler.
      const why = e instanceof RangeError ? 'nested too deeply' : errorText(e);
      done(invalid(`invalid JSON in request to ${pathOf(req)}: ${why}`), undefined);
    }
  });
  // Content-Length 0 skips the parser entirely: body is undefined.
  app.addHook('preValidation', (req, _reply, done) => {
    if (req.body === undefined || req.body === null) {
      emptyBodies.add(req);
      req.body = {};
    }
    done();
  });

  for (const r of ROUTES) {
    app.post(`/${r.call}`, { schema: r.schema }, async (req, reply) => {
      const answer = await r.handle(driver, req.body);
      if (typeof answer !== 'object' || answer === null || Array.isArray(answer)) {
        throw new OverlayError('INTERNAL', `${r.call}: the driver returned no answer`);
      }
      return sendJson(reply, 200, JSON.stringify(answer));
    });
  }

  app.setNotFoundHandler((req, reply) => {
    const method = req.method === 'POST' ? '' : `${req.method} `;
    const msg = `overlay-flannel does not implement ${method}${pathOf(req)}`;
    logger.warn({ reqId: req.id }, msg);
    return sendJson(reply, 404, errorBody(msg));
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const where = pathOf(req);
    const reqId = req.id;
    const call = callOf(req);
    let status: number;
    let msg: string;
    if (isOverlayError(err) && err.code !== 'INTERNAL') {
      status = statusForCode(err.code);
      msg = err.message;
    } else if (err?.validation) {
      status = 400;
      msg = `invalid request to ${where}: ${describeValidation(err)}`;
      if (emptyBodies.has(req) && err.validation[0]?.keyword === 'required') {
        msg += ' (the request had an empty body: Docker resends a call with an empty body when the plugin restarted while answering it; run the command again)';
      }
    } else if (err?.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      status = 413;
      msg = `request to ${where} is larger than the ${bodyLimit}-byte limit`;
      // Answer now, close only after reading on (bounded), so the client still writing reads its 413.
      reply.header('connection', 'close');
      drainThenClose(req.raw, reply.raw, drainBounds, (end, bytes) => logger.debug({ reqId, end, bytes }, 'over-limit body drained'));
    } else if (String(err?.code).startsWith('FST_') && typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      // fastify's own request errors (bad Content-Length, media type…); a foreign error's
      // statusCode is never trusted (a driver bug must not become a 404 = "not implemented").
      status = err.statusCode;
      msg = `bad request to ${where}: ${errorText(err)}`;
    } else {
      // A bug (ours or the driver's, OverlayError INTERNAL included): error level, with the stack.
      status = 500;
      msg = isOverlayError(err) ? err.message : `internal error in ${where}: ${errorText(err)}`;
      logger.error({ reqId, call, err }, msg);
      return sendJson(reply, status, errorBody(msg));
    }
    logger.warn({ reqId, call, status, ...callIds(req.body) }, msg);
    if (err?.cause !== undefined) logger.debug({ reqId, call, raw: rawErrorText(err) }, 'the error as the library below gave it');
    return sendJson(reply, status, errorBody(msg));
  });

  app.addHook('onResponse', (req, reply, done) => {
    const call = callOf(req);
    const ms = reply.elapsedTime;
    logger.debug({ reqId: req.id, call, ...callIds(req.body), status: reply.statusCode, ms: Math.round(ms * 10) / 10 }, 'plugin call');
    if (opts.observer) {
      try {
        opts.observer.onCall(call, reply.statusCode, ms);
      } catch (e) {
        logger.warn({ reqId: req.id, err: errorText(e) }, 'API observer failed');
      }
    }
    done();
  });

  return app;
}

// ---- the unix socket ----

const apiLoggers = new WeakMap<FastifyInstance, Logger>();
/** The inode we bound, so closeApi never removes a socket another process made since. */
const boundInodes = new WeakMap<FastifyInstance, number>();

/** Whether something accepts connections on the socket at `p` (a live plugin, not a leftover). */
function socketIsLive(p: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ path: p });
    const finish = (live: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(live);
    };
    // A listener that accepts nothing within a second is still someone's: do not take it over.
    const timer = setTimeout(() => finish(true), 1000);
    s.once('connect', () => finish(true));
    s.once('error', () => finish(false));
  });
}

/**
 * Listen on a unix socket: creates the parent directory, removes a stale socket left by a crashed
 * run (never a live one, never a file that is not a socket), listens, then chmods the socket 0600.
 * Why 0600: dockerd runs as root and is the only client (a managed plugin's socket lives under
 * /run/docker/plugins/<id>/, the legacy one under /run/docker/plugins/); anyone who can connect
 * can allocate addresses and plumb interfaces, so neither the group nor other users get access
 * (the docker group reaches Docker's API, not this socket). The fault suite checks Docker uses it.
 * (The socket exists with umask permissions for the
 * moment between bind and chmod; the parent directory is what guards that window.)
 */
export async function listenOnSocket(app: FastifyInstance, socketPath: string): Promise<void> {
  const log = apiLoggers.get(app);
  await fs.mkdir(path.dirname(socketPath), { recursive: true, mode: 0o755 });
  const st = await fs.lstat(socketPath).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw e;
  });
  if (st) {
    if (!st.isSocket()) {
      const kind = st.isFile() ? 'a regular file' : st.isDirectory() ? 'a directory' : 'not a socket';
      throw invalid(`listen on ${socketPath}: the path exists and is ${kind}; refusing to delete it (remove it by hand or choose another socket path)`);
    }
    if (await socketIsLive(socketPath)) {
      throw conflict(`listen on ${socketPath}: another process is serving this socket (is overlay-flannel already running?)`);
    }
    await fs.unlink(socketPath).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
    log?.info({ socket: socketPath }, 'removed a stale plugin socket');
  }
  await app.listen({ path: socketPath });
  await fs.chmod(socketPath, SOCKET_MODE);
  boundInodes.set(app, (await fs.lstat(socketPath)).ino);
}

/** Stop serving (in-flight calls finish) and remove our socket file. */
export async function closeApi(app: FastifyInstance, socketPath: string): Promise<void> {
  await app.close();
  const st = await fs.lstat(socketPath).catch(() => null);
  const ours = boundInodes.get(app);
  // Only the socket we bound: after a failed listen (say, another live instance) it is not ours.
  if (st?.isSocket() && ours !== undefined && st.ino === ours) {
    await fs.unlink(socketPath).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
  }
}

/** The plugin API as the daemon holds it: serving on its socket until close(). */
export interface PluginApi {
  /** Stop serving (in-flight calls finish) and remove the socket file. */
  close(): Promise<void>;
}

/** Serve `driver` on the unix socket `socketPath` (buildApi + listenOnSocket); the daemon never sees fastify. */
export async function servePluginApi(driver: PluginDriver, logger: Logger, socketPath: string, opts: ApiOptions = {}): Promise<PluginApi> {
  const app = buildApi(driver, logger, opts);
  try {
    await listenOnSocket(app, socketPath);
  } catch (e) {
    await closeApi(app, socketPath).catch(() => undefined);
    throw e;
  }
  return { close: () => closeApi(app, socketPath) };
}
