/**
 * mux mode (DESIGN §5): many clients on LISTEN_PORT, one upstream at TARGET, requests framed by PROTOCOL and queued
 * fairly, each reply back to its own client. Replaces tcp-multiplexer and Modbus proxies.
 *
 *   index.ts        lifecycle: listener, clients, idle close, /status, drain
 *   dispatcher.ts   queueing, sending, matching replies, deadlines, outcomes
 *   fair-queue.ts   per-client FIFOs served round-robin
 *   upstream.ts     the one upstream connection: dial, delay, backoff, reset
 *   framers.ts      per-protocol framing, correlation and failure replies
 *   rtu-framer.ts   PROTOCOL=modbus with an rtu: target: Modbus TCP clients, RTU over TCP upstream
 *   modbus/         PROTOCOL=modbus rules, pure: READ_ONLY/WRITE_ALLOW/UNIT_MAP (policy.ts), COALESCE (coalescing.ts),
 *                   CACHE_TTL_MS (cache.ts)
 */
import type { Socket } from 'node:net';
import { effectiveMaxInflight } from '../../config/modes/mux.js';
import type { MuxModeConfig } from '../../config/load.js';
import type { Logger } from '../../log.js';
import type { FrameDecoder } from '../../protocols/framing.js';
import { remoteAddressOf, TcpListener, type ListenerInfo } from '../../net/listen.js';
import { STATUS_MAX_CLIENTS, type Engine, type EngineContext } from '../engine.js';
import { Dispatcher, type MuxClientPort, type MuxRequest } from './dispatcher.js';
import { framerFor, type MuxFrame, type MuxFramer } from './framers.js';
import { Upstream } from './upstream.js';

/** Answers a client may have waiting behind an unanswered one (0x06 replies to a flood) before we stop reading it. */
const OUTBOX_SLACK = 64;
/** How often drain() looks whether every request has been answered. */
const DRAIN_POLL_MS = 10;

class MuxClient implements MuxClientPort {
  readonly queue: MuxRequest[] = [];
  inRing = false;
  readonly outbox: MuxRequest[] = [];
  unanswered = 0;
  pendingWrites = 0;
  lastWriteAnsweredTick = 0;
  gone = false;
  bytesIn = 0;
  bytesOut = 0;
  readonly address: string;
  readonly connectedAt = new Date().toISOString();
  readonly decoder: FrameDecoder<MuxFrame>;
  private readPaused = false;

  constructor(
    readonly socket: Socket,
    framer: MuxFramer,
    private readonly engine: MuxEngine,
    private readonly maxOutbox: number,
    private readonly maxWriteBuffer: number,
  ) {
    this.address = `${remoteAddressOf(socket)}:${socket.remotePort ?? 0}`;
    this.decoder = framer.clientDecoder();
  }

  send(bytes: Buffer): void {
    if (this.gone) return;
    this.bytesOut += bytes.length;
    this.engine.countOut(bytes.length);
    this.socket.write(bytes);
    this.throttle();
  }

  close(reason: string): void {
    if (this.gone) return;
    this.engine.clientLeft(this, reason);
    this.socket.end(() => this.socket.destroy());
  }

  released(): void {
    this.throttle();
  }

  /** Stops reading while answers pile up (a client that sends without reading), so memory stays bounded. */
  throttle(): void {
    if (this.gone || this.engine.draining) return;
    const full = this.outbox.length >= this.maxOutbox || this.socket.writableLength > this.maxWriteBuffer;
    if (full && !this.readPaused) {
      this.readPaused = true;
      this.socket.pause();
      this.socket.once('drain', () => this.throttle());
    } else if (!full && this.readPaused) {
      this.readPaused = false;
      this.socket.resume();
    }
  }
}

