/**
 * Parsers for setting values. Each takes the raw text and returns the typed value or throws envalid's EnvError with the
 * "what was expected" half of the message; the reporter in load.ts adds the variable, the value and an example.
 */
import { EnvError, makeValidator } from 'envalid';
import {
  AddressError,
  parseGroupAddress,
  parseHostPort,
  parseList,
  parsePort,
  type GroupAddress,
  type HostPort,
} from '../net/address.js';

/** What Kubernetes service links inject as `<SERVICE>_PORT`, e.g. `tcp://10.0.0.7:7100`. */
const SERVICE_LINK_VALUE = /^(tcp|udp|sctp):\/\/[^/]+:\d+$/;

export const SERVICE_LINK_HINT =
  'looks like a Kubernetes service link (a Service with the same name injects it); set enableServiceLinks: false in the pod spec';

function rethrowAddress<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof AddressError) throw new EnvError(error.message);
    throw error;
  }
}

/** Turns the OFF marker of an optional port into null. */
export function portOrNull(value: unknown): number | null {
  return value === OFF ? null : (value as number);
}

/** envalid refuses null results, so "off" travels as this marker and load.ts turns it into null. */
export const OFF = 'off' as const;

function parsePortValue(text: string, allowOff: boolean): number | typeof OFF {
  const value = text.trim();
  if (allowOff && value.toLowerCase() === OFF) return OFF;
  if (SERVICE_LINK_VALUE.test(value)) throw new EnvError(`is not a port: it ${SERVICE_LINK_HINT}`);
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) {
    throw new EnvError(allowOff ? 'is not a port (0-65535, 0 = any free port, or off)' : 'is not a port (0-65535, 0 = any free port)');
  }
  return Number(value);
}

/** A port that must be on; 0 lets the OS choose. */
export const port = makeValidator<number>((text) => parsePortValue(text, false) as number);

/** A port that may be `off` (returned as the OFF marker). */
export const optionalPort = makeValidator<number | typeof OFF>((text) => parsePortValue(text, true));

export const nonNegativeInt = makeValidator<number>((text) => {
  const value = text.trim();
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw new EnvError('is not a whole number ≥ 0');
  return Number(value);
});

export const positiveInt = makeValidator<number>((text) => {
  const value = text.trim();
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value)) || Number(value) < 1) {
    throw new EnvError('is not a whole number ≥ 1');
  }
  return Number(value);
});

export const flag = makeValidator<boolean>((text) => {
  const value = text.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(value)) return true;
  if (['false', '0', 'no', 'off'].includes(value)) return false;
  throw new EnvError('is not true or false');
});

export function oneOf<T extends string>(choices: readonly T[]) {
  return makeValidator<T>((text) => {
    const value = text.trim() as T;
    if (!choices.includes(value)) throw new EnvError(`is not one of ${choices.join(', ')}`);
    return value;
  });
}

/** Any text, kept exactly (the join prefix may end in a space or a colon). Empty is refused. */
export const nonEmptyText = makeValidator<string>((text) => {
  if (text.length === 0) throw new EnvError('is empty');
  return text;
});

export const bindHost = makeValidator<string>((text) => {
  const value = text.trim();
  if (value.length === 0) throw new EnvError('is empty');
  // Brackets are tolerated because people copy them from URLs.
  const unbracketed = value.startsWith('[') && value.endsWith(']') ? value.slice(1, -1) : value;
  rethrowAddress(() => parseHostPort(unbracketed.includes(':') ? `[${unbracketed}]:0` : `${unbracketed}:0`));
  return unbracketed;
});

function listOf<T>(parseEntry: (entry: string) => T) {
  return makeValidator<T[]>((text) => {
    try {
      return parseList(text, parseEntry);
    } catch (error) {
      if (error instanceof AddressError) throw new EnvError(`has a bad entry: ${error.message}`);
      throw error;
    }
  });
}

export const groupAddressList = listOf<GroupAddress>(parseGroupAddress);

export const hostPortList = listOf<HostPort>(parseHostPort);

export const hostPort = makeValidator<HostPort>((text) => rethrowAddress(() => parseHostPort(text)));

export { parsePort };

/** Where mux mode's upstream is (DESIGN §5 TARGET): `host:port`, `rtu:host:port`, `unix:/path`; `serial:` is for later. */
export type MuxTarget =
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'rtu'; host: string; port: number }
  | { kind: 'unix'; path: string }
  | { kind: 'serial'; path: string };

