/**
 * One public port of the relay and its lease (DESIGN §7): the listener visitors connect to, the tunnel that serves them,
 * and the visitors waiting while the agent is away.
 *
 * Lifecycle: bound for an agent (attached) → the agent's session ends → the port stays reserved for LEASE_TTL_MS and
 * visitors arriving meanwhile wait up to VISITOR_WAIT_MS (at most MAX_WAITING_VISITORS of them) → the same agent comes back
 * with the lease id (attached again, waiting visitors served at once) or the lease expires (listener closed, waiters
 * closed, port back in the pool). Legacy (muxado v1) tunnels have no lease: their port is released when they leave.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import { bindWithFallback, KEEPALIVE_INITIAL_DELAY_MS, remoteAddressOf, tuneSocket } from '../../net/listen.js';
import { splice } from './splice.js';
import type { Tunnel } from './tunnel.js';

/** Visitors that may wait per port while its agent is away; more are closed at once (a bound on sockets and memory). */
export const MAX_WAITING_VISITORS = 64;

export interface PublicPortOptions {
  port: number;
  host: string;
  /** Random lease id (hex); undefined for legacy tunnels, which cannot reclaim a port. */
  leaseId: string | undefined;
  leaseTtlMs: number;
  visitorWaitMs: number;
  maxClients: number;
  mode: string;
  log: Logger;
  metrics: Metrics;
  /** Called once the port is released (lease expired, or a legacy tunnel left). */
  onRelease: (port: PublicPort) => void;
}

interface WaitingVisitor {
  socket: Socket;
  timer: NodeJS.Timeout;
}

export class PublicPort {
  readonly server: Server;
  tunnel: Tunnel | undefined;
  /** Last agent address seen (kept while away, for /status). */
  agent = '';
  protocol: Tunnel['protocol'] = 'yamux';
  streams = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** Set while the agent is away: when the lease ends. */
  leaseExpiresAt: number | undefined;
  private readonly waiting = new Set<WaitingVisitor>();
  private readonly visitors = new Set<Socket>();
  private expiryTimer: NodeJS.Timeout | undefined;
  private released = false;
  private boundPort = 0;
  private boundHost = '';
  private accepting = true;

  constructor(readonly options: PublicPortOptions) {
    this.server = createServer({ allowHalfOpen: true, noDelay: true, keepAlive: true, keepAliveInitialDelay: KEEPALIVE_INITIAL_DELAY_MS });
    this.server.on('connection', (socket) => this.accept(socket));
    this.server.on('error', (error) => options.log.error({ err: error, publicPort: this.port }, 'public port listener error'));
  }

  get leaseId(): string | undefined {
    return this.options.leaseId;
  }

  get port(): number {
    return this.boundPort || this.options.port;
  }

  get host(): string {
    return this.boundHost || this.options.host;
  }

  get waitingCount(): number {
    return this.waiting.size;
  }

  /** Binds the port; rejects with the listen error (EADDRINUSE, EACCES, …). */
  async bind(): Promise<void> {
    this.boundHost = await bindWithFallback(
      this.options.host,
      (host) =>
        new Promise<void>((resolve, reject) => {
          const onError = (error: Error) => reject(error);
          this.server.once('error', onError);
          this.server.listen({ host, port: this.options.port, ipv6Only: false, exclusive: true }, () => {
            this.server.off('error', onError);
            resolve();
          });
        }),
      this.options.log,
    );
    this.boundPort = (this.server.address() as AddressInfo).port;
  }

  /** The agent is here (first bind or re-attach): waiting visitors are served now. */
  attach(tunnel: Tunnel): void {
    const previous = this.tunnel;
    if (previous) {
      // The agent came back before its old session was found dead: the new session takes over.
      this.tunnel = undefined;
      this.options.metrics.tunnelsActive.dec();
      previous.close();
    }
    this.options.metrics.tunnelsActive.inc();
    clearTimeout(this.expiryTimer);
    this.leaseExpiresAt = undefined;
    this.tunnel = tunnel;
    this.agent = tunnel.agent;
    this.protocol = tunnel.protocol;
    tunnel.onClose(() => this.detach(tunnel));
    for (const visitor of [...this.waiting]) {
      this.stopWaiting(visitor);
      this.serve(visitor.socket);
    }
  }