export class MuxEngine implements Engine {
  private readonly listener: TcpListener;
  private readonly upstream: Upstream;
  private readonly dispatcher: Dispatcher;
  private readonly framer: MuxFramer;
  private readonly clients = new Set<MuxClient>();
  private readonly log: Logger;
  private started = false;
  draining = false;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(private readonly context: EngineContext & { config: MuxModeConfig }) {
    const { config, log, metrics } = context;
    const mux = config.mux;
    this.log = log.child({ mode: 'mux' });
    this.framer = framerFor(mux);
    const maxInflight = effectiveMaxInflight(mux);
    if (maxInflight !== mux.maxInflight) {
      this.log.warn(
        { maxInflight: mux.maxInflight, protocol: mux.protocol },
        'MAX_INFLIGHT applies to PROTOCOL=modbus with a host:port or unix: target only; using 1',
      );
    }
    this.upstream = new Upstream({
      target: mux.target,
      connectTimeoutMs: mux.connectTimeoutMs,
      connectDelayMs: mux.connectDelayMs,
      reconnectMinMs: config.reconnectMinMs,
      reconnectMaxMs: config.reconnectMaxMs,
      log: this.log,
      metrics,
      onData: (chunk) => this.dispatcher.onUpstreamData(chunk),
      onUp: () => this.dispatcher.onUpstreamUp(),
      onDown: () => this.dispatcher.onUpstreamDown(),
    });
    this.dispatcher = new Dispatcher({
      config: mux,
      framer: this.framer,
      maxInflight,
      upstream: () => this.upstream,
      log: this.log,
      metrics,
    });
    this.listener = new TcpListener({
      name: 'tcp',
      mode: 'mux',
      host: config.host,
      port: mux.listenPort,
      maxClients: config.maxClients,
      log: this.log,
      metrics,
      onConnection: (socket) => this.accept(socket),
    });
    metrics.upstreamUp.set(0);
  }

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
    return {
      protocol: this.framer.protocol,
      clients,
      clientCount: this.clients.size,
      upstream: this.upstream.status(),
      queued: this.dispatcher.queued,
      inflight: this.dispatcher.outstanding,
      cache: this.dispatcher.cacheStatus(),
    };
  }

  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    this.listener.stopAccepting();
    clearTimeout(this.idleTimer);
    // No new requests; what is queued or in flight is answered within the grace period.
    for (const client of this.clients) client.socket.pause();
    const deadline = Date.now() + graceMs;
    while (this.dispatcher.queued + this.dispatcher.outstanding > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
    }
    // Let the last answers reach the kernel before closing.
    await Promise.all(
      [...this.clients].map(
        (client) =>
          new Promise<void>((resolve) => {
            const done = () => resolve();
            client.socket.once('close', done);
            client.socket.end();
            setTimeout(() => {
              client.socket.destroy();
              resolve();
            }, Math.max(0, Math.min(deadline - Date.now(), 1000))).unref();
          }),
      ),
    );
    this.dispatcher.failQueued(0x0a, 'client_gone');
    this.dispatcher.stop();
    this.upstream.stop();
  }

  countOut(bytes: number): void {
    this.context.metrics.hot.bytesOut += bytes;
  }

  /** A client leaves (it closed, its framing broke, or a failure its protocol cannot express closed it). */
  clientLeft(client: MuxClient, reason: string): void {
    if (client.gone) return;
    client.gone = true;
    this.clients.delete(client);
    this.dispatcher.onClientGone(client);
    this.log.info({ client: client.address, reason }, 'client left');
    this.armIdleClose();
  }

  private accept(socket: Socket): void {
    if (this.draining) {
      socket.destroy();
      return;
    }
    const { config, metrics } = this.context;
    const client = new MuxClient(
      socket,
      this.framer,
      this,
      config.mux.clientQueue + OUTBOX_SLACK,
      config.clientBufferBytes,
    );
    this.clients.add(client);
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    this.log.info({ client: client.address }, 'client joined');
    socket.on('data', (chunk: Buffer) => {
      if (client.gone) return;
      client.bytesIn += chunk.length;
      metrics.hot.bytesIn += chunk.length;
      const { frames, error } = client.decoder.push(chunk);
      if (error) {
        // A broken frame boundary cannot be resynchronised: this client is closed, nobody else notices (DESIGN §5).
        metrics.connectionsRejected.inc({ reason: 'bad_frame' });
        const reply = this.framer.frameErrorReply(error);
        this.clientLeft(client, `bad frame: ${error.message} (${error.code})`);
        if (reply) socket.end(reply, () => socket.destroy());
        else socket.destroy();
        return;
      }
      if (frames.length > 0) this.dispatcher.submitAll(client, frames);
      client.throttle();
    });
    // A client that shuts down its sending side has left (sockets are not half-open): its queued requests are never sent.
    socket.once('close', () => this.clientLeft(client, 'closed'));
  }

  /** UPSTREAM_IDLE_CLOSE_MS: with no clients for that long, the upstream is closed until the next request. */
  private armIdleClose(): void {
    const idleMs = this.context.config.mux.upstreamIdleCloseMs;
    if (idleMs === 0 || this.clients.size > 0 || this.draining || !this.started) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (this.clients.size === 0 && this.dispatcher.outstanding === 0) this.upstream.closeIdle();
    }, idleMs);
    this.idleTimer.unref();
  }
}
