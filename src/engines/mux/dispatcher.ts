/**
 * The heart of mux mode (DESIGN §5): requests from many clients, queued fairly, sent to the one upstream one at a time (or
 * up to MAX_INFLIGHT for Modbus TCP), each reply matched to its request and written back to its own client, in the
 * client's order. Every request ends exactly once with an outcome (metrics requests_total{protocol,outcome}):
 *
 *   ok, exception   the device answered (an exception from the device passes through unchanged)
 *   timeout         no answer within UPSTREAM_TIMEOUT_MS, the deadline passed (queued or sent), or the connection was lost
 *                   with the request outstanding: Modbus 0x0B
 *   unavailable     the last connect attempt failed or the upstream is in backoff: Modbus 0x0A
 *   busy            the client already had CLIENT_QUEUE requests unanswered: Modbus 0x06
 *   client_gone     the client left first; a queued request is then never sent
 * Protocols without an exception message (echo, iso8583, mpu) close the client instead of answering a failure.
 *
 * Issue 6 hooks in here: read-only screening and unit mapping in submit()/send(), coalescing and the cache between
 * submit() and the queue (a request that joins another completes from that one's reply).
 */
import type { MuxConfig } from '../../config/modes/mux.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import type { FrameDecoder } from '../../protocols/framing.js';
import { ExceptionCode } from '../../protocols/modbus-tcp.js';
import { FairQueue, type QueueOwner } from './fair-queue.js';
import type { GatewayFailure, MuxFramer, MuxFrame } from './framers.js';
import type { Upstream } from './upstream.js';

export type Outcome = 'ok' | 'exception' | 'timeout' | 'unavailable' | 'busy' | 'client_gone';

/** What the dispatcher needs from a client connection. */
export interface MuxClientPort extends QueueOwner<MuxRequest> {
  /** Requests in arrival order that are not written back yet (answered ones wait here for the ones before them). */
  readonly outbox: MuxRequest[];
  /** Requests not answered yet (queued or in flight). */
  unanswered: number;
  readonly gone: boolean;
  /** Writes an answer to the client. */
  send(bytes: Buffer): void;
  /** Ends the client after what was written (a failure the protocol cannot express). */
  close(reason: string): void;
  /** Called when outbox shrinks, so the client may read again. */
  released(): void;
}

export interface MuxRequest {
  readonly client: MuxClientPort;
  readonly frame: MuxFrame;
  /** performance.now() at arrival. */
  readonly arrivedAt: number;
  readonly deadlineAt: number;
  state: 'queued' | 'inflight' | 'done';
  /** The transaction id used upstream (correlated protocols). */
  upstreamId: number;
  timer: NodeJS.Timeout | undefined;
  /** Set when done: the bytes for the client, or null to close it. */
  answer: Buffer | null;
}

export interface DispatcherOptions {
  config: MuxConfig;
  framer: MuxFramer;
  maxInflight: number;
  upstream: () => Upstream;
  log: Logger;
  metrics: Metrics;
}

/** Node timers fire in whole milliseconds: a request with less time left than this cannot be answered in time. */
const TIMER_RESOLUTION_MS = 1;

/** Transaction ids are u16 (MBAP §3.1.3). */
const TRANSACTION_ID_SPACE = 0x10000;

export class Dispatcher {
  private readonly queue = new FairQueue<MuxRequest, MuxClientPort>();
  /** Outstanding upstream requests by upstream transaction id (one entry at most for uncorrelated protocols). */
  private readonly inflight = new Map<number, MuxRequest>();
  private nextTransactionId = 1;
  private consecutiveTimeouts = 0;
  private lastExchangeEndedAt = 0;
  private gapTimer: NodeJS.Timeout | undefined;
  private decoder: FrameDecoder<MuxFrame>;
  private readonly framer: MuxFramer;
  private readonly protocol: string;

  constructor(private readonly options: DispatcherOptions) {
    this.framer = options.framer;
    this.protocol = options.framer.protocol;
    this.decoder = this.framer.upstreamDecoder();
  }

  get queued(): number {
    return this.queue.size;
  }

  get outstanding(): number {
    return this.inflight.size;
  }

  /** A complete request from a client. */
  submit(client: MuxClientPort, frame: MuxFrame): void {
    const { config } = this.options;
    const now = performance.now();
    const request: MuxRequest = {
      client,
      frame,
      arrivedAt: now,
      deadlineAt: now + config.requestDeadlineMs,
      state: 'queued',
      upstreamId: 0,
      timer: undefined,
      answer: null,
    };
    client.outbox.push(request);
    if (client.unanswered >= config.clientQueue) {
      this.fail(request, ExceptionCode.SERVER_DEVICE_BUSY, 'busy');
      return;
    }
    client.unanswered++;
    const upstream = this.options.upstream();
    if (upstream.state === 'backoff') {
      this.fail(request, ExceptionCode.GATEWAY_PATH_UNAVAILABLE, 'unavailable');
      return;
    }
    if (upstream.state === 'idle') upstream.dial();
    request.timer = setTimeout(() => this.expire(request), config.requestDeadlineMs);
    this.queue.push(client, request);
    this.options.metrics.queueDepth.set(this.queue.size);
    this.pump();
  }

