/**
 * The share upstream, one class per UPSTREAM kind (DESIGN §6). Each keeps one live link at most and tells the engine:
 * `up` (client bytes may be written to `writable`), every chunk of upstream output with the stream to pause for flow control,
 * and `down`. Dialled kinds (tcp, unix) and the FIFO pair reconnect with Backoff; `listen` waits for the next dial-in, and a
 * second dial-in replaces the first.
 */
import { constants as fsConstants, openSync, closeSync } from 'node:fs';
import { connect, Socket } from 'node:net';
import type { Writable } from 'node:stream';
import type { CommonConfig } from '../../config/load.js';
import type { UpstreamTarget } from '../../config/modes/share.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import { Backoff } from '../../net/backoff.js';
import type { FlowSource } from '../../net/flow.js';
import { remoteAddressOf, TcpListener, tuneSocket, type ListenerInfo } from '../../net/listen.js';

export const UPSTREAM_LISTENER_NAME = 'upstream';
/** A dial that has not connected by then is abandoned and retried with backoff. */
export const UPSTREAM_CONNECT_TIMEOUT_MS = 5000;

export type UpstreamState = 'connecting' | 'listening' | 'up' | 'backoff' | 'stopped';

export interface UpstreamHandlers {
  /** The upstream is connected: client bytes may go to `writable`. Called again when a dial-in replaces the link. */
  up(): void;
  /** One chunk of upstream output; `source` is what to pause while no client can take more. */
  data(chunk: Buffer, source: FlowSource): void;
  /** The link is gone; client bytes are dropped until the next `up`. */
  down(reason: string): void;
}

export interface UpstreamOptions {
  target: UpstreamTarget;
  targetText: string;
  common: CommonConfig;
  log: Logger;
  metrics: Metrics;
  handlers: UpstreamHandlers;
}

export abstract class Upstream {
  state: UpstreamState = 'connecting';
  since = new Date();
  lastError: string | null = null;
  /** Where client bytes go while the upstream is up. */
  writable: Writable | undefined;
  protected stopped = false;
  protected readonly backoff: Backoff;
  protected readonly log: Logger;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(protected readonly options: UpstreamOptions) {
    this.backoff = new Backoff(options.common.reconnectMinMs, options.common.reconnectMaxMs);
    this.log = options.log.child({ upstream: options.targetText });
  }

  get isUp(): boolean {
    return this.state === 'up';
  }

  abstract start(): Promise<void>;

  listenerInfo(): ListenerInfo[] {
    return [];
  }

  status() {
    return { target: this.options.targetText, state: this.state, since: this.since.toISOString(), lastError: this.lastError };
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.setState('stopped');
    this.writable = undefined;
    this.options.metrics.upstreamUp.set(0);
  }

  protected setState(state: UpstreamState): void {
    if (this.state === state) return;
    this.state = state;
    this.since = new Date();
  }

  protected markUp(writable: Writable): void {
    this.writable = writable;
    this.lastError = null;
    this.backoff.reset();
    this.setState('up');
    this.options.metrics.upstreamUp.set(1);
    this.options.handlers.up();
  }

  protected markDown(reason: string): void {
    const wasUp = this.state === 'up';
    this.writable = undefined;
    this.options.metrics.upstreamUp.set(0);
    if (wasUp) this.options.handlers.down(reason);
  }

  /** Schedules `attempt` after the next backoff delay (counted in upstream_reconnects_total). */
  protected retry(attempt: () => void, why: string): void {
    if (this.stopped) return;
    const delay = this.backoff.next();
    this.setState('backoff');
    this.options.metrics.upstreamReconnects.inc();
    this.log.info({ retryInMs: delay, lastError: this.lastError }, why);
    this.retryTimer = setTimeout(() => {
      if (!this.stopped) attempt();
    }, delay);
  }
}

/** `tcp:host:port` and `unix:/path`: switchboard dials, and dials again with backoff after a failure or a loss. */
export class DialUpstream extends Upstream {
  private socket: Socket | undefined;

  async start(): Promise<void> {
    this.dial();
  }

