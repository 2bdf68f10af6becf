/**
 * Translation of netlink failures into OverlayError, done once at the socket wrapper.
 *
 * The package reports a kernel NACK as `Error("Request rejected: EEXIST")` with no code property
 * (the name comes from util.getSystemErrorName, so EOPNOTSUPP reads "ENOTSUP"). We parse it into
 * KernelError (code 'KERNEL', `errno` kept for callers that branch on it) with the message
 * "verb object: ERRNO". A timeout or a closed socket becomes 'UNAVAILABLE' (retry later).
 */
import { OverlayError } from '../errors';

export class KernelError extends OverlayError {
  /** Symbolic errno as the kernel answered it, e.g. 'EEXIST', 'ENODEV'. */
  readonly errno: string;
  constructor(message: string, errno: string, options?: { cause?: unknown }) {
    super('KERNEL', message, options);
    this.errno = errno;
  }
}

const REJECTED_RE = /^Request rejected: (\w+)$/;

/** Short human hints for errnos we meet in practice (appended in parentheses). */
const HINTS: Record<string, string> = {
  ENETUNREACH: 'gateway not reachable on a connected route; onlink needed?',
  ENETDOWN: 'device is down',
  ENODEV: 'no such device',
  EPERM: 'needs CAP_NET_ADMIN',
  ERANGE: 'value out of range (interface name longer than 15 characters?)',
};

export function errnoOf(e: unknown): string | undefined {
  return e instanceof KernelError ? e.errno : undefined;
}

export function isErrno(e: unknown, ...names: string[]): boolean {
  const n = errnoOf(e);
  return n !== undefined && names.includes(n);
}

/** Map anything thrown by the netlink package while doing `what` (e.g. `create vxlan "flannel.1"`). */
export function toKernelError(what: string, e: unknown, timeoutMs?: number): OverlayError {
  if (e instanceof OverlayError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  const m = REJECTED_RE.exec(msg);
  if (m) {
    const errno = m[1] === 'ENOTSUP' ? 'EOPNOTSUPP' : (m[1] as string);
    const hint = HINTS[errno];
    return new KernelError(`${what}: ${errno}${hint ? ` (${hint})` : ''}`, errno, { cause: e });
  }
  if (msg === 'Timeout has been reached') {
    return new OverlayError('UNAVAILABLE', `${what}: no answer from the kernel within ${timeoutMs ?? '?'} ms`, { cause: e });
  }
  if (/socket is closed|Multipart message not terminated/i.test(msg)) {
    return new OverlayError('UNAVAILABLE', `${what}: ${msg}`, { cause: e });
  }
  if (e instanceof TypeError || e instanceof RangeError) {
    return new OverlayError('INTERNAL', `${what}: bad netlink request: ${msg}`, { cause: e });
  }
  return new KernelError(`${what}: ${msg}`, 'EUNKNOWN', { cause: e });
}

export function closedError(what: string): OverlayError {
  return new OverlayError('UNAVAILABLE', `${what}: netlink socket is closed`);
}
