/**
 * The one table of settings. The envalid schema, the alias folding, `.env.example` and README's settings table are all
 * checked against it (test/config/docs.test.ts), so a setting has the same name and default everywhere.
 */
import type { ValidatorSpec } from 'envalid';
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

export const MODES = ['groups', 'mux', 'share', 'relay', 'agent'] as const;
export type Mode = (typeof MODES)[number];

/** Modes this build can run. The others are named in DESIGN.md and refused with a clear message until they land. */
export const AVAILABLE_MODES: readonly Mode[] = ['groups'];

export const SLOW_CLIENT_POLICIES = ['disconnect', 'drop'] as const;
export type SlowClientPolicy = (typeof SLOW_CLIENT_POLICIES)[number];

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export interface SettingDefinition {
  /** The canonical UPPER_SNAKE name. */
  name: string;
  /** Other names accepted for it (SocketForwarder's dotted names). */
  aliases?: readonly string[];
  /** The default as text, exactly as README and .env.example show it; undefined = required (or inferred, see MODE). */
  default: string | undefined;
  /** A valid value for the "e.g." part of error messages. */
  example: string;
  /** One line for .env.example and README. */
  doc: string;
  /** `common`, or the modes the setting belongs to (setting it in another mode is an error). */
  scope: 'common' | readonly Mode[];
  /** Never logged or shown in /status (AUTH_SECRET). */
  secret?: boolean;
  // envalid's validator types are invariant in T; the parsed values are typed again in load.ts.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  validator: (spec?: any) => ValidatorSpec<any>;
}

export const SETTINGS: readonly SettingDefinition[] = [
  // Common settings (DESIGN §1).
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

  // groups mode (DESIGN §4).
  {
    name: 'TCP_PORT',
    aliases: ['socketforwarder.tcp.port'],
    default: '7100',
    example: '7100',
    doc: 'TCP port for group members; off disables TCP',
    scope: ['groups'],
    validator: optionalPort,
  },
  {
    name: 'UDP_PORT',
    aliases: ['socketforwarder.udp.port'],
    default: '7100',
    example: '7100',
    doc: 'UDP port of the one UDP group; off disables UDP',
    scope: ['groups'],
    validator: optionalPort,
  },
  {
    name: 'PREFIX',
    aliases: ['socketforwarder.new_client_prefix'],
    default: 'SOCKETFORWARDER-NEW:',
    example: 'SOCKETFORWARDER-NEW:',
    doc: 'join prefix (case-sensitive) of a TCP join line and a UDP registration',
    scope: ['groups'],
    validator: nonEmptyText,
  },
  {
    name: 'JOIN_TIMEOUT_MS',
    default: '5000',
    example: '5000',
    doc: 'a TCP client that has not completed its join line by then is closed',
    scope: ['groups'],
    validator: positiveInt,
  },
  {
    name: 'JOIN_QUIET_MS',
    default: '20',
    example: '20',
    doc: 'a join line without a newline ends when no byte has arrived for this long',
    scope: ['groups'],
    validator: positiveInt,
  },
  {
    name: 'MAX_MESSAGE_BYTES',
    aliases: ['socketforwarder.max_read_in_size'],
    default: '10240',
    example: '10240',
    doc: 'longest join line and largest UDP datagram (a larger datagram is dropped and counted)',
    scope: ['groups'],
    validator: positiveInt,
  },
  {
    name: 'TCP_PRECONFIG_ADDRESSES',
    aliases: ['socketforwarder.tcp.preconfig_addresses', 'tcp.preconfig_addresses'],
    default: '',
    example: 'sensors:192.168.1.20:0,plc:[::1]:0',
    doc: 'group:host:port,… clients from host (and port unless it is 0) join group without a join line',
    scope: ['groups'],
    validator: groupAddressList,
  },
  {
    name: 'TCP_DIAL_ADDRESSES',
    default: '',
    example: 'sensors:192.168.1.20:4001',
    doc: 'group:host:port,… switchboard dials these, keeps them in group and reconnects with backoff',
    scope: ['groups'],
    validator: groupAddressList,
  },
  {
    name: 'UDP_PRECONFIG_ADDRESSES',
    aliases: ['socketforwarder.udp.preconfig_addresses', 'udp.preconfig_addresses'],
    default: '',
    example: '192.168.1.30:9999,[::1]:9999',
    doc: 'host:port,… UDP peers that receive from start-up',
    scope: ['groups'],
    validator: hostPortList,
  },
  {
    name: 'UDP_OPEN',
    default: 'false',
    example: 'true',
    doc: 'forward datagrams from unregistered senders too (true in the SocketForwarder profile)',
    scope: ['groups'],
    validator: flag,
  },
  {
    name: 'UDP_ECHO_SENDER',
    default: 'false',
    example: 'true',
    doc: 'a registered sender also receives its own datagrams (true in the SocketForwarder profile)',
    scope: ['groups'],
    validator: flag,
  },
  {
    name: 'UDP_PEER_TTL_MS',
    default: '0',
    example: '60000',
    doc: 'registered UDP peers expire after this long without a datagram or re-registration; 0 = never',
    scope: ['groups'],
    validator: nonNegativeInt,
  },
  {
    name: 'MAX_UDP_PEERS',
    default: '1024',
    example: '1024',
    doc: 'UDP registrations beyond this many peers are refused and counted',
    scope: ['groups'],
    validator: positiveInt,
  },
  {
    name: 'SLOW_CLIENT',
    default: 'disconnect',
    example: 'drop',
    doc: 'what happens to a receiver CLIENT_BUFFER_BYTES behind: disconnect (closed and counted) or drop (its bytes are discarded and counted until it catches up)',
    scope: ['groups'],
    validator: oneOf(SLOW_CLIENT_POLICIES),
  },
];

/** Names that are not settings of their own but switch something on by being present. */
export const PRESENCE_ALIASES = {
  /** SocketForwarder's debug switch: present (whatever its value) means LOG_LEVEL=debug. */
  'socketforwarder.debug': { setting: 'LOG_LEVEL', value: 'debug' },
} as const;

/** Setting either of these turns on the SocketForwarder profile (DESIGN §1). */
export const SOCKETFORWARDER_PROFILE_TRIGGERS = ['socketforwarder.tcp.port', 'socketforwarder.udp.port'] as const;

export const SETTINGS_BY_NAME: ReadonlyMap<string, SettingDefinition> = new Map(SETTINGS.map((s) => [s.name, s]));
