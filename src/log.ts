/**
 * pino, JSON by default: one line per lifecycle event, with bound context (log.child({ client, group })), nothing per
 * message above debug. Secrets are redacted by path wherever they appear.
 */
import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';

export type { Logger };

export const REDACT_PATHS = ['AUTH_SECRET', '*.AUTH_SECRET', 'config.AUTH_SECRET', 'secret', '*.secret'];

export function createLogger(options: { level: string; format: 'json' | 'pretty' }): Logger {
  const base = { level: options.level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, base: { pid: process.pid } };
  if (options.format === 'pretty') {
    // pino-pretty is a dev dependency; the image does not ship it, so fall back to JSON with a warning there.
    try {
      createRequire(import.meta.url).resolve('pino-pretty');
      return pino({ ...base, transport: { target: 'pino-pretty', options: { destination: 2 } } });
    } catch {
      const log = pino(base, pino.destination(2));
      log.warn('LOG_FORMAT=pretty needs pino-pretty, which is not installed here; logging JSON');
      return log;
    }
  }
  // Logs go to stderr, leaving stdout free; a synchronous destination keeps the last lines of a crash.
  return pino(base, pino.destination({ fd: 2, sync: true }));
}
