/**
 * relay and agent mode settings (DESIGN §7) and their typed forms. The relay takes agents on RELAY_PORT and hands each a
 * public port from PUBLIC_PORTS; the agent dials RELAY and exposes SERVICE. AUTH_SECRET is shared by both sides and never
 * shown (secret: true).
 */
import type { HostPort } from '../../net/address.js';
import { INITIAL_STREAM_WINDOW, MAX_DATA_FRAME_BYTES } from '../../protocols/yamux.js';
import type { SettingDefinition } from '../types.js';
import {
  anyText,
  nonNegativeInt,
  oneOf,
  optionalBindHost,
  optionalHostPort,
  port,
  portRange,
  positiveInt,
  type PortRange,
} from '../validators.js';
import { EnvError, makeValidator } from 'envalid';

export const AUTH_MODES = ['secret', 'none'] as const;
export type AuthMode = (typeof AUTH_MODES)[number];
export const RELAY_LEGACY_MODES = ['auto', 'true', 'false'] as const;
export type RelayLegacyMode = (typeof RELAY_LEGACY_MODES)[number];

export interface RelayConfig {
  relayPort: number;
  publicPorts: PortRange;
  /** Bind address of public ports (PUBLIC_HOST, or HOST when empty). */
  publicHost: string;
  authSecret: string;
  auth: AuthMode;
  /** RELAY_LEGACY resolved: are muxado v1 (tcp-relay) sessions served? */
  legacyAllowed: boolean;
  leaseTtlMs: number;
  visitorWaitMs: number;
  streamWindowBytes: number;
}

export interface AgentConfig {
  relay: HostPort;
  service: HostPort;
  authSecret: string;
  requestPort: number;
  streamWindowBytes: number;
  /** Where the lease id is kept across agent restarts; empty = memory only. */
  leaseFile: string;
}

/** STREAM_WINDOW_BYTES within what the yamux session accepts (spec minimum 256 KiB, our frame limit above). */
const streamWindow = makeValidator<number>((text) => {
  const value = text.trim();
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < INITIAL_STREAM_WINDOW || n > MAX_DATA_FRAME_BYTES) {
    throw new EnvError(`is not a window size between ${INITIAL_STREAM_WINDOW} and ${MAX_DATA_FRAME_BYTES} bytes`);
  }
  return n;
});

/** Settings of both modes (scope ['relay'], ['agent'] or ['relay', 'agent']). */
export const RELAY_SETTINGS: readonly SettingDefinition[] = [
  {
    name: 'RELAY_PORT',
    default: '8000',
    example: '8000',
    doc: 'relay: where agents connect (switchboard agents and tcp-relay services alike)',
    scope: ['relay'],
    validator: port,
  },
  {
    name: 'PUBLIC_PORTS',
    default: '8001-8050',
    example: '8001-8050',
    doc: 'relay: range of public ports handed to agents (first-last, one port, or 0 = any free port the OS picks)',
    scope: ['relay'],
    validator: portRange,
  },
  {
    name: 'PUBLIC_HOST',
    default: '',
    example: '0.0.0.0',
    doc: 'relay: bind address of the public ports; empty = HOST',
    scope: ['relay'],
    validator: optionalBindHost,
  },
  {
    name: 'AUTH',
    default: 'secret',
    example: 'none',
    doc: 'relay: secret = agents must prove AUTH_SECRET and the relay refuses to start without one; none = accept any agent (must be explicit)',
    scope: ['relay'],
    validator: oneOf(AUTH_MODES),
  },
  {
    name: 'AUTH_SECRET',
    default: '',
    example: 'a-long-random-string',
    doc: 'shared secret; agents prove it with an HMAC-SHA256 challenge before they get a port (never logged or shown)',
    scope: ['relay', 'agent'],
    secret: true,
    validator: anyText,
  },
  {
    name: 'RELAY_LEGACY',
    default: 'auto',
    example: 'true',
    doc: 'relay: tcp-relay (muxado v1) services without the preamble; auto = allowed when AUTH=none, refused when a secret is set; true or false force it',
    scope: ['relay'],
    validator: oneOf(RELAY_LEGACY_MODES),
  },
  {
    name: 'LEASE_TTL_MS',
    default: '30000',
    example: '30000',
    doc: "relay: a disconnected agent's public port stays reserved this long for the same agent (its lease id)",
    scope: ['relay'],
    validator: nonNegativeInt,
  },
  {
    name: 'VISITOR_WAIT_MS',
    default: '10000',
    example: '10000',
    doc: 'relay: visitors arriving while the agent is away wait this long (at most 64 per port) before being closed',
    scope: ['relay'],
    validator: nonNegativeInt,
  },
  {
    name: 'STREAM_WINDOW_BYTES',
    default: '262144',
    example: '1048576',
    doc: 'yamux receive window per stream (raise it for long fat links)',
    scope: ['relay', 'agent'],
    validator: streamWindow,
  },
  {
    name: 'RELAY',
    default: '',
    example: 'relay.example.com:8000',
    doc: 'agent (required): host:port of the relay; setting it selects MODE=agent',
    scope: ['agent'],
    validator: optionalHostPort,
  },
  {
    name: 'SERVICE',
    default: '',
    example: '127.0.0.1:80',
    doc: 'agent (required): host:port of the local service to expose',
    scope: ['agent'],
    validator: optionalHostPort,
  },
  {
    name: 'REQUEST_PORT',
    default: '0',
    example: '8010',
    doc: 'agent: ask the relay for this public port; 0 = any',
    scope: ['agent'],
    validator: port,
  },
  {
    name: 'LEASE_FILE',
    default: '',
    example: '/var/lib/switchboard/lease',
    doc: 'agent: file that keeps the lease id so that a restarted agent gets its public port back; empty = memory only (reconnects keep it, restarts do not)',
    scope: ['agent'],
    validator: anyText,
  },
];

