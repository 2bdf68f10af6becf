/**
 * Draining the rest of an over-limit request body before closing its connection ("lingering close").
 *
 * Why: fastify answers a body over the limit with 413 and `Connection: close` as soon as it knows
 * (the Content-Length says so, or the chunks read pass the limit) and node then closes the socket at
 * once, with the rest of the body still arriving. A client that is still writing then gets EPIPE or
 * ECONNRESET, and its HTTP library may drop the 413 that already sits in its receive buffer: the
 * answer is lost to the close (the fault suite saw 1 in 11 lost under load).
 *
 * What: the answer stays 413 with `Connection: close` (this connection is not reused: the server
 * stops listening to it at the bound), but the socket only half-closes (FIN after the answer) and
 * keeps reading and discarding the body; it is destroyed when the whole body has arrived, when the
 * client closes, or at the bound: `maxBytes` more body bytes or `maxMs` after the answer was sent,
 * whichever comes first, so an endless body (chunked without end, or a lying Content-Length) costs
 * at most that much reading. Nothing is buffered: discarded chunks are only counted.
 *
 * How: node's http server ends a `Connection: close` response with socket.destroySoon(); that one
 * socket gets its own destroySoon (a half-close) and this module decides when to destroy it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';

export interface DrainBounds {
  /** Body bytes read and discarded after the limit was passed, at most (default 8 MiB). */
  maxBytes: number;
  /** Milliseconds after the answer was sent, at most (default 2000). */
  maxMs: number;
}

export const DEFAULT_DRAIN_BOUNDS: DrainBounds = { maxBytes: 8 * 1024 * 1024, maxMs: 2000 };

/** How a drained connection ended (for the log line and tests). */
export type DrainEnd = 'body complete' | 'client closed' | 'byte bound' | 'time bound';

/** Sockets already draining: a second over-limit error on the same request changes nothing. */
const draining = new WeakSet<Socket>();

/** Whether `socket` carries an over-limit body being drained (its parse errors are expected). */
export function isDraining(socket: Socket): boolean {
  return draining.has(socket);
}

/**
 * Keep reading and discarding `req`'s body after an over-limit answer on `res`, then close the
 * connection (see the note at the top). Call it before the answer is sent. `onEnd` is called once.
 */
export function drainThenClose(req: IncomingMessage, res: ServerResponse, bounds: DrainBounds, onEnd?: (end: DrainEnd, bytes: number) => void): void {
  const socket: unknown = req.socket;
  // Only a real connection is drained (fastify's inject passes a stand-in without one).
  if (!(socket instanceof Socket) || socket.destroyed || draining.has(socket)) return;
  draining.add(socket);
  const closeWhenFlushed = socket.destroySoon.bind(socket); // node's own: end, then destroy once flushed
  let bytes = 0;
  let bodyDone = req.complete;
  let answered = false;
  let ended = false;
  let timer: NodeJS.Timeout | undefined;

  const finish = (end: DrainEnd): void => {
    if (ended) return;
    ended = true;
    if (timer) clearTimeout(timer);
    req.removeListener('data', onData);
    if (end === 'body complete') closeWhenFlushed(); // nothing unread: a clean close
    else socket.destroy();
    onEnd?.(end, bytes);
  };
  const onData = (chunk: Buffer): void => {
    bytes += chunk.length;
    if (bytes > bounds.maxBytes) finish('byte bound');
  };
  const maybeDone = (): void => {
    if (bodyDone && answered) finish('body complete');
  };

  // Read on: fastify stopped reading (chunked) or never started (Content-Length over the limit).
  req.on('data', onData);
  req.once('end', () => {
    bodyDone = true;
    maybeDone();
  });
  req.resume();
  // Node ends a `Connection: close` answer with destroySoon(): half-close instead and go on reading.
  socket.destroySoon = () => {
    if (!socket.destroyed && socket.writable) socket.end();
  };
  res.once('finish', () => {
    answered = true;
    timer = setTimeout(() => finish('time bound'), bounds.maxMs);
    timer.unref();
    maybeDone();
  });
  socket.once('close', () => {
    answered = true;
    finish('client closed');
  });
}
