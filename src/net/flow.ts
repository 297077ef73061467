/**
 * Flow control shared by groups, share and relay (DESIGN §3). Every byte that fans out goes through here.
 *
 * - A Receiver wraps one writable socket. Its queue is the socket's own write buffer (`writableLength`); nothing else buffers.
 * - A Fanout is one set of receivers fed by one or more sources (a group's members, the share upstream). One Buffer per
 *   chunk is written to every receiver: nothing is copied per receiver.
 * - A source is paused while every receiver is above its low-water mark (Node's `writableNeedDrain`: write() returned
 *   false) and resumed as soon as one drains. The source therefore runs at the pace of the fastest receiver, as a plain TCP
 *   relay would, and a 1-to-1 transfer never loses a byte.
 * - A receiver more than CLIENT_BUFFER_BYTES behind the fastest receiver gets SLOW_CLIENT: `disconnect` (destroyed and
 *   counted) or `drop` (its bytes are discarded and counted until its queue drains). Either way the others never wait.
 * - A BufferBudget counts the bytes queued in the whole process; past MAX_BUFFERED_BYTES the receiver furthest behind gets
 *   SLOW_CLIENT first.
 */
import type { Writable } from 'node:stream';
import type { SlowClientPolicy } from '../config/settings.js';
import type { Metrics } from '../metrics.js';

/** Anything that can be paused and resumed: a net.Socket, a tunnel stream, a FIFO read stream. */
export interface FlowSource {
  pause(): unknown;
  resume(): unknown;
}

export interface SlowClientEvent {
  receiver: Receiver;
  policy: SlowClientPolicy;
  /** `lag`: CLIENT_BUFFER_BYTES behind the fastest; `budget`: furthest behind when MAX_BUFFERED_BYTES was passed. */
  reason: 'lag' | 'budget';
  queuedBytes: number;
}

/** Process-wide accounting of queued bytes (MAX_BUFFERED_BYTES). */
export class BufferBudget {
  /** Bytes queued in all receivers, as of each receiver's last write or drain (an upper bound between those points). */
  total = 0;
  private readonly receivers = new Set<Receiver>();

  constructor(readonly maxBufferedBytes: number) {}

  add(receiver: Receiver): void {
    this.receivers.add(receiver);
  }

  remove(receiver: Receiver): void {
    if (this.receivers.delete(receiver)) this.total -= receiver.accountedBytes;
  }

  /** Past the limit, applies SLOW_CLIENT to the receivers furthest behind until what can still grow fits again. */
  enforce(): void {
    if (this.total <= this.maxBufferedBytes) return;
    for (;;) {
      let growing = 0;
      let furthest: Receiver | undefined;
      for (const receiver of this.receivers) {
        if (receiver.dropping || receiver.closed) continue;
        growing += receiver.accountedBytes;
        if (!furthest || receiver.accountedBytes > furthest.accountedBytes) furthest = receiver;
      }
      // Dropping receivers get nothing more, so what they hold can only shrink. If the limit is passed only because of
      // them, nobody else needs to pay.
      if (!furthest || growing <= this.maxBufferedBytes || furthest.accountedBytes === 0) return;
      furthest.applySlowPolicy('budget');
    }
  }
}

export interface ReceiverOptions {
  policy: SlowClientPolicy;
  budget: BufferBudget;
  metrics: Metrics;
  /** Told once when SLOW_CLIENT is applied, for the log line; the receiver has already acted. */
  onSlow?: (event: SlowClientEvent) => void;
}

export class Receiver {
  /** Its queue as last accounted in the budget. */
  accountedBytes = 0;
  /** SLOW_CLIENT=drop is in force: bytes for it are discarded until its queue drains. */
  dropping = false;
  closed = false;
  /** Bytes written to it, for /status. */
  bytesWritten = 0;
  private readonly fanouts = new Set<Fanout>();

  constructor(
    readonly socket: Writable,
    private readonly options: ReceiverOptions,
  ) {
    options.budget.add(this);
    socket.on('drain', () => this.onDrain());
    socket.once('close', () => this.close());
  }

  get queuedBytes(): number {
    return this.socket.writableLength;
  }