  /** Sends queued requests while the upstream is usable, MAX_INFLIGHT allows and REQUEST_GAP_MS has passed. */
  pump(): void {
    const upstream = this.options.upstream();
    const { requestGapMs } = this.options.config;
    while (upstream.usable && this.inflight.size < this.options.maxInflight && this.queue.size > 0) {
      if (requestGapMs > 0) {
        // The gap separates exchanges, so it also means one exchange at a time.
        if (this.inflight.size > 0) return;
        const wait = this.lastExchangeEndedAt + requestGapMs - performance.now();
        if (wait > 0) {
          this.gapTimer ??= setTimeout(() => {
            this.gapTimer = undefined;
            this.pump();
          }, Math.ceil(wait));
          return;
        }
      }
      const request = this.queue.shift()!;
      if (request.deadlineAt - performance.now() < TIMER_RESOLUTION_MS) {
        // Its deadline is (all but) due and its timer has not run yet: it is answered now and never sent (DESIGN §5).
        this.fail(request, ExceptionCode.GATEWAY_TARGET_FAILED_TO_RESPOND, 'timeout');
        continue;
      }
      this.send(request, upstream);
    }
    this.options.metrics.queueDepth.set(this.queue.size);
  }

  private send(request: MuxRequest, upstream: Upstream): void {
    const { config } = this.options;
    const id = this.framer.correlated ? this.allocateTransactionId() : 0;
    request.state = 'inflight';
    request.upstreamId = id;
    this.inflight.set(id, request);
    clearTimeout(request.timer);
    const now = performance.now();
    const wait = Math.min(config.upstreamTimeoutMs, request.deadlineAt - now);
    request.timer = setTimeout(() => this.expire(request), Math.max(0, wait));
    upstream.write(this.framer.encodeRequest(request.frame, id));
  }

  private allocateTransactionId(): number {
    // Skip ids still outstanding, and 0 (some devices treat it specially); at most MAX_INFLIGHT ids are ever taken.
    for (;;) {
      const id = this.nextTransactionId;
      this.nextTransactionId = (this.nextTransactionId + 1) % TRANSACTION_ID_SPACE || 1;
      if (!this.inflight.has(id)) return id;
    }
  }

  /** Bytes from the upstream. */
  onUpstreamData(chunk: Buffer): void {
    const { frames, error } = this.decoder.push(chunk);
    const upstream = this.options.upstream();
    let reset = false;
    // Requests sent while handling these replies leave in one write.
    upstream.batch(() => {
      for (const frame of frames) {
        reset = !this.onReply(frame);
        if (reset) return; // the rest of this chunk belongs to the old connection
      }
    });
    if (error && !reset) {
      this.options.metrics.strayReplies.inc();
      upstream.reset(`malformed reply: ${error.message}`);
    }
  }

  /** Several requests from one client read: sent upstream in one write. */
  submitAll(client: MuxClientPort, frames: MuxFrame[]): void {
    if (frames.length === 1) this.submit(client, frames[0]!);
    else this.options.upstream().batch(() => frames.forEach((frame) => this.submit(client, frame)));
  }

  /** Returns false when the reply made the upstream reset. */
  private onReply(reply: MuxFrame): boolean {
    const upstream = this.options.upstream();
    if (this.framer.correlated) {
      const request = this.inflight.get(reply.transactionId!);
      if (!request || !this.framer.matches(request.frame, reply)) {
        // Late (its request timed out), stray, or with the wrong unit or function: never delivered to anyone.
        this.options.metrics.strayReplies.inc();
        this.options.log.debug({ transactionId: reply.transactionId }, 'stray reply dropped');
        return true;
      }
      this.inflight.delete(reply.transactionId!);
      this.exchangeEnded();
      upstream.markHealthy();
      // The next request first: the device starts on it while the answer is written to its client.
      this.pump();
      this.answer(request, reply);
      return true;
    }
    // One exchange at a time: the reply belongs to the one request outstanding, or the stream is out of step.
    const request = this.inflight.get(0);
    if (!request || !this.framer.matches(request.frame, reply)) {
      this.options.metrics.strayReplies.inc();
      upstream.reset(request ? 'reply does not match its request' : 'reply without a request');
      return false;
    }
    this.inflight.delete(0);
    this.exchangeEnded();
    upstream.markHealthy();
    this.pump();
    this.answer(request, reply);
    return true;
  }

  private exchangeEnded(): void {
    this.consecutiveTimeouts = 0;
    this.lastExchangeEndedAt = performance.now();
  }

