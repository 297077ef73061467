/**
 * The one UDP group of groups mode. A datagram `PREFIX<port>` registers its source IP with that port; `PREFIX` alone (or
 * port 0) registers the source IP and port, which is what works behind NAT. Re-registering refreshes and never duplicates.
 * Other datagrams go to every registered peer (not back to the sender unless UDP_ECHO_SENDER), from the listening socket,
 * through a bounded send queue.
 *
 * Who counts as a registered sender: a peer's own address, or the address its registration came from. The second rule
 * makes `PREFIX<port>` useful: a client that registered a receive port from its sending socket may send from that socket.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import type { CommonConfig, GroupsConfig } from '../../config/load.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import { formatHostPort, normalizeAddress } from '../../net/address.js';
import { bindWithFallback, type ListenerInfo } from '../../net/listen.js';
import { ErrorCodes, SwitchboardError } from '../../errors.js';

export const UDP_LISTENER_NAME = 'udp';

/** Bytes the kernel send queue of the UDP socket may hold before datagrams are dropped (and counted) instead of queued. */
export const UDP_SEND_QUEUE_MAX_BYTES = 4 * 1024 * 1024;

/** How often expired peers are swept, at most (they are also skipped at send time once expired). */
const TTL_SWEEP_MAX_INTERVAL_MS = 1000;

interface Peer {
  host: string;
  port: number;
  key: string;
  /** Where the registration datagram came from (may differ from host:port with `PREFIX<port>`). */
  registeredFrom: string;
  lastSeen: number;
  preconfigured: boolean;
}

export interface UdpGroupOptions {
  common: CommonConfig;
  groups: GroupsConfig;
  log: Logger;
  metrics: Metrics;
}

const peerKey = (host: string, port: number) => formatHostPort(host, port);

