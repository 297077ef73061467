/**
 * The one table of settings. The envalid schema, the alias folding, `.env.example` and README's settings table are all
 * checked against it (test/config/docs.test.ts), so a setting has the same name and default everywhere.
 */
import { GROUPS_SETTINGS } from './modes/groups.js';
import { MUX_SETTINGS } from './modes/mux.js';
import { RELAY_SETTINGS } from './modes/relay.js';
import { SHARE_SETTINGS } from './modes/share.js';
import { LOG_LEVELS, MODES, type SettingDefinition } from './types.js';
import {
  bindHost,
  flag,
  groupAddressList,
  hostPortList,
  nonEmptyText,
  nonNegativeInt,
  oneOf,
  optionalPort,
  port,
  positiveInt,
} from './validators.js';

export * from './types.js';

/** Settings of every mode (DESIGN §1). */
export const COMMON_SETTINGS: readonly SettingDefinition[] = [
  {
    name: 'MODE',
    default: undefined,
    example: 'groups',
    doc: 'groups, mux, share, relay or agent; inferred when unset: mux if TARGET is set, share if UPSTREAM is, agent if RELAY is, else groups',
    scope: 'common',
    validator: oneOf(MODES),
  },
  {
    name: 'HOST',
    aliases: ['socketforwarder.host_address'],
    default: '::',
    example: '0.0.0.0',
    doc: 'bind address of the data listeners; :: takes IPv4 and IPv6 and falls back to 0.0.0.0 where IPv6 is disabled',
    scope: 'common',
    validator: bindHost,
  },
  {
    name: 'HTTP_PORT',
    default: '9502',
    example: '9502',
    doc: 'sidecar port (/livez, /readyz, /metrics, /status); 0 = any free port, off = no sidecar',
    scope: 'common',
    validator: optionalPort,
  },
  {
    name: 'HTTP_HOST',
    default: '::',
    example: '127.0.0.1',
    doc: 'sidecar bind address, independent of HOST',
    scope: 'common',
    validator: bindHost,
  },
  {
    name: 'LOG_LEVEL',
    default: 'info',
    example: 'debug',
    doc: 'fatal, error, warn, info, debug, trace or silent (socketforwarder.debug, when present, means debug)',
    scope: 'common',
    validator: oneOf(LOG_LEVELS),
  },
  {
    name: 'LOG_FORMAT',
    default: 'json',
    example: 'pretty',
    doc: 'json, or pretty (needs the dev dependency pino-pretty, so not in the image)',
    scope: 'common',
    validator: oneOf(['json', 'pretty'] as const),
  },
  {
    name: 'MAX_CLIENTS',
    default: '1024',
    example: '1024',
    doc: 'connections per listener; beyond it new connections are closed at once and counted',
    scope: 'common',
    validator: positiveInt,
  },
  {
    name: 'CLIENT_BUFFER_BYTES',
    default: '262144',
    example: '262144',
    doc: 'bytes one receiver may be behind the fastest receiver before SLOW_CLIENT applies',
    scope: 'common',
    validator: positiveInt,
  },
  {
    name: 'MAX_BUFFERED_BYTES',
    default: '67108864',
    example: '67108864',
    doc: 'all bytes queued for receivers in the process; past it the receiver furthest behind gets SLOW_CLIENT first',
    scope: 'common',
    validator: positiveInt,
  },
  {
    name: 'RECONNECT_MIN_MS',
    default: '200',
    example: '200',
    doc: 'first delay of the exponential backoff (with jitter) for every outgoing connection',
    scope: 'common',
    validator: positiveInt,
  },
  {
    name: 'RECONNECT_MAX_MS',
    default: '10000',
    example: '10000',
    doc: 'longest delay of that backoff',
    scope: 'common',
    validator: positiveInt,
  },
  {
    name: 'SHUTDOWN_GRACE_MS',
    default: '10000',
    example: '10000',
    doc: 'on SIGTERM/SIGINT: how long queued bytes may take to flush before connections are closed and the process exits 0',
    scope: 'common',
    validator: nonNegativeInt,
  },

];

/** Settings of each mode: one file per mode under modes/, in the order README shows them. */
export const SETTINGS: readonly SettingDefinition[] = [
  ...COMMON_SETTINGS,
  ...GROUPS_SETTINGS,
  ...MUX_SETTINGS,
  ...SHARE_SETTINGS,
  ...RELAY_SETTINGS,
];

/** Names that are not settings of their own but switch something on by being present. */
export const PRESENCE_ALIASES = {
  /** SocketForwarder's debug switch: present (whatever its value) means LOG_LEVEL=debug. */
  'socketforwarder.debug': { setting: 'LOG_LEVEL', value: 'debug' },
} as const;

/** Setting either of these turns on the SocketForwarder profile (DESIGN §1). */
export const SOCKETFORWARDER_PROFILE_TRIGGERS = ['socketforwarder.tcp.port', 'socketforwarder.udp.port'] as const;

export const SETTINGS_BY_NAME: ReadonlyMap<string, SettingDefinition> = new Map(SETTINGS.map((s) => [s.name, s]));