  override stop(): void {
    super.stop();
    this.socket?.destroy();
  }

  private dial(): void {
    const { target, metrics, handlers } = this.options;
    this.setState('connecting');
    const socket =
      target.kind === 'tcp' ? connect({ host: target.host, port: target.port }) : connect({ path: (target as { path: string }).path });
    this.socket = socket;
    let connected = false;
    const connectTimer = setTimeout(() => socket.destroy(new Error(`no connection within ${UPSTREAM_CONNECT_TIMEOUT_MS} ms`)), UPSTREAM_CONNECT_TIMEOUT_MS);
    socket.on('error', (error) => {
      this.lastError = error.message;
      this.log.debug({ err: error }, 'upstream socket error');
    });
    socket.once('connect', () => {
      clearTimeout(connectTimer);
      connected = true;
      if (target.kind === 'tcp') tuneSocket(socket);
      metrics.connectionsTotal.inc({ mode: 'share', listener: UPSTREAM_LISTENER_NAME });
      metrics.connectionsActive.inc({ mode: 'share', listener: UPSTREAM_LISTENER_NAME });
      socket.on('data', (chunk: Buffer) => handlers.data(chunk, socket));
      this.log.info('upstream up');
      this.markUp(socket);
    });
    socket.once('close', () => {
      clearTimeout(connectTimer);
      if (connected) {
        metrics.connectionsActive.dec({ mode: 'share', listener: UPSTREAM_LISTENER_NAME });
        this.log.info({ lastError: this.lastError }, 'upstream down');
        this.markDown(this.lastError ?? 'closed');
      }
      if (this.socket === socket) this.socket = undefined;
      this.retry(() => this.dial(), connected ? 'upstream lost; reconnecting' : 'upstream unreachable; retrying');
    });
  }
}

/** `listen:port`: the upstream dials in. A second dial-in replaces the first (logged); the old link is closed. */
export class ListenUpstream extends Upstream {
  private readonly listener: TcpListener;
  private socket: Socket | undefined;

  constructor(options: UpstreamOptions & { port: number }) {
    super(options);
    this.state = 'listening';
    this.listener = new TcpListener({
      name: UPSTREAM_LISTENER_NAME,
      mode: 'share',
      host: options.common.host,
      port: options.port,
      maxClients: options.common.maxClients,
      log: options.log,
      metrics: options.metrics,
      onConnection: (socket) => this.accept(socket),
    });
  }

  async start(): Promise<void> {
    await this.listener.start();
  }

  override listenerInfo(): ListenerInfo[] {
    return [this.listener.info()];
  }

  override stop(): void {
    super.stop();
    this.listener.stopAccepting();
    this.socket?.destroy();
    for (const socket of this.listener.connections) socket.destroy();
  }

  private accept(socket: Socket): void {
    if (this.stopped) {
      socket.destroy();
      return;
    }
    const { handlers, metrics } = this.options;
    const address = remoteAddressOf(socket);
    const previous = this.socket;
    this.socket = socket;
    if (previous) {
      metrics.upstreamReconnects.inc();
      this.log.warn({ from: address, replaced: remoteAddressOf(previous) }, 'a second upstream dialled in; it replaces the first');
      previous.destroy();
    } else {
      this.log.info({ from: address }, 'upstream dialled in');
    }
    socket.on('error', (error) => (this.lastError = error.message));
    socket.on('data', (chunk: Buffer) => {
      // Bytes still arriving from a replaced link are not part of the stream any more.
      if (this.socket === socket) handlers.data(chunk, socket);
    });
    socket.once('close', () => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      this.log.info({ lastError: this.lastError }, 'upstream down; waiting for it to dial in again');
      this.markDown(this.lastError ?? 'closed');
      if (!this.stopped) this.setState('listening');
    });
    this.markUp(socket);
  }
}

/**
 * `fifo:/path/up,/path/down`, kflu/multiplexer's uplink/downlink pair. Both ends are opened non-blocking:
 * - down (read): opening never waits for a writer; at EOF (the device closed its end) it is reopened.
 * - up (write): opening fails with ENXIO while nobody reads it, and is retried with backoff; a write that fails (EPIPE, the
 *   reader went away) closes it and it is opened again. The upstream counts as up while this end is open, since that is when
 *   client bytes can go somewhere.
 */
