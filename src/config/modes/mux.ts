/**
 * mux mode settings (DESIGN §5) and their typed form. A `serial:` TARGET is refused clearly (not built yet).
 */
import type { SettingDefinition } from '../types.js';
import {
  flag,
  muxTarget,
  nonNegativeInt,
  oneOf,
  port,
  positiveInt,
  unitMap,
  writeAllowList,
  type MuxTarget,
  type WriteAllowRange,
} from '../validators.js';

export type { MuxTarget, WriteAllowRange };

/** DESIGN §5 PROTOCOL: tcp-multiplexer's framer names plus http. */
export const MUX_PROTOCOLS = ['modbus', 'modbus-serial', 'modbus-rtu', 'echo', 'http', 'iso8583', 'mpu'] as const;
export type MuxProtocol = (typeof MUX_PROTOCOLS)[number];

/** Protocols this build serves; the others are refused at start with the issue that brings them. */
export const AVAILABLE_MUX_PROTOCOLS: readonly MuxProtocol[] = MUX_PROTOCOLS;

/** MAX_HEADER_BYTES bounds: a request line and a few headers need ~1 KiB; beyond 1 MiB is a memory risk, not a header. */
export const MIN_HEADER_BYTES = 1024;
export const MAX_HEADER_BYTES_LIMIT = 1048576;

/** MAX_INFLIGHT bound: far below the 65,536 transaction ids, far above what any device pipelines. */
export const MAX_INFLIGHT_LIMIT = 256;

export interface MuxConfig {
  listenPort: number;
  target: MuxTarget;
  protocol: MuxProtocol;
  upstreamTimeoutMs: number;
  requestDeadlineMs: number;
  connectTimeoutMs: number;
  connectDelayMs: number;
  requestGapMs: number;
  /** As configured; the engine uses 1 unless the protocol is modbus over a Modbus TCP target. */
  maxInflight: number;
  clientQueue: number;
  /** 0 = keep the upstream open forever. */
  upstreamIdleCloseMs: number;
  upstreamMaxTimeouts: number;
  /** Modbus: only reading function codes reach the device. */
  readOnly: boolean;
  /** Modbus with readOnly: the address ranges writes may still touch. */
  writeAllow: WriteAllowRange[];
  /** Modbus: client unit id -> device unit id. */
  unitMap: Map<number, number>;
  /** Modbus: identical reads share one upstream request. */
  coalesce: boolean;
  /** Modbus: serve repeated reads from answers at most this old; 0 = no cache. */
  cacheTtlMs: number;
  /** http: bound on a request's or response's header section. */
  maxHeaderBytes: number;
}

