/**
 * relay mode (DESIGN §7): agents connect to RELAY_PORT, prove AUTH_SECRET, and get a public port; every visitor of that
 * port becomes a yamux stream to the agent. A connection without the preamble is a tcp-relay service (muxado v1), served
 * or refused per RELAY_LEGACY. Ports are leased: an agent that comes back within LEASE_TTL_MS with its lease id gets its
 * port back, and visitors arriving meanwhile wait (public-port.ts).
 */
import type { Socket } from 'node:net';
import type { RelayModeConfig } from '../../config/load.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import { formatHostPort } from '../../net/address.js';
import { remoteAddressOf, TcpListener, type ListenerInfo } from '../../net/listen.js';
import type { Engine, EngineContext } from '../engine.js';
import { HANDSHAKE_TIMEOUT_MS, newLeaseId, PREAMBLE, sameLeaseId, type BindMessage } from './control/messages.js';
import { serveControl, type BindResult } from './control/relay-side.js';
import { Muxado1Session, serveTcpRelayHandshake, tcpRelayAddress } from './muxado1/session.js';
import { PublicPort } from './public-port.js';
import { Muxado1Tunnel, YamuxTunnel, type Tunnel } from './tunnel.js';
import { YamuxSession, type YamuxStream } from './yamux/session.js';

/** yamux keepalive towards agents: a dead agent (no ping answer) is found within interval + timeout. */
export const AGENT_PING_INTERVAL_MS = 15_000;
export const AGENT_PING_TIMEOUT_MS = 10_000;

export interface RelayEngineOptions {
  /** Overrides for tests (shorter pings). */
  pingIntervalMs?: number;
  pingTimeoutMs?: number;
  handshakeTimeoutMs?: number;
}

export class RelayEngine implements Engine {
  private readonly config: RelayModeConfig;
  private readonly log: Logger;
  private readonly metrics: Metrics;
  private readonly listener: TcpListener;
  private readonly ports = new Map<number, PublicPort>();
  private readonly tunnels = new Set<Tunnel>();
  private readonly handshaking = new Set<Socket>();
  private nextCandidate: number;
  private started = false;
  private draining = false;
  private readonly pingIntervalMs: number;
  private readonly pingTimeoutMs: number;
  private readonly handshakeTimeoutMs: number;

  constructor(context: EngineContext & { config: RelayModeConfig }, options: RelayEngineOptions = {}) {
    this.config = context.config;
    this.log = context.log.child({ component: 'relay' });
    this.metrics = context.metrics;
    this.pingIntervalMs = options.pingIntervalMs ?? AGENT_PING_INTERVAL_MS;
    this.pingTimeoutMs = options.pingTimeoutMs ?? AGENT_PING_TIMEOUT_MS;
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
    this.nextCandidate = this.config.relay.publicPorts.first;
    this.listener = new TcpListener({
      name: 'relay',
      mode: 'relay',
      host: this.config.host,
      port: this.config.relay.relayPort,
      maxClients: this.config.maxClients,
      log: this.log,
      metrics: this.metrics,
      onConnection: (socket) => this.onConnection(socket),
    });
  }

  get ready(): boolean {
    return this.started && !this.draining;
  }

  async start(): Promise<void> {
    const { relay } = this.config;
    if (relay.auth === 'none') this.log.warn('AUTH=none: any agent that can reach RELAY_PORT gets a public port');
    await this.listener.start();
    this.log.info(
      { publicPorts: `${relay.publicPorts.first}-${relay.publicPorts.last}`, publicHost: relay.publicHost, auth: relay.auth, legacy: relay.legacyAllowed },
      'relay ready for agents',
    );
    this.started = true;
  }

  listeners(): ListenerInfo[] {
    const publicListeners = [...this.ports.values()]
      .filter((p) => !p.isReleased)
      .map((p): ListenerInfo => ({ name: `public:${p.port}`, protocol: 'tcp', host: p.host, port: p.port }));
    return [this.listener.info(), ...publicListeners];
  }

