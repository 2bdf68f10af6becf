/**
 * A small GET-only HTTP server for the daemon's other HTTP surface, the status server
 * (src/status): fastify stays in src/api, and the status folder describes its routes as data
 * (a path and an answer, or a stream it takes over), so it never touches fastify's types.
 *
 * Why a factory here rather than fastify in src/status: fastify has one owner (this folder), so a
 * fastify upgrade or a change of HTTP library is one folder's work, and the layout test
 * (test/unit/source-layout.test.ts) can say "fastify only in src/api" without exceptions. The
 * plugin protocol (server.ts) does not use this: it needs fastify's parsers and error handling.
 *
 * Answers: an object body is JSON (application/json), a string or Buffer is sent as is with
 * `type` (text/plain by default). HEAD is answered for every GET route (fastify's default).
 */
import Fastify from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface GetAnswer {
  status?: number;
  /** The Content-Type header, exactly (for a string or Buffer body). */
  type?: string;
  body: string | Buffer | object;
}

export interface GetRoute {
  path: string;
  /** The answer to a request (a throw is a 500). */
  answer?(): Promise<GetAnswer>;
  /**
   * Or a stream (server-sent events): prepare (may throw: a 500), then the returned writer owns
   * the raw response from its head on; `req` tells when the client goes.
   */
  stream?(): Promise<(res: ServerResponse, req: IncomingMessage) => void>;
}

/** The answer of an in-process request (tests). */
export interface InjectedAnswer {
  statusCode: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: string;
  json<T = any>(): T;
}

export interface GetServer {
  listen(addr: { host: string; port: number }): Promise<void>;
  /** Stop listening; the onClose hooks run (they end open streams). */
  close(): Promise<void>;
  /** Called by close(), before the server is gone. */
  onClose(fn: () => void | Promise<void>): void;
  /** The bound address once listening (port 0 picks one). */
  address(): { host: string; port: number } | null;
  /** Answer GET `path` without a socket. */
  inject(path: string): Promise<InjectedAnswer>;
}

export function buildGetServer(routes: readonly GetRoute[]): GetServer {
  const app = Fastify({ logger: false });
  for (const r of routes) {
    app.get(r.path, async (req, reply) => {
      if (r.stream) {
        const write = await r.stream();
        reply.hijack();
        write(reply.raw, req.raw);
        return reply;
      }
      const a = await r.answer!();
      if (a.type) reply.header('content-type', a.type);
      return reply.code(a.status ?? 200).send(a.body);
    });
  }
  return {
    async listen(addr) {
      await app.listen({ host: addr.host, port: addr.port });
    },
    close: () => app.close(),
    onClose(fn) {
      app.addHook('onClose', async () => {
        await fn();
      });
    },
    address() {
      const a = app.server.address() as AddressInfo | string | null;
      return a && typeof a === 'object' ? { host: a.address, port: a.port } : null;
    },
    async inject(path) {
      const r = await app.inject({ method: 'GET', url: path });
      return { statusCode: r.statusCode, headers: r.headers, body: r.body, json: <T>() => r.json() as T };
    },
  };
}
