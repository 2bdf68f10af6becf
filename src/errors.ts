/**
 * Error kinds with stable codes. Every layer throws an OverlayError (or a subclass); foreign errors
 * (gRPC, netlink strings, fastify) are translated once, at the adapter that met them.
 * Messages read "verb object: cause" and name what to do about it where we know.
 */
export type ErrorCode =
  | 'INVALID' // bad input from a user, a request or an etcd value
  | 'NOT_FOUND'
  | 'CONFLICT' // lost a race, address taken, object exists with other attributes
  | 'UNAVAILABLE' // etcd or the kernel cannot be reached right now; retry later
  | 'UNSUPPORTED' // a missing kernel feature, an unsupported backend
  | 'KERNEL' // the kernel refused an operation (errno in the message)
  | 'INTERNAL';

export class OverlayError extends Error {
  readonly code: ErrorCode;
  /** The cause alone, in our words, without the "verb object: " of the message (when known). */
  readonly reason: string;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; reason?: string }) {
    super(message, options);
    this.code = code;
    this.name = 'OverlayError';
    this.reason = options?.reason ?? message;
  }
}

export const invalid = (msg: string, cause?: unknown) => new OverlayError('INVALID', msg, { cause });
export const notFound = (msg: string, cause?: unknown) => new OverlayError('NOT_FOUND', msg, { cause });
export const conflict = (msg: string, cause?: unknown) => new OverlayError('CONFLICT', msg, { cause });
export const unavailable = (msg: string, cause?: unknown) => new OverlayError('UNAVAILABLE', msg, { cause });
export const unsupported = (msg: string, cause?: unknown) => new OverlayError('UNSUPPORTED', msg, { cause });

export function isOverlayError(e: unknown, code?: ErrorCode): e is OverlayError {
  return e instanceof OverlayError && (code === undefined || e.code === code);
}

/** A short text for any thrown value, for logs and {"Err"} answers. */
export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

/** The cause of a thrown value without its "verb object: " (an OverlayError's reason), else its text. */
export function reasonText(e: unknown): string {
  return e instanceof OverlayError ? e.reason : errorText(e);
}

/** Texts (passwords) that must never appear in a message or log: registered where they are read. */
const secrets = new Set<string>();

export function registerSecret(text: string | undefined): void {
  if (text && text.length >= 3) secrets.add(text);
}

/** `text` with every registered secret replaced by <redacted>. */
export function redact(text: string): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join('<redacted>');
  return out;
}

/**
 * A thrown value and its causes as the libraries gave them ("OverlayError: … <- GRPCUnavailableError:
 * 14 UNAVAILABLE: …"), redacted: for debug logs only, never for users.
 */
export function rawErrorText(e: unknown): string {
  const parts: string[] = [];
  for (let x: unknown = e, i = 0; x !== undefined && x !== null && i < 5; i++) {
    parts.push(x instanceof Error ? `${x.constructor.name}: ${x.message}` : String(x));
    x = x instanceof Error ? x.cause : undefined;
  }
  return redact(parts.join(' <- '));
}