export function checkRelaySettings(cleaned: Record<string, unknown>, sourceOf: (name: string) => string): string[] {
  const problems: string[] = [];
  const secret = cleaned.AUTH_SECRET as string;
  if (cleaned.AUTH === 'secret' && secret === '') {
    problems.push(
      `${sourceOf('AUTH_SECRET')} is required with AUTH=secret (the default): agents must prove a shared secret; e.g. AUTH_SECRET=$(openssl rand -hex 32), or AUTH=none to accept any agent`,
    );
  }
  if (cleaned.AUTH === 'none' && secret !== '') {
    problems.push(`${sourceOf('AUTH_SECRET')} is set but AUTH=none would ignore it; remove one of them; e.g. AUTH=secret`);
  }
  return problems;
}

export function checkAgentSettings(cleaned: Record<string, unknown>, sourceOf: (name: string) => string): string[] {
  const problems: string[] = [];
  if (cleaned.RELAY === '') problems.push(`${sourceOf('RELAY')} is required in agent mode; e.g. RELAY=relay.example.com:8000`);
  if (cleaned.SERVICE === '') problems.push(`${sourceOf('SERVICE')} is required in agent mode; e.g. SERVICE=127.0.0.1:80`);
  return problems;
}

export function buildRelayConfig(c: Record<string, unknown>): RelayConfig {
  const auth = c.AUTH as AuthMode;
  const legacy = c.RELAY_LEGACY as RelayLegacyMode;
  return {
    relayPort: c.RELAY_PORT as number,
    publicPorts: c.PUBLIC_PORTS as PortRange,
    publicHost: (c.PUBLIC_HOST as string) || (c.HOST as string),
    authSecret: c.AUTH_SECRET as string,
    auth,
    legacyAllowed: legacy === 'true' || (legacy === 'auto' && auth === 'none'),
    leaseTtlMs: c.LEASE_TTL_MS as number,
    visitorWaitMs: c.VISITOR_WAIT_MS as number,
    streamWindowBytes: c.STREAM_WINDOW_BYTES as number,
  };
}

export function buildAgentConfig(c: Record<string, unknown>): AgentConfig {
  return {
    relay: c.RELAY as HostPort,
    service: c.SERVICE as HostPort,
    authSecret: c.AUTH_SECRET as string,
    requestPort: c.REQUEST_PORT as number,
    streamWindowBytes: c.STREAM_WINDOW_BYTES as number,
    leaseFile: c.LEASE_FILE as string,
  };
}