export class FifoUpstream extends Upstream {
  private down: Socket | undefined;
  private up: Socket | undefined;
  private downTimer: NodeJS.Timeout | undefined;
  private readonly downBackoff: Backoff;

  constructor(options: UpstreamOptions) {
    super(options);
    this.downBackoff = new Backoff(options.common.reconnectMinMs, options.common.reconnectMaxMs);
  }

  private get paths() {
    return this.options.target as { upPath: string; downPath: string };
  }

  async start(): Promise<void> {
    this.openDown();
    this.openUp();
  }

  override stop(): void {
    super.stop();
    clearTimeout(this.downTimer);
    this.down?.destroy();
    this.up?.destroy();
  }

  private openDown(): void {
    if (this.stopped) return;
    const { handlers } = this.options;
    let socket: Socket;
    try {
      socket = fifoSocket(openSync(this.paths.downPath, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK), 'read');
    } catch (error) {
      // ENOENT, or not a FIFO (ERR_INVALID_FD_TYPE for a regular file): retried, so that creating it later works.
      this.lastError = `${this.paths.downPath}: ${(error as Error).message}`;
      this.log.warn({ path: this.paths.downPath, err: error }, 'cannot open the down FIFO; retrying');
      this.downTimer = setTimeout(() => this.openDown(), this.downBackoff.next());
      return;
    }
    this.down = socket;
    let received = 0;
    socket.on('error', (error) => (this.lastError = `${this.paths.downPath}: ${error.message}`));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      handlers.data(chunk, socket);
    });
    socket.once('close', () => {
      if (this.down === socket) this.down = undefined;
      if (this.stopped) return;
      this.log.info({ path: this.paths.downPath }, 'down FIFO at EOF; reopening');
      // A writer that came and went with output: reopen at once. An EOF without a byte: back off, so a FIFO that keeps
      // reporting EOF cannot spin.
      if (received > 0) this.downBackoff.reset();
      this.downTimer = setTimeout(() => this.openDown(), received > 0 ? 0 : this.downBackoff.next());
    });
  }

  private openUp(): void {
    if (this.stopped) return;
    this.setState('connecting');
    let socket: Socket;
    try {
      socket = fifoSocket(openSync(this.paths.upPath, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK), 'write');
    } catch (error) {
      // ENXIO: nobody reads the up FIFO yet. ENOENT or not a FIFO: retried as well.
      this.lastError = `${this.paths.upPath}: ${(error as Error).message}`;
      this.retry(() => this.openUp(), 'up FIFO cannot be opened for writing (no reader yet?); retrying');
      return;
    }
    this.up = socket;
    socket.on('error', (error) => {
      this.lastError = `${this.paths.upPath}: ${error.message}`;
      socket.destroy();
    });
    socket.once('close', () => {
      if (this.up === socket) this.up = undefined;
      this.log.info({ lastError: this.lastError }, 'up FIFO lost');
      this.markDown(this.lastError ?? 'closed');
      this.retry(() => this.openUp(), 'reopening the up FIFO');
    });
    this.log.info('upstream up (up FIFO has a reader)');
    this.markUp(socket);
  }
}

/** A FIFO end as a stream libuv polls (a pipe handle), so reads and writes never block the event loop. */
function fifoSocket(fd: number, direction: 'read' | 'write'): Socket {
  try {
    const socket = new Socket({ fd, readable: direction === 'read', writable: direction === 'write' });
    if (direction === 'read') socket.on('end', () => socket.destroy());
    return socket;
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

export function createUpstream(options: UpstreamOptions): Upstream {
  const { target } = options;
  switch (target.kind) {
    case 'tcp':
    case 'unix':
      return new DialUpstream(options);
    case 'listen':
      return new ListenUpstream({ ...options, port: target.port });
    case 'fifo':
      return new FifoUpstream(options);
  }
}
