/**
 * The one upstream connection of mux mode (DESIGN §5): dialled at start, CONNECT_TIMEOUT_MS per attempt, CONNECT_DELAY_MS
 * before it is used, backoff with jitter after a failed attempt, redialled at once after a deliberate reset, closed when
 * idle if UPSTREAM_IDLE_CLOSE_MS says so. Knows sockets and states, nothing about frames: the dispatcher owns those.
 *
 * States (shown in /status as upstream.state):
 *   connecting  an attempt (or the connect delay) is in progress; requests wait in the queue
 *   up          connected and usable
 *   backoff     the last attempt failed; the next one is scheduled; Modbus requests get 0x0A meanwhile
 *   idle        closed by UPSTREAM_IDLE_CLOSE_MS; the next request dials again
 *   stopped     the engine has shut down
 */
import { connect, type Socket } from 'node:net';
import type { MuxTarget } from '../../config/modes/mux.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import { formatHostPort } from '../../net/address.js';
import { Backoff } from '../../net/backoff.js';
import { tuneSocket } from '../../net/listen.js';

export type UpstreamState = 'connecting' | 'up' | 'backoff' | 'idle' | 'stopped';

/** A connection that lived this long (or delivered a reply) was healthy; losing it redials at once, not after backoff. */
export const STABLE_CONNECTION_MS = 1000;

export interface UpstreamOptions {
  target: MuxTarget;
  connectTimeoutMs: number;
  connectDelayMs: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  log: Logger;
  metrics: Metrics;
  /** Bytes from the upstream, in order. */
  onData(chunk: Buffer): void;
  /** The connection is usable (after CONNECT_DELAY_MS). */
  onUp(): void;
  /** A usable connection, or an attempt, ended; `failedAttempt` when it never became usable. */
  onDown(reason: string, failedAttempt: boolean): void;
}

export function describeTarget(target: MuxTarget): string {
  switch (target.kind) {
    case 'tcp':
      return formatHostPort(target.host, target.port);
    case 'rtu':
      return `rtu:${formatHostPort(target.host, target.port)}`;
    case 'unix':
      return `unix:${target.path}`;
    case 'serial':
      return `serial:${target.path}`;
  }
}

export class Upstream {
  private socket: Socket | undefined;
  private currentState: UpstreamState = 'idle';
  private stateSince = new Date();
  private error: string | null = null;
  private readonly backoff: Backoff;
  private retryTimer: NodeJS.Timeout | undefined;
  private delayTimer: NodeJS.Timeout | undefined;
  private connectedAt = 0;
  private healthy = false;
  private attempts = 0;
  readonly description: string;

  constructor(private readonly options: UpstreamOptions) {
    this.backoff = new Backoff(options.reconnectMinMs, options.reconnectMaxMs);
    this.description = describeTarget(options.target);
  }

  get state(): UpstreamState {
    return this.currentState;
  }

  get usable(): boolean {
    return this.currentState === 'up';
  }

  status() {
    return { target: this.description, state: this.currentState, since: this.stateSince.toISOString(), lastError: this.error };
  }

  /** Dials unless a connection exists or is being made (also ends an idle close). */
  dial(): void {
    if (this.currentState === 'connecting' || this.currentState === 'up' || this.currentState === 'stopped') return;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.attempt();
  }

  /** Returns false when the socket's buffer is above its high-water mark (wait for onceDrain), or nothing was written. */
  write(bytes: Buffer): boolean {
    if (!this.socket || this.currentState !== 'up') return false;
    this.options.metrics.hot.bytesUpstreamOut += bytes.length;
    return this.socket.write(bytes);
  }

  /** Calls `fn` once the current connection's write buffer has drained; never if that connection ends first. */
  onceDrain(fn: () => void): void {
    this.socket?.once('drain', fn);
  }

  /** Stops reading the upstream (its client cannot take more yet); a new connection always starts reading. */
  pauseReading(): void {
    this.socket?.pause();
  }

  resumeReading(): void {
    this.socket?.resume();
  }

  /** Runs `fn` with writes to the upstream gathered into one syscall (several requests sent in one turn of the loop). */
  batch(fn: () => void): void {
    const socket = this.socket;
    socket?.cork();
    try {
      fn();
    } finally {
      socket?.uncork();
    }
  }

  /** A reply arrived: the device works, so a later loss redials at once and backoff starts from the minimum again. */
  markHealthy(): void {
    if (this.healthy) return;
    this.healthy = true;
    this.backoff.reset();
  }

  /**
   * Drops the connection on purpose (timeouts, a malformed or unexpected reply) and dials again at once. `expected`: a
   * routine recycle (an HTTP exchange that ended with `Connection: close`), logged at debug and not kept as lastError.
   */
  reset(reason: string, expected = false): void {
    if (this.currentState !== 'up' && this.currentState !== 'connecting') return;
    this.options.log[expected ? 'debug' : 'warn']({ target: this.description, reason }, 'upstream reset');
    if (!expected) this.error = reason;
    this.teardown();
    this.attempt();
    this.options.onDown(reason, false);
  }

