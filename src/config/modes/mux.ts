/**
 * mux mode settings (DESIGN §5) and their typed form. Issue 6 adds READ_ONLY, WRITE_ALLOW, UNIT_MAP, COALESCE and
 * CACHE_TTL_MS here, and `rtu:` targets; until then an `rtu:` or `serial:` TARGET and PROTOCOL=http are refused clearly.
 */
import type { SettingDefinition } from '../types.js';
import { muxTarget, nonNegativeInt, oneOf, port, positiveInt, type MuxTarget } from '../validators.js';

export type { MuxTarget };

/** DESIGN §5 PROTOCOL: tcp-multiplexer's framer names plus http. */
export const MUX_PROTOCOLS = ['modbus', 'modbus-serial', 'modbus-rtu', 'echo', 'http', 'iso8583', 'mpu'] as const;
export type MuxProtocol = (typeof MUX_PROTOCOLS)[number];

/** Protocols this build serves; the others are refused at start with the issue that brings them. */
export const AVAILABLE_MUX_PROTOCOLS: readonly MuxProtocol[] = ['modbus', 'modbus-serial', 'modbus-rtu', 'echo', 'iso8583', 'mpu'];

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
    doc: 'the one upstream: host:port (same framing as the clients) or unix:/path; rtu:host:port comes with issue 6',
    scope: ['mux'],
    validator: muxTarget,
  },
  {
    name: 'PROTOCOL',
    default: undefined,
    example: 'modbus',
    doc: 'modbus, modbus-serial (raw RTU frames), modbus-rtu (MBAP+PDU+CRC), echo (lines), iso8583 (2-byte length) or mpu (4-digit length); http comes with issue 7',
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
];

/** Cross-setting rules of the mode; each problem is one line. */
export function checkMuxSettings(cleaned: Record<string, unknown>, sourceOf: (name: string) => string): string[] {
  const problems: string[] = [];
  const target = cleaned.TARGET as MuxTarget;
  const protocol = cleaned.PROTOCOL as MuxProtocol;
  if (target.kind === 'rtu') {
    problems.push(`${sourceOf('TARGET')}="rtu:…" (RTU translation) is not available in this version yet (issue 6); e.g. TARGET=192.168.1.50:502`);
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
  };
}

/** Whether the engine may pipeline: transaction ids correlate replies only in Modbus TCP framing. */
export function effectiveMaxInflight(config: MuxConfig): number {
  return config.protocol === 'modbus' && (config.target.kind === 'tcp' || config.target.kind === 'unix') ? config.maxInflight : 1;
}