  status(): Record<string, unknown> {
    return {
      tunnels: [...this.ports.values()].map((p) => ({
        publicPort: p.port,
        agent: p.agent,
        protocol: p.protocol,
        state: p.tunnel ? 'connected' : 'away',
        streams: p.streams,
        bytesIn: p.bytesIn,
        bytesOut: p.bytesOut,
        leaseExpiresAt: p.leaseExpiresAt === undefined ? null : new Date(p.leaseExpiresAt).toISOString(),
        waitingVisitors: p.waitingCount,
      })),
    };
  }

  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    this.listener.stopAccepting();
    for (const socket of this.handshaking) socket.destroy();
    for (const port of this.ports.values()) port.stopAccepting();
    // GoAway to every agent; each session closes once its visitor streams finish, or at the deadline.
    await Promise.all([...this.tunnels].map((tunnel) => tunnel.drain(graceMs)));
    for (const port of [...this.ports.values()]) port.release('relay stopping');
  }

  // ---- agent connections ----

  /** Reads the first bytes: the preamble means a switchboard agent (yamux); anything else a tcp-relay service. */
  private onConnection(socket: Socket): void {
    const agent = formatHostPort(remoteAddressOf(socket), socket.remotePort ?? 0);
    const log = this.log.child({ agent });
    this.handshaking.add(socket);
    const timer = setTimeout(() => {
      log.info('no handshake from agent in time; connection closed');
      this.metrics.connectionsRejected.inc({ reason: 'handshake_timeout' });
      socket.destroy();
    }, this.handshakeTimeoutMs);
    timer.unref();
    socket.once('close', () => {
      clearTimeout(timer);
      this.handshaking.delete(socket);
    });

    let head: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const compared = Math.min(head.length, PREAMBLE.length);
      const isPreamble = head.subarray(0, compared).equals(PREAMBLE.subarray(0, compared));
      if (isPreamble && head.length < PREAMBLE.length) return;
      socket.off('data', onData);
      socket.pause();
      if (isPreamble) {
        const rest = head.subarray(PREAMBLE.length);
        if (rest.length > 0) socket.unshift(rest);
        this.startYamux(socket, agent, log, timer);
      } else {
        this.startLegacy(socket, head, agent, log, timer);
      }
    };
    socket.on('data', onData);
  }

  private startYamux(socket: Socket, agent: string, log: Logger, handshakeTimer: NodeJS.Timeout): void {
    const session = new YamuxSession(socket, 'server', {
      streamWindowBytes: this.config.relay.streamWindowBytes,
      keepAliveIntervalMs: this.pingIntervalMs,
      pingTimeoutMs: this.pingTimeoutMs,
    });
    socket.resume();
    const tunnel = new YamuxTunnel(session, agent);
    let control: YamuxStream | undefined;
    session.on('stream', (stream) => {
      stream.on('error', () => {});
      if (control) {
        // Only the relay opens streams after the control stream (one per visitor).
        stream.destroy();
        return;
      }
      control = stream;
      const authSecret = this.config.relay.auth === 'none' ? undefined : this.config.relay.authSecret;
      void serveControl(session, stream, { authSecret, log, bind: (request) => this.bind(request, tunnel, log) }).then((bound) => {
        clearTimeout(handshakeTimer);
        this.handshaking.delete(socket);
        if (!bound) {
          this.metrics.connectionsRejected.inc({ reason: 'agent_handshake' });
          session.close();
        }
      });
    });
    session.once('close', (reason, error) => {
      clearTimeout(handshakeTimer);
      this.tunnels.delete(tunnel);
      log.info({ reason, err: error?.message }, 'agent session closed');
    });
    this.tunnels.add(tunnel);
  }

  private startLegacy(socket: Socket, head: Buffer, agent: string, log: Logger, handshakeTimer: NodeJS.Timeout): void {
    if (!this.config.relay.legacyAllowed) {
      log.warn(
        { code: 'legacy_refused' },
        'connection without the SWBMUX1 preamble (a tcp-relay / muxado v1 service?) refused: RELAY_LEGACY is false, or auto with a secret set; set RELAY_LEGACY=true to serve them',
      );
      this.metrics.connectionsRejected.inc({ reason: 'legacy_refused' });
      socket.destroy();
      return;
    }
    const session = new Muxado1Session(socket, { role: 'server', head });
    socket.resume();
    const tunnel = new Muxado1Tunnel(session, agent);
    this.tunnels.add(tunnel);
    session.once('close', (info) => {
      clearTimeout(handshakeTimer);
      this.tunnels.delete(tunnel);
      log.info({ reason: info.reason }, 'legacy (muxado v1) session closed');
    });
    // tcp-relay takes its port from the pool once the service's first stream arrives: bytes that never open a stream
    // (garbage, a scanner) hold no port.
    let allocated: PublicPort | undefined;
    const address = async (): Promise<string> => {
      const port = await this.allocateAny(undefined);
      if (typeof port === 'string') throw new Error(port);
      if (session.closed) {
        port.release('legacy session closed while binding');
        throw new Error('session closed');
      }
      allocated = port;
      return tcpRelayAddress(port.port);
    };
    void serveTcpRelayHandshake(session, address, this.handshakeTimeoutMs).then((error) => {
      clearTimeout(handshakeTimer);
      this.handshaking.delete(socket);
      if (error || session.closed || !allocated) {
        log.warn({ err: error?.message }, 'legacy (muxado v1) handshake failed; session closed');
        if (allocated) allocated.release('legacy handshake failed');
        session.close();
        return;
      }
      allocated.attach(tunnel);
      log.info({ publicPort: allocated.port, protocol: 'muxado1' }, 'legacy tcp-relay service bound');
    });
  }

  // ---- ports and leases ----

  private async bind(request: BindMessage, tunnel: Tunnel, log: Logger): Promise<BindResult> {
    const { leaseTtlMs, publicPorts } = this.config.relay;
    if (this.draining) return { code: 'pool_exhausted', message: 'the relay is shutting down' };
    if (request.leaseId !== undefined) {
      const leased = [...this.ports.values()].find((p) => p.leaseId !== undefined && sameLeaseId(p.leaseId, request.leaseId!));
      if (leased && !leased.isReleased && (request.port === undefined || request.port === leased.port)) {
        leased.attach(tunnel);
        log.info({ publicPort: leased.port, reattached: true }, 'agent bound');
        return { port: leased.port, leaseId: leased.leaseId!, leaseTtlMs };
      }
      // An unknown or expired lease id: the agent gets a port as if it had none (never the port of another lease).
    }
    let result: PublicPort | 'port_in_use' | 'port_not_allowed' | 'pool_exhausted';
    if (request.port !== undefined) {
      const inRange = publicPorts.first === 0 || (request.port >= publicPorts.first && request.port <= publicPorts.last);
      if (!inRange) {
        return { code: 'port_not_allowed', message: `port ${request.port} is outside PUBLIC_PORTS ${publicPorts.first}-${publicPorts.last}` };
      }
      result = this.ports.has(request.port) ? 'port_in_use' : await this.tryBind(request.port, newLeaseId());
    } else {
      result = await this.allocateAny(newLeaseId());
    }
    if (typeof result === 'string') {
      const message =
        result === 'pool_exhausted'
          ? `every port of PUBLIC_PORTS ${publicPorts.first}-${publicPorts.last} is taken`
          : result === 'port_in_use'
            ? `port ${request.port} is taken`
            : `port ${request.port} cannot be bound here`;
      return { code: result, message };
    }
    if (tunnel.closed) {
      result.release('agent left while binding');
      return { code: 'pool_exhausted', message: 'session closed' };
    }
    result.attach(tunnel);
    log.info({ publicPort: result.port }, 'agent bound');
    return { port: result.port, leaseId: result.leaseId!, leaseTtlMs };
  }

  /** A free port of PUBLIC_PORTS (round-robin, so a just-released port is not handed out again at once). */
  private async allocateAny(leaseId: string | undefined): Promise<PublicPort | 'pool_exhausted'> {
    const { first, last } = this.config.relay.publicPorts;
    if (first === 0) {
      const any = await this.tryBind(0, leaseId);
      return typeof any === 'string' ? 'pool_exhausted' : any;
    }
    const size = last - first + 1;
    for (let i = 0; i < size; i++) {
      const candidate = first + ((this.nextCandidate - first + i) % size);
      if (this.ports.has(candidate)) continue;
      const bound = await this.tryBind(candidate, leaseId);
      if (typeof bound !== 'string') {
        this.nextCandidate = first + ((candidate - first + 1) % size);
        return bound;
      }
    }
    return 'pool_exhausted';
  }

  private async tryBind(port: number, leaseId: string | undefined): Promise<PublicPort | 'port_in_use' | 'port_not_allowed'> {
    const { relay } = this.config;
    const publicPort = new PublicPort({
      port,
      host: relay.publicHost,
      leaseId,
      leaseTtlMs: relay.leaseTtlMs,
      visitorWaitMs: relay.visitorWaitMs,
      maxClients: this.config.maxClients,
      mode: 'relay',
      log: this.log,
      metrics: this.metrics,
      onRelease: (released) => {
        if (this.ports.get(released.port) === released) this.ports.delete(released.port);
      },
    });
    // Reserved before the (asynchronous) bind so that two agents never race for one port.
    if (port !== 0) this.ports.set(port, publicPort);
    try {
      await publicPort.bind();
    } catch (error) {
      if (port !== 0) this.ports.delete(port);
      const code = (error as NodeJS.ErrnoException).code;
      this.log.debug({ port, code }, 'public port cannot be bound');
      return code === 'EACCES' ? 'port_not_allowed' : 'port_in_use';
    }
    this.ports.set(publicPort.port, publicPort);
    return publicPort;
  }
}