  /** Writes one shared chunk; returns false when the chunk was discarded (dropping, closed). */
  write(chunk: Buffer): boolean {
    if (this.closed || this.socket.destroyed) return false;
    this.socket.write(chunk);
    this.bytesWritten += chunk.length;
    this.options.metrics.hot.bytesOut += chunk.length;
    this.account();
    return true;
  }

  applySlowPolicy(reason: SlowClientEvent['reason']): void {
    if (this.closed || this.dropping) return;
    const { policy, metrics, onSlow } = this.options;
    const queuedBytes = this.queuedBytes;
    metrics.slowClients.inc({ policy });
    if (policy === 'disconnect') {
      this.close();
      this.socket.destroy();
    } else {
      this.dropping = true;
    }
    onSlow?.({ receiver: this, policy, reason, queuedBytes });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.options.budget.remove(this);
    this.accountedBytes = 0;
    for (const fanout of this.fanouts) fanout.remove(this);
  }

  /** @internal used by Fanout */
  joined(fanout: Fanout): void {
    this.fanouts.add(fanout);
  }

  /** @internal used by Fanout */
  left(fanout: Fanout): void {
    this.fanouts.delete(fanout);
  }

  private account(): void {
    const queued = this.socket.writableLength;
    this.options.budget.total += queued - this.accountedBytes;
    this.accountedBytes = queued;
  }

  private onDrain(): void {
    this.account();
    this.dropping = false;
    for (const fanout of this.fanouts) fanout.resumeSources();
  }
}

export interface FanoutOptions {
  clientBufferBytes: number;
  budget: BufferBudget;
  metrics: Metrics;
}

export class Fanout {
  readonly receivers = new Set<Receiver>();
  private readonly pausedSources = new Set<FlowSource>();

  constructor(private readonly options: FanoutOptions) {}

  get size(): number {
    return this.receivers.size;
  }

  add(receiver: Receiver): void {
    this.receivers.add(receiver);
    receiver.joined(this);
    // A new, empty receiver may be the one a paused source was waiting for.
    this.resumeSources();
  }

  remove(receiver: Receiver): void {
    if (!this.receivers.delete(receiver)) return;
    receiver.left(this);
    // The receiver that held everyone back may be the one that left.
    this.resumeSources();
  }

  /**
   * Writes `chunk` to every receiver except `except` (a member never hears itself). When no receiver can take more
   * without queueing, `source` is paused until one drains. Returns how many receivers got the chunk.
   */
  broadcast(chunk: Buffer, except?: Receiver, source?: FlowSource): number {
    const { clientBufferBytes, budget, metrics } = this.options;
    let fastestQueue = Number.POSITIVE_INFINITY;
    for (const receiver of this.receivers) {
      if (receiver !== except && !receiver.dropping) fastestQueue = Math.min(fastestQueue, receiver.queuedBytes);
    }
    let delivered = 0;
    let canTakeMore = false;
    for (const receiver of this.receivers) {
      if (receiver === except) continue;
      const lag = receiver.queuedBytes - fastestQueue;
      if (lag > clientBufferBytes) receiver.applySlowPolicy('lag');
      if (receiver.dropping || receiver.closed) {
        if (receiver.dropping) metrics.hot.dropped.slow_client += chunk.length;
        continue;
      }
      receiver.write(chunk);
      delivered++;
      if (!receiver.socket.writableNeedDrain) canTakeMore = true;
    }
    if (delivered === 0 && !this.hasReceiverBesides(except)) {
      // Nobody to hear it (a group of one): the bytes are gone, and the metrics say so.
      metrics.hot.dropped.no_receiver += chunk.length;
    }
    if (source && delivered > 0 && !canTakeMore) {
      source.pause();
      this.pausedSources.add(source);
    }
    budget.enforce();
    return delivered;
  }

  private hasReceiverBesides(except: Receiver | undefined): boolean {
    return this.receivers.size > (except !== undefined && this.receivers.has(except) ? 1 : 0);
  }

  /** Forget a source that went away (a member that left must not be resumed later). */
  forgetSource(source: FlowSource): void {
    this.pausedSources.delete(source);
  }

  resumeSources(): void {
    if (this.pausedSources.size === 0) return;
    const sources = [...this.pausedSources];
    this.pausedSources.clear();
    for (const source of sources) source.resume();
  }
}