export const MUX_SETTINGS: readonly SettingDefinition[] = [
  {
    name: 'LISTEN_PORT',
    default: '5020',
    example: '5020',
    doc: 'client port (Modbus clients, tcp-multiplexer clients)',
    scope: ['mux'],
    validator: port,
  },
  {
    name: 'TARGET',
    default: undefined,
    example: '192.168.1.50:502',
    doc: 'the one upstream: host:port (same framing as the clients), rtu:host:port (PROTOCOL=modbus: the target speaks Modbus RTU over TCP, e.g. an RS-485 gateway in transparent mode) or unix:/path',
    scope: ['mux'],
    validator: muxTarget,
  },
  {
    name: 'PROTOCOL',
    default: undefined,
    example: 'modbus',
    doc: 'modbus, modbus-serial (raw RTU frames), modbus-rtu (MBAP+PDU+CRC), echo (lines), http (HTTP/1.1), iso8583 (2-byte length) or mpu (4-digit length)',
    scope: ['mux'],
    validator: oneOf(MUX_PROTOCOLS),
  },
  {
    name: 'UPSTREAM_TIMEOUT_MS',
    default: '2000',
    example: '5000',
    doc: 'from sending a request upstream to its reply; then Modbus clients get exception 0x0B',
    scope: ['mux'],
    validator: positiveInt,
  },
  {
    name: 'REQUEST_DEADLINE_MS',
    default: '2800',
    example: '2800',
    doc: "from a request's arrival to its answer, queue wait included; keep it below the clients' own timeout (pymodbus 3 s, Home Assistant 5 s)",
    scope: ['mux'],
    validator: positiveInt,
  },
  {
    name: 'CONNECT_TIMEOUT_MS',
    default: '3000',
    example: '3000',
    doc: 'how long one connect attempt to TARGET may take',
    scope: ['mux'],
    validator: positiveInt,
  },
  {
    name: 'CONNECT_DELAY_MS',
    default: '0',
    example: '1500',
    doc: 'wait after the upstream connects before the first request (some inverters need 1-2 s); requests wait meanwhile',
    scope: ['mux'],
    validator: nonNegativeInt,
  },
  {
    name: 'REQUEST_GAP_MS',
    default: '0',
    example: '50',
    doc: 'minimum pause between the end of one upstream exchange and the next request',
    scope: ['mux'],
    validator: nonNegativeInt,
  },
  {
    name: 'MAX_INFLIGHT',
    default: '1',
    example: '8',
    doc: 'upstream requests outstanding at once (PROTOCOL=modbus with a host:port or unix: target only; always 1 otherwise)',
    scope: ['mux'],
    validator: positiveInt,
  },
  {
    name: 'CLIENT_QUEUE',
    default: '16',
    example: '16',
    doc: 'requests one client may have unanswered; beyond it Modbus clients get exception 0x06, other protocols are closed',
    scope: ['mux'],
    validator: positiveInt,
  },
  {
    name: 'UPSTREAM_IDLE_CLOSE_MS',
    default: '0',
    example: '60000',
    doc: 'close the upstream after this long without clients and dial it again on the next request; 0 = keep it open',
    scope: ['mux'],
    validator: nonNegativeInt,
  },
  {
    name: 'UPSTREAM_MAX_TIMEOUTS',
    default: '3',
    example: '3',
    doc: 'consecutive timeouts after which the upstream connection is dropped and redialled',
    scope: ['mux'],
    validator: positiveInt,
  },
  {
    name: 'READ_ONLY',
    default: 'false',
    example: 'true',
    doc: 'PROTOCOL=modbus: only reading function codes (1-4, 7, 11, 12, 17, 20, 24, 43/14) reach the device; everything else is answered with exception 0x01',
    scope: ['mux'],
    validator: flag,
  },
  {
    name: 'WRITE_ALLOW',
    default: '',
    example: '1:40000-40010',
    doc: 'with READ_ONLY=true: unit:first-last,… addresses that writes (FC 5, 6, 15, 16, 22, 23) may still touch; a write reaching outside is refused whole',
    scope: ['mux'],
    validator: writeAllowList,
  },
  {
    name: 'UNIT_MAP',
    default: '',
    example: '1=0',
    doc: 'PROTOCOL=modbus: client=device,… unit ids rewritten on the way up and back; the client always sees its own unit id',
    scope: ['mux'],
    validator: unitMap,
  },
  {
    name: 'COALESCE',
    default: 'true',
    example: 'false',
    doc: "PROTOCOL=modbus: identical reads (unit, function, address, quantity) share one upstream request; a client always reads its own writes",
    scope: ['mux'],
    validator: flag,
  },
  {
    name: 'CACHE_TTL_MS',
    default: '0',
    example: '1000',
    doc: 'PROTOCOL=modbus: answer repeated reads from the device answer if it is at most this old; a write clears that unit; 0 = off',
    scope: ['mux'],
    validator: nonNegativeInt,
  },
  {
    name: 'MAX_HEADER_BYTES',
    default: '16384',
    example: '16384',
    doc: `PROTOCOL=http: largest header section of a request or response (${MIN_HEADER_BYTES}-${MAX_HEADER_BYTES_LIMIT}); a request over it gets 400`,
    scope: ['mux'],
    validator: positiveInt,
  },
];