export class UdpGroup {
  private socket: Socket | undefined;
  private boundHost = '';
  private readonly peers = new Map<string, Peer>();
  /** registration source → peer, so that a sender is recognised by the address it registered from. */
  private readonly bySource = new Map<string, Peer>();
  private readonly prefix: Buffer;
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: UdpGroupOptions) {
    this.prefix = Buffer.from(options.groups.prefix, 'utf8');
  }

  async start(): Promise<void> {
    const { common, groups, log } = this.options;
    const port = groups.udpPort!;
    try {
      this.boundHost = await bindWithFallback(common.host, (host) => this.bind(host, port), log);
    } catch (error) {
      throw new SwitchboardError(ErrorCodes.LISTEN, `udp listener cannot bind ${common.host}:${port}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    for (const { host, port: peerPort } of groups.udpPreconfigAddresses) {
      const peer = this.addPeer(host, peerPort, peerKey(host, peerPort), true);
      if (!peer) log.warn({ peer: peerKey(host, peerPort) }, 'UDP_PRECONFIG_ADDRESSES has more entries than MAX_UDP_PEERS');
    }
    if (groups.udpPeerTtlMs > 0) {
      const interval = Math.max(10, Math.min(TTL_SWEEP_MAX_INTERVAL_MS, Math.floor(groups.udpPeerTtlMs / 2)));
      this.sweepTimer = setInterval(() => this.sweep(Date.now()), interval);
      this.sweepTimer.unref();
    }
    log.info({ listener: UDP_LISTENER_NAME, protocol: 'udp', host: this.boundHost, port: this.port }, 'listening');
  }

  get port(): number {
    return this.socket?.address().port ?? this.options.groups.udpPort ?? 0;
  }

  listenerInfo(): ListenerInfo {
    return { name: UDP_LISTENER_NAME, protocol: 'udp', host: this.boundHost, port: this.port };
  }

  status() {
    const ttl = this.options.groups.udpPeerTtlMs;
    return [...this.peers.values()].map((p) => ({
      address: p.key,
      registeredFrom: p.preconfigured ? null : p.registeredFrom,
      preconfigured: p.preconfigured,
      lastSeen: new Date(p.lastSeen).toISOString(),
      expiresAt: ttl > 0 && !p.preconfigured ? new Date(p.lastSeen + ttl).toISOString() : null,
    }));
  }

  async stop(): Promise<void> {
    clearInterval(this.sweepTimer);
    const socket = this.socket;
    if (!socket) return;
    this.socket = undefined;
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  private bind(host: string, port: number): Promise<void> {
    const ipv6 = isIP(host) === 6;
    const socket = createSocket({ type: ipv6 ? 'udp6' : 'udp4', ipv6Only: false });
    return new Promise<void>((resolve, reject) => {
      socket.once('error', (error) => {
        socket.close();
        reject(error);
      });
      socket.bind({ address: host, port }, () => {
        socket.removeAllListeners('error');
        socket.on('error', (error) => this.options.log.warn({ err: error, listener: UDP_LISTENER_NAME }, 'udp socket error'));
        socket.on('message', (message, remote) => this.onDatagram(message, remote));
        this.socket = socket;
        resolve();
      });
    });
  }

  private onDatagram(message: Buffer, remote: RemoteInfo): void {
    const { groups, metrics } = this.options;
    const hot = metrics.hot;
    hot.datagramsIn++;
    hot.bytesIn += message.length;
    if (message.length > groups.maxMessageBytes) {
      // Dropped whole, never truncated: a cut datagram would be a different message.
      hot.dropped.oversize += message.length;
      return;
    }
    const host = normalizeAddress(remote.address);
    const sourceKey = peerKey(host, remote.port);
    if (message.length >= this.prefix.length && message.compare(this.prefix, 0, this.prefix.length, 0, this.prefix.length) === 0) {
      this.register(message.subarray(this.prefix.length), host, remote.port, sourceKey);
      return;
    }

    const now = Date.now();
    const sender = this.peers.get(sourceKey) ?? this.bySource.get(sourceKey);
    if (sender && !this.expired(sender, now)) {
      sender.lastSeen = now;
    } else if (!groups.udpOpen) {
      hot.dropped.udp_unregistered += message.length;
      return;
    }
    this.forward(message, sender, sourceKey, now);
  }

  private forward(message: Buffer, sender: Peer | undefined, sourceKey: string, now: number): void {
    const { groups, metrics } = this.options;
    const socket = this.socket;
    if (!socket) return;
    const hot = metrics.hot;
    const ipv4Socket = socket.address().family === 'IPv4';
    for (const peer of this.peers.values()) {
      const isSender = peer === sender || peer.key === sourceKey;
      if (isSender && !groups.udpEchoSender) continue;
      if (this.expired(peer, now)) continue;
      if (ipv4Socket && isIP(peer.host) === 6) continue;
      if (socket.getSendQueueSize() > UDP_SEND_QUEUE_MAX_BYTES) {
        hot.dropped.udp_queue += message.length;
        continue;
      }
      // A dual-stack (udp6) socket reaches IPv4 peers through their mapped address.
      const destination = !ipv4Socket && isIP(peer.host) === 4 ? `::ffff:${peer.host}` : peer.host;
      socket.send(message, peer.port, destination);
      hot.datagramsOut++;
      hot.bytesOut += message.length;
    }
  }

  private register(portText: Buffer, host: string, sourcePort: number, sourceKey: string): void {
    const { metrics, log } = this.options;
    const text = portText.toString('latin1').trim();
    let port = sourcePort;
    if (text.length > 0) {
      const requested = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
      if (!(requested >= 0 && requested <= 65535)) {
        metrics.connectionsRejected.inc({ reason: 'udp_bad_registration' });
        log.debug({ peer: sourceKey }, 'UDP registration with a port that is not a number; ignored');
        return;
      }
      if (requested !== 0) port = requested;
    }
    const key = peerKey(host, port);
    const existing = this.peers.get(key);
    if (existing) {
      existing.lastSeen = Date.now();
      if (!existing.preconfigured && existing.registeredFrom !== sourceKey) {
        this.bySource.delete(existing.registeredFrom);
        existing.registeredFrom = sourceKey;
        this.bySource.set(sourceKey, existing);
      }
      return;
    }
    if (!this.addPeer(host, port, sourceKey, false)) {
      metrics.connectionsRejected.inc({ reason: 'max_udp_peers' });
      log.warn({ peer: key }, 'UDP registration refused: MAX_UDP_PEERS reached');
      return;
    }
    log.info({ peer: key, registeredFrom: sourceKey }, 'udp peer registered');
  }

  private addPeer(host: string, port: number, registeredFrom: string, preconfigured: boolean): Peer | undefined {
    const { groups, metrics } = this.options;
    if (this.peers.size >= groups.maxUdpPeers) return undefined;
    const key = peerKey(host, port);
    const peer: Peer = { host, port, key, registeredFrom, lastSeen: Date.now(), preconfigured };
    this.peers.set(key, peer);
    if (!preconfigured) this.bySource.set(registeredFrom, peer);
    metrics.udpPeers.set(this.peers.size);
    return peer;
  }

  private expired(peer: Peer, now: number): boolean {
    const ttl = this.options.groups.udpPeerTtlMs;
    return ttl > 0 && !peer.preconfigured && now - peer.lastSeen > ttl;
  }

  private sweep(now: number): void {
    for (const peer of this.peers.values()) {
      if (!this.expired(peer, now)) continue;
      this.peers.delete(peer.key);
      if (this.bySource.get(peer.registeredFrom) === peer) this.bySource.delete(peer.registeredFrom);
      this.options.log.info({ peer: peer.key }, 'udp peer expired');
    }
    this.options.metrics.udpPeers.set(this.peers.size);
  }
}