  private answer(request: MuxRequest, reply: MuxFrame): void {
    const outcome: Outcome = this.framer.isException(reply) ? 'exception' : 'ok';
    this.complete(request, request.client.gone ? null : this.framer.encodeReply(request.frame, reply), outcome);
  }

  /** The request's timer: its deadline (queued) or its upstream timeout (sent), whichever came first. */
  private expire(request: MuxRequest): void {
    request.timer = undefined;
    if (request.state === 'queued') {
      this.queue.remove(request.client, request);
      this.options.metrics.queueDepth.set(this.queue.size);
      this.fail(request, ExceptionCode.GATEWAY_TARGET_FAILED_TO_RESPOND, 'timeout');
      return;
    }
    if (request.state !== 'inflight') return;
    this.inflight.delete(request.upstreamId);
    this.lastExchangeEndedAt = performance.now();
    this.consecutiveTimeouts++;
    this.fail(request, ExceptionCode.GATEWAY_TARGET_FAILED_TO_RESPOND, 'timeout');
    const upstream = this.options.upstream();
    if (!this.framer.correlated) {
      // Its reply may still come; on a new connection it cannot reach the next client.
      upstream.reset('timeout');
    } else if (this.consecutiveTimeouts >= this.options.config.upstreamMaxTimeouts) {
      this.consecutiveTimeouts = 0;
      upstream.reset(`${this.options.config.upstreamMaxTimeouts} consecutive timeouts`);
    } else {
      this.pump();
    }
  }

  /** The upstream became usable: a fresh decoder (nothing of the old stream survives), then send what waits. */
  onUpstreamUp(): void {
    this.decoder = this.framer.upstreamDecoder();
    this.consecutiveTimeouts = 0;
    this.lastExchangeEndedAt = performance.now();
    this.pump();
  }

  /**
   * The connection (or an attempt) ended. Requests that were sent get 0x0B: the device may have acted on them, so they are
   * never sent twice. If the upstream is now in backoff, queued requests get 0x0A (DESIGN §5); otherwise they wait for the
   * redial.
   */
  onUpstreamDown(): void {
    this.decoder = this.framer.upstreamDecoder();
    for (const request of [...this.inflight.values()]) {
      this.inflight.delete(request.upstreamId);
      this.fail(request, ExceptionCode.GATEWAY_TARGET_FAILED_TO_RESPOND, 'timeout');
    }
    if (this.options.upstream().state === 'backoff') this.failQueued(ExceptionCode.GATEWAY_PATH_UNAVAILABLE, 'unavailable');
  }

  /** Every queued request fails at once (upstream unreachable, or shutdown). */
  failQueued(code: GatewayFailure, outcome: Outcome): void {
    for (const request of this.queue.drainAll()) this.fail(request, code, outcome);
    this.options.metrics.queueDepth.set(this.queue.size);
  }

  /** A client left: its queued requests are never sent; those in flight are answered into the void. */
  onClientGone(client: MuxClientPort): void {
    for (const request of this.queue.removeAll(client)) this.complete(request, null, 'client_gone');
    this.options.metrics.queueDepth.set(this.queue.size);
  }

  stop(): void {
    clearTimeout(this.gapTimer);
    this.gapTimer = undefined;
    for (const request of [...this.inflight.values()]) clearTimeout(request.timer);
    this.inflight.clear();
  }

  private fail(request: MuxRequest, code: GatewayFailure, outcome: Outcome): void {
    this.complete(request, request.client.gone ? null : (this.framer.failure(request.frame, code) ?? null), outcome);
  }

  private complete(request: MuxRequest, answer: Buffer | null, outcome: Outcome): void {
    if (request.state === 'done') return;
    const wasCounted = outcome !== 'busy';
    request.state = 'done';
    clearTimeout(request.timer);
    request.timer = undefined;
    request.answer = answer;
    const { client } = request;
    if (wasCounted) client.unanswered--;
    const finalOutcome: Outcome = client.gone ? 'client_gone' : outcome;
    this.options.metrics.requests.inc({ protocol: this.protocol, outcome: finalOutcome });
    if (finalOutcome !== 'client_gone') {
      this.options.metrics.requestDuration.observe((performance.now() - request.arrivedAt) / 1000);
    }
    this.flush(client);
  }

  /** Writes answers in the client's request order; an answer that is null closes the client (nothing after it is sent). */
  private flush(client: MuxClientPort): void {
    const { outbox } = client;
    let released = false;
    while (outbox.length > 0 && outbox[0]!.state === 'done') {
      const request = outbox.shift()!;
      released = true;
      if (client.gone) continue;
      if (request.answer === null) {
        client.close('request failed and the protocol has no error reply');
        continue;
      }
      client.send(request.answer);
    }
    if (released) client.released();
  }
}
