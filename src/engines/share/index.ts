/**
 * share mode (DESIGN §6): one upstream byte stream broadcast to every client, replacing kflu/multiplexer.
 *
 * - Upstream output goes to every client, in order, through one Fanout (src/net/flow.ts): one Buffer per chunk for all, the
 *   upstream paused while no client can take more, SLOW_CLIENT for a client that falls behind. The last REPLAY_BYTES of it
 *   are kept in one ReplayRing; a joining client gets them first, then the live stream from the next chunk on.
 * - What a read-write client sends goes to the upstream only (never to another client, never back to the sender). While the
 *   upstream is backed up, the clients that write are paused; while it is down, their bytes are dropped and counted.
 * - Read-only clients (LISTEN_PORT_RO) receive the same stream; what they send is discarded and counted.
 */
import type { Socket } from 'node:net';
import { Gauge } from 'prom-client';
import type { ShareModeConfig } from '../../config/load.js';
import type { Logger } from '../../log.js';
import { METRIC_PREFIX, type Metrics } from '../../metrics.js';
import { formatHostPort } from '../../net/address.js';
import { Fanout, Receiver, type BufferBudget } from '../../net/flow.js';
import { remoteAddressOf, TcpListener } from '../../net/listen.js';
import { STATUS_MAX_CLIENTS, type Engine, type EngineContext } from '../engine.js';
import { ReplayRing } from './replay.js';
import { createUpstream, type Upstream } from './upstream.js';

/** Listener names: connections_active{listener} counts clients by role. */
export const RW_LISTENER_NAME = 'rw';
export const RO_LISTENER_NAME = 'ro';

/** With UPSTREAM_LOSS=disconnect, clients get this long to take their queued bytes before they are closed. */
export const LOSS_FLUSH_MS = 1000;

type Role = 'rw' | 'ro';

interface Client {
  socket: Socket;
  receiver: Receiver;
  role: Role;
  address: string;
  connectedAt: Date;
  bytesIn: number;
  log: Logger;
  leaveReason?: string;
}

export class ShareEngine implements Engine {
  private readonly config: ShareModeConfig;
  private readonly log: Logger;
  private readonly metrics: Metrics;
  private readonly budget: BufferBudget;
  private readonly fanout: Fanout;
  private readonly replay: ReplayRing;
  private readonly upstream: Upstream;
  private readonly rwListener: TcpListener;
  private readonly roListener: TcpListener | undefined;
  private readonly clients = new Set<Client>();
  /** Read-write clients paused because the upstream's write queue is full; resumed on its `drain`. */
  private readonly pausedWriters = new Set<Socket>();
  private drainHooked: unknown;
  private started = false;
  private draining = false;

  constructor(context: EngineContext & { config: ShareModeConfig }) {
    const { config, log, metrics, budget } = context;
    this.config = config;
    this.log = log;
    this.metrics = metrics;
    this.budget = budget;
    const share = config.share;
    this.fanout = new Fanout({ clientBufferBytes: config.clientBufferBytes, budget, metrics });
    this.replay = new ReplayRing(share.replayBytes);
    const listener = (name: string, port: number, role: Role) =>
      new TcpListener({
        name,
        mode: 'share',
        host: config.host,
        port,
        maxClients: config.maxClients,
        log,
        metrics,
        onConnection: (socket) => this.addClient(socket, role),
      });
    this.rwListener = listener(RW_LISTENER_NAME, share.listenPort, 'rw');
    if (share.listenPortRo !== null) this.roListener = listener(RO_LISTENER_NAME, share.listenPortRo, 'ro');
    this.upstream = createUpstream({
      target: share.upstream,
      targetText: share.upstreamText,
      common: config,
      log,
      metrics,
      handlers: {
        up: () => this.onUpstreamUp(),
        data: (chunk, source) => this.onUpstreamData(chunk, source),
        down: (reason) => this.onUpstreamDown(reason),
      },
    });
    this.registerMetrics();
  }

  get ready(): boolean {
    return this.started && !this.draining;
  }

  /** Binds every listener; the upstream is dialled (or awaited) in the background: /readyz does not wait for it. */
  async start(): Promise<void> {
    await this.rwListener.start();
    await this.roListener?.start();
    await this.upstream.start();
    this.started = true;
    this.log.info(
      { upstream: this.config.share.upstreamText, replayBytes: this.config.share.replayBytes, upstreamLoss: this.config.share.upstreamLoss },
      'share mode started',
    );
  }

  listeners() {
    return [this.rwListener.info(), ...(this.roListener ? [this.roListener.info()] : []), ...this.upstream.listenerInfo()];
  }

