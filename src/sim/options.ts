/**
 * The simulator's settings, from flags (`--latency-ms 20`, `--latency-ms=20`, `--pipelined`, `--one-connection=false`)
 * or the environment (SIM_LATENCY_MS=20); a flag wins over the environment. Pure: main.ts passes argv and env in.
 * A Huawei SUN2000 reached directly: `--connect-delay-ms 1000 --min-gap-ms 50 --units 0`.
 */
import { ErrorCodes, SwitchboardError } from '../errors.js';
import { DEFAULT_FAULTS, DEFAULT_SLOW_MODE, type DeviceFaults, type TooEarlyReply } from './modbus-device.js';

/** 502 needs privileges; 1502 is the usual unprivileged Modbus port. */
export const DEFAULT_SIM_PORT = 1502;

export interface SimOptions {
  host: string;
  port: number;
  latencyMs: number;
  oneConnection: boolean;
  pipelined: boolean;
  /** Refuse connections (do not listen) for this long after start, like a device still booting. */
  refuseMs: number;
  /** Slow mode (ModbusDevice's SlowMode): 0 = off. */
  connectDelayMs: number;
  minGapMs: number;
  tooEarly: TooEarlyReply;
  /** The only units that answer; empty = every unit. */
  units: number[];
  faults: DeviceFaults;
}

type Kind = 'int' | 'bool' | 'string' | 'units' | 'too-early';

const TOO_EARLY_REPLIES: readonly TooEarlyReply[] = ['busy', 'silent'];

/** Flag name -> environment name and kind. */
const SETTINGS = {
  host: ['SIM_HOST', 'string'],
  port: ['SIM_PORT', 'int'],
  'latency-ms': ['SIM_LATENCY_MS', 'int'],
  'one-connection': ['SIM_ONE_CONNECTION', 'bool'],
  pipelined: ['SIM_PIPELINED', 'bool'],
  'refuse-ms': ['SIM_REFUSE_MS', 'int'],
  'connect-delay-ms': ['SIM_CONNECT_DELAY_MS', 'int'],
  'min-gap-ms': ['SIM_MIN_GAP_MS', 'int'],
  'too-early': ['SIM_TOO_EARLY', 'too-early'],
  units: ['SIM_UNITS', 'units'],
  'silent-units': ['SIM_SILENT_UNITS', 'units'],
  'late-every': ['SIM_LATE_EVERY', 'int'],
  'late-ms': ['SIM_LATE_MS', 'int'],
  'stray-every': ['SIM_STRAY_EVERY', 'int'],
  'close-mid-reply-every': ['SIM_CLOSE_MID_REPLY_EVERY', 'int'],
} as const satisfies Record<string, readonly [string, Kind]>;

type Flag = keyof typeof SETTINGS;

export const SIM_USAGE = `usage: npm run sim -- [--flag value]... (or node dist/sim/main.js, or the SIM_* environment)
${Object.entries(SETTINGS)
  .map(([flag, [env, kind]]) => `  --${flag}${kind === 'bool' ? '[=true|false]' : ` <${kind === 'units' ? '1,2,…' : kind === 'too-early' ? TOO_EARLY_REPLIES.join('|') : kind}>`}  (${env})`)
  .join('\n')}`;

function configError(message: string): SwitchboardError {
  return new SwitchboardError(ErrorCodes.CONFIG, `${message}\n${SIM_USAGE}`);
}

function convert(flag: Flag, raw: string): number | boolean | string | number[] {
  const kind: Kind = SETTINGS[flag][1];
  switch (kind) {
    case 'string':
      return raw;
    case 'too-early':
      if (!(TOO_EARLY_REPLIES as readonly string[]).includes(raw)) throw configError(`--${flag}: "${raw}" is not ${TOO_EARLY_REPLIES.join(' or ')}`);
      return raw;
    case 'bool':
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      throw configError(`--${flag}: "${raw}" is not true or false`);
    case 'int': {
      if (!/^\d+$/.test(raw)) throw configError(`--${flag}: "${raw}" is not a non-negative integer`);
      return Number(raw);
    }
    case 'units': {
      const units = raw === '' ? [] : raw.split(',').map((u) => u.trim());
      if (!units.every((u) => /^\d+$/.test(u) && Number(u) <= 255)) throw configError(`--${flag}: "${raw}" is not a list of unit ids 0-255`);
      return units.map(Number);
    }
  }
}

export function parseSimOptions(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): SimOptions {
  const values = new Map<Flag, string>();
  for (const [flag, [name]] of Object.entries(SETTINGS) as Array<[Flag, readonly [string, Kind]]>) {
    const value = env[name];
    if (value !== undefined && value !== '') values.set(flag, value);
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (match === null || !(match[1]! in SETTINGS)) throw configError(`unknown argument "${arg}"`);
    const flag = match[1] as Flag;
    if (match[2] !== undefined) values.set(flag, match[2]);
    else if (SETTINGS[flag][1] === 'bool') values.set(flag, 'true');
    else if (i + 1 < argv.length) values.set(flag, argv[++i]!);
    else throw configError(`--${flag} needs a value`);
  }
  const get = <T>(flag: Flag, fallback: T): T => {
    const raw = values.get(flag);
    return raw === undefined ? fallback : (convert(flag, raw) as T);
  };
  const port = get('port', DEFAULT_SIM_PORT);
  if (port > 65535) throw configError(`--port: ${port} is not a port`);
  return {
    host: get('host', '::'),
    port,
    latencyMs: get('latency-ms', 0),
    oneConnection: get('one-connection', true),
    pipelined: get('pipelined', false),
    refuseMs: get('refuse-ms', 0),
    connectDelayMs: get('connect-delay-ms', DEFAULT_SLOW_MODE.connectDelayMs),
    minGapMs: get('min-gap-ms', DEFAULT_SLOW_MODE.minGapMs),
    tooEarly: get('too-early', DEFAULT_SLOW_MODE.tooEarly),
    units: get('units', [] as number[]),
    faults: {
      silentUnits: get('silent-units', DEFAULT_FAULTS.silentUnits),
      lateEvery: get('late-every', DEFAULT_FAULTS.lateEvery),
      lateMs: get('late-ms', DEFAULT_FAULTS.lateMs),
      strayEvery: get('stray-every', DEFAULT_FAULTS.strayEvery),
      closeMidReplyEvery: get('close-mid-reply-every', DEFAULT_FAULTS.closeMidReplyEvery),
    },
  };
}
