/**
 * Command-line compatibility (DESIGN §5): tcp-multiplexer's
 *   switchboard server -t host:port -p modbus -l 8000 [--timeout 60s] [--delay 1s] [--retryDelay 1s] [-v]
 * is folded into the settings it means, so a container started with tcp-multiplexer's arguments keeps working:
 *   -t, --targetServer       TARGET
 *   -p, --applicationProtocol PROTOCOL
 *   -l, --listen             LISTEN_PORT
 *   --timeout D              UPSTREAM_TIMEOUT_MS = D, and REQUEST_DEADLINE_MS = D + 800 ms unless that is set
 *   --delay D                CONNECT_DELAY_MS
 *   --retryDelay D           RECONNECT_MIN_MS (and RECONNECT_MAX_MS when D is above it)
 *   -v, --verbose, --debug   LOG_LEVEL=debug
 * Durations are Go durations (`60s`, `1m30s`, `500ms`, `1.5s`). The command line wins over the environment, like a flag
 * does in tcp-multiplexer. Everything here is text in, text out; loadConfig validates the values as usual.
 */
import { ConfigError } from './load.js';

/** How much longer than --timeout a request may take in total (DESIGN's defaults: 2000 ms timeout, 2800 ms deadline). */
export const CLI_DEADLINE_MARGIN_MS = 800;

/** RECONNECT_MAX_MS's default: --retryDelay above it raises the maximum too, so the pair stays valid. */
const DEFAULT_RECONNECT_MAX_MS = 10_000;

type FlagTarget = 'TARGET' | 'PROTOCOL' | 'LISTEN_PORT' | 'timeout' | 'delay' | 'retryDelay' | 'verbose';

const FLAGS: ReadonlyMap<string, FlagTarget> = new Map([
  ['-t', 'TARGET'],
  ['--targetServer', 'TARGET'],
  ['--target-server', 'TARGET'],
  ['--target', 'TARGET'],
  ['-p', 'PROTOCOL'],
  ['--applicationProtocol', 'PROTOCOL'],
  ['--application-protocol', 'PROTOCOL'],
  ['--protocol', 'PROTOCOL'],
  ['-l', 'LISTEN_PORT'],
  ['--listen', 'LISTEN_PORT'],
  ['--timeout', 'timeout'],
  ['--delay', 'delay'],
  ['--retryDelay', 'retryDelay'],
  ['--retry-delay', 'retryDelay'],
  ['-v', 'verbose'],
  ['--verbose', 'verbose'],
  ['--debug', 'verbose'],
  ['-d', 'verbose'],
]);

const USAGE = 'usage: switchboard server -t host:port -p modbus -l 8000 [--timeout 60s] [--delay 1s] [--retryDelay 1s] [-v]';

const GO_DURATION_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go duration (`1m30s`, `1.5s`, `250ms`, `0`) in whole milliseconds, or undefined if it is not one. */
export function parseGoDuration(text: string): number | undefined {
  if (text === '0') return 0;
  const part = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let consumed = 0;
  for (let match = part.exec(text); match; match = part.exec(text)) {
    total += Number(match[1]) * GO_DURATION_UNITS[match[2]!]!;
    consumed = part.lastIndex;
  }
  if (consumed === 0 || consumed !== text.length) return undefined;
  return Math.round(total);
}

/** Returns the environment with the command line's settings folded in; throws ConfigError for arguments it cannot read. */
export function applyCommandLine(args: readonly string[], env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (args.length === 0) return env;
  const problems: string[] = [];
  const [command, ...rest] = args;
  if (command !== 'server') {
    throw new ConfigError([`"${command}" is not a command; the only one is server (tcp-multiplexer's). ${USAGE}`]);
  }

  const out: NodeJS.ProcessEnv = { ...env };
  let timeoutMs: number | undefined;
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const target = FLAGS.get(name);
    if (target === undefined) {
      problems.push(`command-line argument "${arg}" is not known. ${USAGE}`);
      continue;
    }
    if (target === 'verbose') {
      if (eq > 0 && !['true', '1'].includes(arg.slice(eq + 1))) continue;
      out.LOG_LEVEL = 'debug';
      continue;
    }
    let value: string | undefined;
    if (eq > 0) value = arg.slice(eq + 1);
    else value = rest[++i];
    if (value === undefined) {
      problems.push(`command-line flag ${name} needs a value. ${USAGE}`);
      continue;
    }
    switch (target) {
      case 'TARGET':
      case 'PROTOCOL':
      case 'LISTEN_PORT':
        out[target] = value;
        break;
      case 'timeout':
      case 'delay':
      case 'retryDelay': {
        const ms = parseGoDuration(value);
        if (ms === undefined) {
          problems.push(`command-line flag ${name} "${value}" is not a duration; e.g. ${name} 5s (or 500ms, 1m30s)`);
          break;
        }
        if (target === 'timeout') {
          if (ms < 1) problems.push(`command-line flag ${name} "${value}" must be above 0; e.g. ${name} 5s`);
          timeoutMs = ms;
          out.UPSTREAM_TIMEOUT_MS = String(ms);
        } else if (target === 'delay') {
          out.CONNECT_DELAY_MS = String(ms);
        } else {
          if (ms < 1) problems.push(`command-line flag ${name} "${value}" must be above 0; e.g. ${name} 1s`);
          out.RECONNECT_MIN_MS = String(ms);
          const max = Number(env.RECONNECT_MAX_MS ?? DEFAULT_RECONNECT_MAX_MS);
          if (env.RECONNECT_MAX_MS === undefined && ms > max) out.RECONNECT_MAX_MS = String(ms);
        }
        break;
      }
    }
  }
  // tcp-multiplexer has one timeout; our deadline also counts queue wait, so it must not cut the exchange short.
  if (timeoutMs !== undefined && env.REQUEST_DEADLINE_MS === undefined) {
    out.REQUEST_DEADLINE_MS = String(timeoutMs + CLI_DEADLINE_MARGIN_MS);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out;
}