  /** The agent's session ended: keep the lease for LEASE_TTL_MS (legacy tunnels: release now). */
  detach(tunnel: Tunnel): void {
    if (this.tunnel !== tunnel || this.released) return;
    this.tunnel = undefined;
    this.options.metrics.tunnelsActive.dec();
    if (this.options.leaseId === undefined || this.options.leaseTtlMs === 0 || !this.accepting) {
      this.release('agent left');
      return;
    }
    this.leaseExpiresAt = Date.now() + this.options.leaseTtlMs;
    this.expiryTimer = setTimeout(() => this.release('lease expired'), this.options.leaseTtlMs);
    this.expiryTimer.unref();
    this.options.log.info({ publicPort: this.port, agent: this.agent, leaseTtlMs: this.options.leaseTtlMs }, 'agent away; lease kept');
  }

  /** Stops accepting visitors and closes the waiting ones (drain); the tunnel's streams are drained by the engine. */
  stopAccepting(): void {
    this.accepting = false;
    if (this.server.listening) this.server.close();
    for (const visitor of [...this.waiting]) {
      this.stopWaiting(visitor);
      visitor.socket.destroy();
    }
  }

  /** Closes the listener, waiting visitors and any remaining visitor; the port returns to the pool. */
  release(why: string): void {
    if (this.released) return;
    this.released = true;
    clearTimeout(this.expiryTimer);
    this.stopAccepting();
    for (const socket of this.visitors) socket.destroy();
    this.options.log.info({ publicPort: this.port, agent: this.agent, reason: why }, 'public port released');
    this.options.onRelease(this);
  }

  get isReleased(): boolean {
    return this.released;
  }

  private accept(socket: Socket): void {
    const { metrics, mode, log, maxClients } = this.options;
    socket.on('error', (error) => log.debug({ err: error, publicPort: this.port }, 'visitor socket error'));
    if (!this.accepting || this.visitors.size + this.waiting.size >= maxClients) {
      metrics.connectionsRejected.inc({ reason: 'max_clients' });
      socket.destroy();
      return;
    }
    tuneSocket(socket);
    metrics.connectionsTotal.inc({ mode, listener: 'public' });
    metrics.connectionsActive.inc({ mode, listener: 'public' });
    socket.once('close', () => metrics.connectionsActive.dec({ mode, listener: 'public' }));
    if (this.tunnel && !this.tunnel.closed) this.serve(socket);
    else this.wait(socket);
  }

  private wait(socket: Socket): void {
    const { metrics, visitorWaitMs, log } = this.options;
    if (this.waiting.size >= MAX_WAITING_VISITORS || visitorWaitMs === 0 || this.released) {
      metrics.connectionsRejected.inc({ reason: 'agent_away' });
      socket.destroy();
      return;
    }
    // Paused: whatever the visitor sends stays in the kernel until a stream exists for it.
    socket.pause();
    const visitor: WaitingVisitor = {
      socket,
      timer: setTimeout(() => {
        this.stopWaiting(visitor);
        metrics.connectionsRejected.inc({ reason: 'visitor_wait_timeout' });
        log.debug({ publicPort: this.port, visitor: remoteAddressOf(socket) }, 'visitor waited too long for the agent');
        socket.destroy();
      }, visitorWaitMs),
    };
    visitor.timer.unref();
    this.waiting.add(visitor);
    socket.once('close', () => this.stopWaiting(visitor));
  }

  private stopWaiting(visitor: WaitingVisitor): void {
    clearTimeout(visitor.timer);
    this.waiting.delete(visitor);
  }

  private serve(socket: Socket): void {
    if (socket.destroyed) return;
    const tunnel = this.tunnel;
    const stream = tunnel?.openStream();
    if (!tunnel || !stream || stream instanceof Error) {
      // The session is going away (GoAway, closing): treat the visitor as one arriving while the agent is away.
      this.wait(socket);
      return;
    }
    const { metrics, log } = this.options;
    stream.on('error', (error) => log.debug({ err: error, publicPort: this.port }, 'tunnel stream error'));
    this.visitors.add(socket);
    this.streams++;
    metrics.streamsActive.inc();
    const hot = metrics.hot;
    splice(
      socket,
      stream,
      {
        fromSocket: (n) => {
          this.bytesIn += n;
          hot.bytesIn += n;
        },
        fromStream: (n) => {
          this.bytesOut += n;
          hot.bytesOut += n;
        },
      },
      () => {
        this.visitors.delete(socket);
        this.streams--;
        metrics.streamsActive.dec();
      },
    );
    socket.resume();
  }
}
