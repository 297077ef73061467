/**
 * share mode settings (DESIGN §6) and their typed form: one upstream byte stream broadcast to every client.
 */
import { EnvError, makeValidator } from 'envalid';
import { AddressError, parseHostPort, parsePort } from '../../net/address.js';
import type { SettingDefinition, SlowClientPolicy } from '../types.js';
import { nonNegativeInt, oneOf, optionalPort, port, portOrNull } from '../validators.js';

export const UPSTREAM_LOSS_POLICIES = ['keep', 'disconnect'] as const;
export type UpstreamLossPolicy = (typeof UPSTREAM_LOSS_POLICIES)[number];

/**
 * Where the shared stream comes from. For `fifo`, kflu/multiplexer's naming: `upPath` is the uplink (switchboard writes the
 * clients' bytes into it, the device reads it), `downPath` the downlink (the device writes, switchboard reads and broadcasts).
 */
export type UpstreamTarget =
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'listen'; port: number }
  | { kind: 'unix'; path: string }
  | { kind: 'fifo'; upPath: string; downPath: string };

export interface ShareConfig {
  listenPort: number;
  listenPortRo: number | null;
  upstream: UpstreamTarget;
  /** UPSTREAM as written, for /status and logs. */
  upstreamText: string;
  replayBytes: number;
  upstreamLoss: UpstreamLossPolicy;
  slowClient: SlowClientPolicy;
}

/** A replay larger than this is refused: it is held in memory once and copied once per joining client. */
export const MAX_REPLAY_BYTES = 64 * 1024 * 1024;

const UPSTREAM_EXPECTED = 'is not tcp:host:port, listen:port, unix:/path or fifo:/path/up,/path/down';

export function parseUpstreamTarget(text: string): UpstreamTarget {
  const value = text.trim();
  const colon = value.indexOf(':');
  const kind = colon > 0 ? value.slice(0, colon) : '';
  const rest = value.slice(colon + 1);
  try {
    switch (kind) {
      case 'tcp': {
        const { host, port } = parseHostPort(rest);
        if (port === 0) throw new EnvError('has port 0, which cannot be dialled');
        return { kind, host, port };
      }
      case 'listen':
        return { kind, port: parsePort(rest) };
      case 'unix':
        if (!rest.startsWith('/')) throw new EnvError('is not unix:/absolute/path');
        return { kind, path: rest };
      case 'fifo': {
        const paths = rest.split(',');
        if (paths.length !== 2 || !paths.every((p) => p.startsWith('/')) || paths[0] === paths[1]) {
          throw new EnvError('is not fifo:/path/up,/path/down (two different absolute paths: up is written, down is read)');
        }
        return { kind, upPath: paths[0]!, downPath: paths[1]! };
      }
      default:
        throw new EnvError(UPSTREAM_EXPECTED);
    }
  } catch (error) {
    if (error instanceof AddressError) throw new EnvError(`${UPSTREAM_EXPECTED}: ${error.message}`);
    throw error;
  }
}

const upstreamTarget = makeValidator<UpstreamTarget>(parseUpstreamTarget);

export const SHARE_SETTINGS: readonly SettingDefinition[] = [
  {
    name: 'LISTEN_PORT',
    default: '3333',
    example: '3333',
    doc: 'port of the read-write clients (what they send goes to the upstream)',
    scope: ['share'],
    validator: port,
  },
  {
    name: 'LISTEN_PORT_RO',
    default: 'off',
    example: '3334',
    doc: 'port of the read-only clients: they receive the stream; what they send is discarded and counted; off = none',
    scope: ['share'],
    validator: optionalPort,
  },
  {
    name: 'UPSTREAM',
    default: undefined,
    example: 'tcp:192.168.1.40:4001',
    doc: 'the shared stream: tcp:host:port, listen:port (the upstream dials in; a second dial-in replaces the first), unix:/path, or fifo:/path/up,/path/down (up is written, down is read)',
    scope: ['share'],
    validator: upstreamTarget,
  },
  {
    name: 'REPLAY_BYTES',
    default: '0',
    example: '65536',
    doc: 'a joining client first receives exactly the last this-many bytes of upstream output (may start mid-line); at most CLIENT_BUFFER_BYTES',
    scope: ['share'],
    validator: nonNegativeInt,
  },
  {
    name: 'UPSTREAM_LOSS',
    default: 'keep',
    example: 'disconnect',
    doc: 'keep clients connected while the upstream is away, or disconnect them (and close new ones at once until it is back)',
    scope: ['share'],
    validator: oneOf(UPSTREAM_LOSS_POLICIES),
  },
];

/** Cross-setting rules of the mode; each problem is one line. */
export function checkShareSettings(cleaned: Record<string, unknown>, sourceOf: (name: string) => string): string[] {
  const problems: string[] = [];
  const replay = cleaned.REPLAY_BYTES as number;
  const clientBuffer = cleaned.CLIENT_BUFFER_BYTES as number;
  if (replay > MAX_REPLAY_BYTES) {
    problems.push(`${sourceOf('REPLAY_BYTES')}="${replay}" is above ${MAX_REPLAY_BYTES}; e.g. REPLAY_BYTES=65536`);
  } else if (replay > clientBuffer) {
    // A joining client is REPLAY_BYTES behind the others by construction; more than CLIENT_BUFFER_BYTES would make it a
    // slow client before it has read a byte.
    problems.push(
      `${sourceOf('REPLAY_BYTES')}="${replay}" is above CLIENT_BUFFER_BYTES="${clientBuffer}", so a joining client would be a slow client at once; e.g. REPLAY_BYTES=${clientBuffer} or raise CLIENT_BUFFER_BYTES`,
    );
  }
  const target = cleaned.UPSTREAM as UpstreamTarget;
  const listenPort = cleaned.LISTEN_PORT as number;
  const roPort = portOrNull(cleaned.LISTEN_PORT_RO);
  if (roPort !== null && roPort !== 0 && roPort === listenPort) {
    problems.push(`${sourceOf('LISTEN_PORT_RO')}="${roPort}" is the same port as LISTEN_PORT; e.g. LISTEN_PORT_RO=${listenPort + 1}`);
  }
  if (target.kind === 'listen' && target.port !== 0 && (target.port === listenPort || target.port === roPort)) {
    problems.push(`${sourceOf('UPSTREAM')}="listen:${target.port}" uses a client port; e.g. UPSTREAM=listen:4000`);
  }
  return problems;
}

export function buildShareConfig(c: Record<string, unknown>): ShareConfig {
  const upstream = c.UPSTREAM as UpstreamTarget;
  return {
    listenPort: c.LISTEN_PORT as number,
    listenPortRo: portOrNull(c.LISTEN_PORT_RO),
    upstream,
    upstreamText: formatUpstreamTarget(upstream),
    replayBytes: c.REPLAY_BYTES as number,
    upstreamLoss: c.UPSTREAM_LOSS as UpstreamLossPolicy,
    slowClient: c.SLOW_CLIENT as SlowClientPolicy,
  };
}

export function formatUpstreamTarget(target: UpstreamTarget): string {
  switch (target.kind) {
    case 'tcp':
      return `tcp:${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
    case 'listen':
      return `listen:${target.port}`;
    case 'unix':
      return `unix:${target.path}`;
    case 'fifo':
      return `fifo:${target.upPath},${target.downPath}`;
  }
}
