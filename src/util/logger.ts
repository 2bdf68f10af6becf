/** The process logger: pino JSON to stderr (stdout is the CLI's), with secrets redacted. */
import pino, { Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, name = 'overlay-flannel'): Logger {
  return pino(
    {
      name,
      level,
      redact: { paths: ['*.etcdPassword', '*.password', 'password', 'etcdPassword', '*.privateKey'], censor: '<redacted>' },
    },
    pino.destination(2),
  );
}