  /** UPSTREAM_IDLE_CLOSE_MS passed without clients: close, and wait for the next request to dial. */
  closeIdle(): void {
    if (this.currentState === 'stopped' || this.currentState === 'idle') return;
    this.options.log.info({ target: this.description }, 'upstream closed: no clients (UPSTREAM_IDLE_CLOSE_MS)');
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const wasUp = this.currentState === 'up';
    this.teardown();
    this.setState('idle');
    if (wasUp) this.options.onDown('idle close', false);
  }

  stop(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.teardown();
    this.setState('stopped');
  }

  private setState(state: UpstreamState): void {
    if (state === this.currentState) return;
    this.currentState = state;
    this.stateSince = new Date();
    this.options.metrics.upstreamUp.set(state === 'up' ? 1 : 0);
  }

  private teardown(): void {
    clearTimeout(this.delayTimer);
    this.delayTimer = undefined;
    const socket = this.socket;
    this.socket = undefined;
    if (socket) {
      socket.removeAllListeners('data');
      socket.removeAllListeners('close');
      socket.destroy();
    }
  }

  private attempt(): void {
    const { target, connectTimeoutMs, connectDelayMs, log, metrics } = this.options;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (this.attempts > 0) metrics.upstreamReconnects.inc();
    this.attempts++;
    this.setState('connecting');
    this.healthy = false;
    const socket =
      target.kind === 'unix' ? connect({ path: target.path }) : connect({ host: (target as { host: string }).host, port: (target as { port: number }).port });
    this.socket = socket;
    let connected = false;
    let failure: string | undefined;
    const connectTimer = setTimeout(() => {
      failure = `connect timed out after ${connectTimeoutMs} ms`;
      socket.destroy();
    }, connectTimeoutMs);
    connectTimer.unref();
    socket.on('error', (error: NodeJS.ErrnoException) => {
      failure ??= error.code ?? error.message;
    });
    socket.once('connect', () => {
      clearTimeout(connectTimer);
      connected = true;
      this.connectedAt = Date.now();
      if (socket !== this.socket) return;
      tuneSocket(socket);
      const becomeUp = () => {
        this.delayTimer = undefined;
        if (socket !== this.socket) return;
        this.error = null;
        this.setState('up');
        log.info({ target: this.description }, 'upstream up');
        this.options.onUp();
      };
      if (connectDelayMs > 0) this.delayTimer = setTimeout(becomeUp, connectDelayMs);
      else becomeUp();
    });
    socket.on('data', (chunk: Buffer) => {
      metrics.hot.bytesUpstreamIn += chunk.length;
      if (socket === this.socket) this.options.onData(chunk);
    });
    socket.on('close', () => {
      clearTimeout(connectTimer);
      if (socket !== this.socket) return;
      this.socket = undefined;
      clearTimeout(this.delayTimer);
      this.delayTimer = undefined;
      const wasUp = this.currentState === 'up';
      this.error = failure ?? (connected ? 'closed by the upstream' : 'connect failed');
      if (!wasUp) {
        // The attempt failed (refused, timed out, or closed during CONNECT_DELAY_MS): back off.
        this.scheduleRetry();
        this.options.onDown(this.error, true);
        return;
      }
      const lived = Date.now() - this.connectedAt;
      log.warn({ target: this.description, reason: this.error, livedMs: lived }, 'upstream down');
      // A healthy connection that is lost (an inverter closing idle sockets, a restart) is dialled again at once; one that
      // dies young without a reply backs off, so a device that accepts and closes is not hammered.
      // Either way the state is `connecting` (requests wait): backoff, and with it 0x0A, follows failed attempts only.
      if (this.healthy || lived >= STABLE_CONNECTION_MS) this.attempt();
      else this.attemptLater();
      this.options.onDown(this.error, false);
    });
  }

  /** Redials after a backoff delay while staying `connecting`: the device answered the last attempt, so it is reachable. */
  private attemptLater(): void {
    const delay = this.backoff.next();
    this.setState('connecting');
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.attempt();
    }, delay);
    this.retryTimer.unref();
  }

  private scheduleRetry(): void {
    if (this.currentState === 'stopped' || this.currentState === 'idle') return;
    const delay = this.backoff.next();
    this.setState('backoff');
    const level = this.backoff.attempts <= 1 ? 'warn' : 'debug';
    this.options.log[level]({ target: this.description, reason: this.error, retryInMs: delay }, 'upstream connect failed');
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.attempt();
    }, delay);
    this.retryTimer.unref();
  }
}
