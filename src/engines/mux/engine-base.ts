/**
 * What both mux engines share (the frame-based MuxEngine and the streaming HttpMuxEngine): the client listener, the one
 * Upstream built from the settings, the set of clients for /status, UPSTREAM_IDLE_CLOSE_MS, and the shape of a drain
 * (stop accepting, let what is queued or in flight be answered within the grace period, then end every client socket).
 * Each engine supplies what differs: how a connection becomes a client, how busy the core is, and what a drain stops.
 */
import type { Socket } from 'node:net';
import type { MuxModeConfig } from '../../config/load.js';
import type { Logger } from '../../log.js';
import { TcpListener, type ListenerInfo } from '../../net/listen.js';
import { STATUS_MAX_CLIENTS, type Engine, type EngineContext } from '../engine.js';
import { Upstream, type UpstreamOptions } from './upstream.js';

/** How often drain() looks whether every request has been answered. */
const DRAIN_POLL_MS = 10;
/** The longest a drain waits for one client socket to close after its last answer. */
const CLIENT_CLOSE_WAIT_MS = 1000;

/** A client as /status shows it (DESIGN §2 `clients`). */
export interface MuxClientRecord {
  readonly socket: Socket;
  readonly address: string;
  readonly connectedAt: string;
  readonly bytesIn: number;
  readonly bytesOut: number;
}

export type MuxEngineContext = EngineContext & { config: MuxModeConfig };

export abstract class MuxEngineBase<C extends MuxClientRecord> implements Engine {
  protected readonly listener: TcpListener;
  protected readonly upstream: Upstream;
  protected readonly clients = new Set<C>();
  protected readonly log: Logger;
  private started = false;
  draining = false;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    protected readonly context: MuxEngineContext,
    logBindings: Record<string, string>,
    handlers: Pick<UpstreamOptions, 'onData' | 'onUp' | 'onDown'>,
  ) {
    const { config, log, metrics } = context;
    const mux = config.mux;
    this.log = log.child(logBindings);
    this.upstream = new Upstream({
      target: mux.target,
      connectTimeoutMs: mux.connectTimeoutMs,
      connectDelayMs: mux.connectDelayMs,
      reconnectMinMs: config.reconnectMinMs,
      reconnectMaxMs: config.reconnectMaxMs,
      log: this.log,
      metrics,
      ...handlers,
    });
    this.listener = new TcpListener({
      name: 'tcp',
      mode: 'mux',
      host: config.host,
      port: mux.listenPort,
      maxClients: config.maxClients,
      log: this.log,
      metrics,
      onConnection: (socket) => {
        if (this.draining) socket.destroy();
        else this.accept(socket);
      },
    });
    metrics.upstreamUp.set(0);
    metrics.queueDepthSource = () => this.queued;
  }

  /** A new client connection (not called while draining). */
  protected abstract accept(socket: Socket): void;
  /** Requests waiting for the upstream (metric queue_depth). */
  protected abstract get queued(): number;
  /** Requests in flight: the upstream is not closed as idle under them. */
  protected abstract get inflight(): number;
  /** Requests queued or in flight: a drain waits for them. */
  protected get unfinished(): number {
    return this.queued + this.inflight;
  }
  /** The drain has begun: stop reading new requests. */
  protected abstract stopTakingRequests(): void;
  /** The clients are closed: fail what is left and stop timers. */
  protected abstract stopCore(): void;
  /** The mode-specific part of /status. */
  protected abstract statusFields(): Record<string, unknown>;

  get ready(): boolean {
    return this.started && !this.draining;
  }

  async start(): Promise<void> {
    await this.listener.start();
    // Dialled at start and kept open; being unreachable is reported (/status, upstream_up), not a reason to be unready.
    this.upstream.dial();
    this.started = true;
    this.armIdleClose();
  }

  listeners(): ListenerInfo[] {
    return [this.listener.info()];
  }

  status() {
    const clients: Array<{ address: string; connectedAt: string; bytesIn: number; bytesOut: number }> = [];
    for (const client of this.clients) {
      if (clients.length >= STATUS_MAX_CLIENTS) break;
      clients.push({ address: client.address, connectedAt: client.connectedAt, bytesIn: client.bytesIn, bytesOut: client.bytesOut });
    }
    return { ...this.statusFields(), clients, clientCount: this.clients.size, upstream: this.upstream.status() };
  }

  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    this.listener.stopAccepting();
    clearTimeout(this.idleTimer);
    this.stopTakingRequests();
    const deadline = Date.now() + graceMs;
    while (this.unfinished > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
    }
    // Let the last answers reach the kernel before closing.
    await Promise.all(
      [...this.clients].map(
        ({ socket }) =>
          new Promise<void>((resolve) => {
            socket.once('close', () => resolve());
            socket.end();
            setTimeout(() => {
              socket.destroy();
              resolve();
            }, Math.max(0, Math.min(deadline - Date.now(), CLIENT_CLOSE_WAIT_MS))).unref();
          }),
      ),
    );
    this.stopCore();
    this.upstream.stop();
  }

  protected clientJoined(client: C): void {
    this.clients.add(client);
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    this.log.info({ client: client.address }, 'client joined');
  }

  /** Returns false if the client had left already. */
  protected clientRemoved(client: C, reason: string): boolean {
    if (!this.clients.delete(client)) return false;
    this.log.info({ client: client.address, reason }, 'client left');
    this.armIdleClose();
    return true;
  }

  /** UPSTREAM_IDLE_CLOSE_MS: with no clients for that long, the upstream is closed until the next request. */
  private armIdleClose(): void {
    const idleMs = this.context.config.mux.upstreamIdleCloseMs;
    if (idleMs === 0 || this.clients.size > 0 || this.draining || !this.started) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (this.clients.size === 0 && this.inflight === 0) this.upstream.closeIdle();
    }, idleMs);
    this.idleTimer.unref();
  }
}
