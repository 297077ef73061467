/**
 * groups mode settings (DESIGN §4) and their typed form.
 */
import type { GroupAddress, HostPort } from '../../net/address.js';
import { SLOW_CLIENT_POLICIES, type SettingDefinition, type SlowClientPolicy } from '../types.js';
import { flag, groupAddressList, hostPortList, nonEmptyText, nonNegativeInt, oneOf, optionalPort, portOrNull, positiveInt } from '../validators.js';

export interface GroupsConfig {
  tcpPort: number | null;
  udpPort: number | null;
  prefix: string;
  joinTimeoutMs: number;
  joinQuietMs: number;
  maxMessageBytes: number;
  tcpPreconfigAddresses: GroupAddress[];
  tcpDialAddresses: GroupAddress[];
  udpPreconfigAddresses: HostPort[];
  udpOpen: boolean;
  udpEchoSender: boolean;
  udpPeerTtlMs: number;
  maxUdpPeers: number;
  slowClient: SlowClientPolicy;
}

export const GROUPS_SETTINGS: readonly SettingDefinition[] = [
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
    scope: ['groups', 'share'],
    validator: oneOf(SLOW_CLIENT_POLICIES),
  },
];

/** Cross-setting rules of the mode; each problem is one line. */
export function checkGroupsSettings(cleaned: Record<string, unknown>, sourceOf: (name: string) => string): string[] {
  if (portOrNull(cleaned.TCP_PORT) === null && portOrNull(cleaned.UDP_PORT) === null) {
    return [`${sourceOf('TCP_PORT')} and ${sourceOf('UDP_PORT')} are both off, so groups mode has nothing to serve; e.g. TCP_PORT=7100`];
  }
  return [];
}

export function buildGroupsConfig(c: Record<string, unknown>): GroupsConfig {
  return {
    tcpPort: portOrNull(c.TCP_PORT),
    udpPort: portOrNull(c.UDP_PORT),
    prefix: c.PREFIX as string,
    joinTimeoutMs: c.JOIN_TIMEOUT_MS as number,
    joinQuietMs: c.JOIN_QUIET_MS as number,
    maxMessageBytes: c.MAX_MESSAGE_BYTES as number,
    tcpPreconfigAddresses: c.TCP_PRECONFIG_ADDRESSES as GroupAddress[],
    tcpDialAddresses: c.TCP_DIAL_ADDRESSES as GroupAddress[],
    udpPreconfigAddresses: c.UDP_PRECONFIG_ADDRESSES as HostPort[],
    udpOpen: c.UDP_OPEN as boolean,
    udpEchoSender: c.UDP_ECHO_SENDER as boolean,
    udpPeerTtlMs: c.UDP_PEER_TTL_MS as number,
    maxUdpPeers: c.MAX_UDP_PEERS as number,
    slowClient: c.SLOW_CLIENT as SlowClientPolicy,
  };
}