export function parseMuxTarget(text: string): MuxTarget {
  const value = text.trim();
  if (value.startsWith('unix:')) {
    const path = value.slice('unix:'.length);
    if (path.length === 0) throw new EnvError('is not unix:/path (the path is empty)');
    return { kind: 'unix', path };
  }
  if (value.startsWith('serial:')) return { kind: 'serial', path: value.slice('serial:'.length) };
  if (value.startsWith('rtu:')) return { kind: 'rtu', ...targetHostPort(value.slice('rtu:'.length)) };
  if (value.startsWith('tcp://') || value.startsWith('tcp:')) {
    throw new EnvError('is not host:port (write it without a tcp: prefix)');
  }
  return { kind: 'tcp', ...targetHostPort(value) };
}

function targetHostPort(text: string): HostPort {
  let parsed: HostPort;
  try {
    parsed = parseHostPort(text);
  } catch (error) {
    if (!(error instanceof AddressError)) throw error;
    // The address parser's own text repeats the value; the reporter shows it already.
    const detail = /without brackets/.test(error.message) ? ' (an IPv6 address needs brackets: [fd00::5]:502)' : '';
    throw new EnvError(`is not host:port, rtu:host:port or unix:/path${detail}`);
  }
  if (parsed.port === 0) throw new EnvError('is not host:port (port 0 cannot be dialled)');
  return parsed;
}

export const muxTarget = makeValidator<MuxTarget>((text) => parseMuxTarget(text));

/** A port range `first-last` (or one port); `0` means any free port the OS picks. Used by PUBLIC_PORTS. */
export interface PortRange {
  first: number;
  last: number;
}

export const portRange = makeValidator<PortRange>((text) => {
  const value = text.trim();
  const match = /^(\d{1,5})(?:\s*-\s*(\d{1,5}))?$/.exec(value);
  const first = match ? Number(match[1]) : NaN;
  const last = match ? Number(match[2] ?? match[1]) : NaN;
  if (!match || first > 65535 || last > 65535 || last < first || (first === 0 && last !== 0)) {
    throw new EnvError('is not a port range (first-last, e.g. 8001-8050, one port, or 0 = any free port)');
  }
  return { first, last };
});

/** host:port, or empty (a required-in-practice setting whose absence the mode's cross-check reports). */
export const optionalHostPort = makeValidator<HostPort | ''>((text) =>
  text.trim() === '' ? '' : rethrowAddress(() => parseHostPort(text)),
);

/** A bind address, or empty (meaning: the same as another setting). */
export const optionalBindHost = makeValidator<string>((text) => (text.trim() === '' ? '' : bindHost()._parse(text)));

/** WRITE_ALLOW entry (DESIGN §5): writes to `unit` may touch addresses first..last (inclusive, 0-65535). */
export interface WriteAllowRange {
  unit: number;
  first: number;
  last: number;
}

function modbusNumber(text: string, max: number, what: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > max) throw new EnvError(`has a bad entry: ${what} "${text}" is not 0-${max}`);
  return Number(text);
}

/** `unit:first-last` or `unit:address`, comma separated (WRITE_ALLOW=1:40000-40010,2:100). */
export const writeAllowList = makeValidator<WriteAllowRange[]>((text) => {
  const entries = text.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  return entries.map((entry) => {
    const match = /^(\d+)\s*:\s*(\d+)(?:\s*-\s*(\d+))?$/.exec(entry);
    if (!match) throw new EnvError(`has a bad entry "${entry}" (expected unit:first-last)`);
    const unit = modbusNumber(match[1]!, 255, 'unit id');
    const first = modbusNumber(match[2]!, 65535, 'address');
    const last = modbusNumber(match[3] ?? match[2]!, 65535, 'address');
    if (last < first) throw new EnvError(`has a bad entry "${entry}" (last address below first)`);
    return { unit, first, last };
  });
});

/** UNIT_MAP (DESIGN §5): client unit id -> device unit id, `client=device,…`; a client unit may appear once. */
export const unitMap = makeValidator<Map<number, number>>((text) => {
  const map = new Map<number, number>();
  for (const entry of text.split(',').map((item) => item.trim()).filter((item) => item !== '')) {
    const match = /^(\d+)\s*=\s*(\d+)$/.exec(entry);
    if (!match) throw new EnvError(`has a bad entry "${entry}" (expected client=device, e.g. 1=0)`);
    const client = modbusNumber(match[1]!, 255, 'unit id');
    const device = modbusNumber(match[2]!, 255, 'unit id');
    if (map.has(client)) throw new EnvError(`maps unit ${client} twice`);
    map.set(client, device);
  }
  return map;
});

/** Any text, empty allowed, kept exactly (secrets). */
export const anyText = makeValidator<string>((text) => text);