  status() {
    const clients = [...this.clients].slice(0, STATUS_MAX_CLIENTS).map((c) => ({
      address: c.address,
      role: c.role,
      connectedAt: c.connectedAt.toISOString(),
      bytesIn: c.bytesIn,
      bytesOut: c.receiver.bytesWritten,
      queuedBytes: c.receiver.queuedBytes,
      dropping: c.receiver.dropping,
    }));
    return {
      clients,
      clientCount: this.clients.size,
      upstream: this.upstream.status(),
      replay: { capacity: this.replay.capacity, bytes: this.replay.length },
    };
  }

  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    const deadline = Date.now() + graceMs;
    this.rwListener.stopAccepting();
    this.roListener?.stopAccepting();
    this.upstream.stop();
    const sockets = [...new Set([...this.rwListener.connections, ...(this.roListener?.connections ?? []), ...[...this.clients].map((c) => c.socket)])];
    await Promise.all(sockets.map((socket) => endWithin(socket, Math.max(0, deadline - Date.now()))));
    for (const socket of sockets) socket.destroy();
  }

  private addClient(socket: Socket, role: Role): void {
    const { share } = this.config;
    const address = formatHostPort(remoteAddressOf(socket), socket.remotePort ?? 0);
    if (this.draining) {
      socket.destroy();
      return;
    }
    if (share.upstreamLoss === 'disconnect' && !this.upstream.isUp) {
      this.metrics.connectionsRejected.inc({ reason: 'upstream_down' });
      this.log.info({ client: address, role }, 'client refused: the upstream is down (UPSTREAM_LOSS=disconnect)');
      socket.destroy();
      return;
    }
    const clientLog = this.log.child({ client: address, role });
    // eslint-disable-next-line prefer-const -- the slow-client callback needs the client, which needs the receiver
    let client: Client;
    const receiver = new Receiver(socket, {
      policy: share.slowClient,
      budget: this.budget,
      metrics: this.metrics,
      onSlow: (event) => {
        if (event.policy === 'disconnect') client.leaveReason = `slow_client_${event.reason}`;
        clientLog.warn({ policy: event.policy, reason: event.reason, queuedBytes: event.queuedBytes }, 'slow client');
      },
    });
    client = { socket, receiver, role, address, connectedAt: new Date(), bytesIn: 0, log: clientLog };
    this.clients.add(client);
    // The replay and the live stream join without a gap or an overlap: both happen in this one turn of the event loop,
    // between two upstream chunks.
    if (this.replay.length > 0) receiver.write(this.replay.snapshot());
    this.fanout.add(receiver);
    clientLog.info({ clients: this.clients.size, replayed: this.replay.length }, 'client joined');

    socket.on('data', (chunk: Buffer) => this.onClientData(client, chunk));
    socket.once('close', (hadError) => {
      this.clients.delete(client);
      this.pausedWriters.delete(socket);
      receiver.close();
      const reason = client.leaveReason ?? (this.draining ? 'shutdown' : hadError ? 'error' : 'closed');
      clientLog.info({ reason, clients: this.clients.size, bytesIn: client.bytesIn, bytesOut: receiver.bytesWritten }, 'client left');
    });
  }

  private onClientData(client: Client, chunk: Buffer): void {
    const hot = this.metrics.hot;
    hot.bytesIn += chunk.length;
    client.bytesIn += chunk.length;
    if (client.role === 'ro') {
      hot.dropped.read_only += chunk.length;
      return;
    }
    const upstream = this.upstream.writable;
    if (!upstream || this.draining) {
      hot.dropped.upstream_down += chunk.length;
      return;
    }
    hot.bytesUpstreamOut += chunk.length;
    if (!upstream.write(chunk)) {
      // The upstream is backed up: stop reading from this client until it drains, so nothing queues without bound.
      client.socket.pause();
      this.pausedWriters.add(client.socket);
      if (this.drainHooked !== upstream) {
        this.drainHooked = upstream;
        upstream.once('drain', () => {
          this.drainHooked = undefined;
          this.resumeWriters();
        });
      }
    }
  }

  private resumeWriters(): void {
    const paused = [...this.pausedWriters];
    this.pausedWriters.clear();
    for (const socket of paused) socket.resume();
  }

  private onUpstreamData(chunk: Buffer, source: { pause(): unknown; resume(): unknown }): void {
    this.metrics.hot.bytesUpstreamIn += chunk.length;
    this.replay.push(chunk);
    if (this.fanout.size === 0) {
      this.metrics.hot.dropped.no_receiver += chunk.length;
      return;
    }
    this.fanout.broadcast(chunk, undefined, source);
  }

  private onUpstreamUp(): void {
    this.drainHooked = undefined;
    // Writers paused on a previous link would wait for a drain that never comes.
    this.resumeWriters();
  }

  private onUpstreamDown(reason: string): void {
    this.drainHooked = undefined;
    // From now on their bytes are dropped and counted, which needs them read.
    this.resumeWriters();
    if (this.config.share.upstreamLoss !== 'disconnect' || this.draining) return;
    this.log.info({ reason, clients: this.clients.size }, 'upstream lost: disconnecting every client (UPSTREAM_LOSS=disconnect)');
    for (const client of this.clients) {
      client.leaveReason = 'upstream_lost';
      void endWithin(client.socket, LOSS_FLUSH_MS).then(() => client.socket.destroy());
    }
  }

  private registerMetrics(): void {
    const clients = this.clients;
    const replay = this.replay;
    new Gauge({
      name: `${METRIC_PREFIX}share_client_lag_bytes`,
      help: 'share mode: bytes queued for the client furthest behind (max) and for all clients (sum)',
      labelNames: ['stat'],
      registers: [this.metrics.registry],
      collect() {
        let max = 0;
        let sum = 0;
        for (const client of clients) {
          const queued = client.receiver.queuedBytes;
          sum += queued;
          if (queued > max) max = queued;
        }
        this.set({ stat: 'max' }, max);
        this.set({ stat: 'sum' }, sum);
      },
    });
    new Gauge({
      name: `${METRIC_PREFIX}share_replay_bytes`,
      help: 'share mode: bytes held in the replay ring (at most REPLAY_BYTES)',
      registers: [this.metrics.registry],
      collect() {
        this.set(replay.length);
      },
    });
  }
}

/** Ends the socket (queued bytes are flushed, then FIN) and resolves once it has finished or closed, or after `ms`. */
function endWithin(socket: Socket, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    if (socket.destroyed || socket.writableFinished) return resolve();
    const timer = setTimeout(resolve, ms);
    const done = () => (clearTimeout(timer), resolve());
    socket.once('finish', done);
    socket.once('close', done);
    socket.pause();
    socket.end();
  });
}