/** Cross-setting rules of the mode; each problem is one line. */
export function checkMuxSettings(cleaned: Record<string, unknown>, sourceOf: (name: string) => string): string[] {
  const problems: string[] = [];
  const target = cleaned.TARGET as MuxTarget;
  const protocol = cleaned.PROTOCOL as MuxProtocol;
  if (target.kind === 'rtu' && protocol !== 'modbus') {
    problems.push(`${sourceOf('TARGET')}="rtu:…" needs PROTOCOL=modbus (clients speak Modbus TCP, the target RTU); e.g. PROTOCOL=modbus`);
  } else if (target.kind === 'serial') {
    problems.push(`${sourceOf('TARGET')}="serial:…" is not available in this version yet; e.g. TARGET=192.168.1.50:502`);
  }
  if (!AVAILABLE_MUX_PROTOCOLS.includes(protocol)) {
    problems.push(
      `${sourceOf('PROTOCOL')}="${protocol}" is not available in this version yet (available: ${AVAILABLE_MUX_PROTOCOLS.join(', ')}); e.g. PROTOCOL=modbus`,
    );
  }
  const maxInflight = cleaned.MAX_INFLIGHT as number;
  if (maxInflight > MAX_INFLIGHT_LIMIT) {
    problems.push(`${sourceOf('MAX_INFLIGHT')}="${maxInflight}" is above ${MAX_INFLIGHT_LIMIT}; e.g. MAX_INFLIGHT=8`);
  }
  const writeAllow = cleaned.WRITE_ALLOW as WriteAllowRange[];
  if (writeAllow.length > 0 && cleaned.READ_ONLY !== true) {
    problems.push(
      `${sourceOf('WRITE_ALLOW')} only makes sense with READ_ONLY=true (without it every write is allowed); e.g. READ_ONLY=true WRITE_ALLOW=1:40000-40010`,
    );
  }
  if (protocol !== 'modbus') {
    // A safety setting that would be silently ignored is worse than a refusal.
    const modbusOnly: Array<[string, boolean]> = [
      ['READ_ONLY', cleaned.READ_ONLY === true],
      ['WRITE_ALLOW', writeAllow.length > 0],
      ['UNIT_MAP', (cleaned.UNIT_MAP as Map<number, number>).size > 0],
      ['CACHE_TTL_MS', (cleaned.CACHE_TTL_MS as number) > 0],
    ];
    for (const [name, set] of modbusOnly) {
      if (set) problems.push(`${sourceOf(name)} applies to PROTOCOL=modbus only (PROTOCOL is ${protocol}); e.g. PROTOCOL=modbus`);
    }
  }
  const maxHeaderBytes = cleaned.MAX_HEADER_BYTES as number;
  if (maxHeaderBytes < MIN_HEADER_BYTES || maxHeaderBytes > MAX_HEADER_BYTES_LIMIT) {
    problems.push(
      `${sourceOf('MAX_HEADER_BYTES')}="${maxHeaderBytes}" is outside ${MIN_HEADER_BYTES}-${MAX_HEADER_BYTES_LIMIT}; e.g. MAX_HEADER_BYTES=16384`,
    );
  }
  return problems;
}

export function buildMuxConfig(c: Record<string, unknown>): MuxConfig {
  return {
    listenPort: c.LISTEN_PORT as number,
    target: c.TARGET as MuxTarget,
    protocol: c.PROTOCOL as MuxProtocol,
    upstreamTimeoutMs: c.UPSTREAM_TIMEOUT_MS as number,
    requestDeadlineMs: c.REQUEST_DEADLINE_MS as number,
    connectTimeoutMs: c.CONNECT_TIMEOUT_MS as number,
    connectDelayMs: c.CONNECT_DELAY_MS as number,
    requestGapMs: c.REQUEST_GAP_MS as number,
    maxInflight: c.MAX_INFLIGHT as number,
    clientQueue: c.CLIENT_QUEUE as number,
    upstreamIdleCloseMs: c.UPSTREAM_IDLE_CLOSE_MS as number,
    upstreamMaxTimeouts: c.UPSTREAM_MAX_TIMEOUTS as number,
    readOnly: c.READ_ONLY as boolean,
    writeAllow: c.WRITE_ALLOW as WriteAllowRange[],
    unitMap: c.UNIT_MAP as Map<number, number>,
    coalesce: c.COALESCE as boolean,
    cacheTtlMs: c.CACHE_TTL_MS as number,
    maxHeaderBytes: c.MAX_HEADER_BYTES as number,
  };
}

/** Whether the engine may pipeline: transaction ids correlate replies only in Modbus TCP framing. */
export function effectiveMaxInflight(config: MuxConfig): number {
  return config.protocol === 'modbus' && (config.target.kind === 'tcp' || config.target.kind === 'unix') ? config.maxInflight : 1;
}
