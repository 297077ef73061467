/**
 * HTTP in mux mode (DESIGN §5 `http`): requests of many clients queued fairly (FairQueue), one exchange at a time on the one
 * upstream, request and response streamed byte for byte with backpressure both ways. Every request ends exactly once with
 * an outcome (requests_total{protocol="http",outcome}):
 *
 *   ok              the upstream's response was forwarded whole (any status: a 500 from the device is still ok)
 *   timeout         504: REQUEST_DEADLINE_MS passed while queued, or the exchange made no progress for UPSTREAM_TIMEOUT_MS
 *                   (after the response head: the client is closed instead)
 *   unavailable     502: the last connect attempt failed or the upstream is in backoff; or the upstream closed, or sent
 *                   what cannot be framed, before the response head (after it: the client is closed, since a partial
 *                   response cannot be completed). DESIGN §2 fixes the outcome names; for HTTP they follow the status
 *                   code: 502 is always `unavailable`, 504 always `timeout`.
 *   rejected        400/501/505: the client's request could not be framed or is not supported (the client is closed)
 *   client_gone     the client left first (or was closed after an earlier answer); a queued request is then never sent
 * There is no `busy`: past CLIENT_QUEUE a client is simply not read (TCP backpressure).
 *
 * Whenever the upstream's framing is in doubt (a framing error, bytes nobody asked for, a close mid-response, a timeout, a
 * client that left mid-exchange) the upstream is reset and redialled, so a late byte can never reach the next client.
 */
import type { MuxConfig } from '../../../config/modes/mux.js';
import type { Logger } from '../../../log.js';
import type { Metrics } from '../../../metrics.js';
import { Http1Decoder, type Http1ResponseHead } from '../../../protocols/http1.js';
import { FairQueue } from '../fair-queue.js';
import { RequestGap } from '../request-gap.js';
import type { Upstream } from '../upstream.js';
import { refusal, type HttpClient, type HttpClientHost } from './client.js';
import { Exchange, type HttpOutcome, type HttpRequest } from './exchange.js';
import { DETAIL, generatedResponse, type GeneratedStatus } from './replies.js';

const PROTOCOL = 'http';
/** Node timers fire in whole milliseconds: a request with less time left than this cannot be answered in time. */
const TIMER_RESOLUTION_MS = 1;
/**
 * Methods sent again, once, when a reused upstream connection closes before any byte of the answer (the server closed an
 * idle keep-alive connection as we wrote): RFC 9110 §9.2.2 idempotent and safe, and only without a body.
 */
const RETRYABLE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

export interface HttpSchedulerOptions {
  config: MuxConfig;
  upstream: () => Upstream;
  log: Logger;
  metrics: Metrics;
}

export class HttpScheduler implements Omit<HttpClientHost, 'left'> {
  draining = false;
  uploadBlocked = false;
  private readonly queue = new FairQueue<HttpRequest, HttpClient>();
  /** A request to send before the queue (a retry keeps its place). */
  private retry: HttpRequest | undefined;
  private exchange: Exchange | undefined;
  private decoder: Http1Decoder;
  private downloadPaused = false;
  /** onUpstreamData is running: pump() waits until it is done. */
  private handlingUpstream = false;
  /** Exchanges completed on the current upstream connection: a retry is only safe on a reused one. */
  private servedOnConnection = 0;
  private readonly gap: RequestGap;

  constructor(private readonly options: HttpSchedulerOptions) {
    this.decoder = this.newDecoder();
    this.gap = new RequestGap(options.config.requestGapMs, () => this.pump());
  }

  get queued(): number {
    return this.queue.size + (this.retry ? 1 : 0);
  }

  get inflight(): number {
    return this.exchange ? 1 : 0;
  }

  batchUpstream(fn: () => void): void {
    this.options.upstream().batch(fn);
  }

  // -------------------------------------------------------------------------------------------------- client side

  submit(request: HttpRequest): void {
    const upstream = this.options.upstream();
    if (upstream.state === 'backoff') {
      this.fail(request, 502, 'unavailable', DETAIL.unavailable);
      return;
    }
    if (upstream.state === 'idle') upstream.dial();
    this.queue.push(request.client, request);
    this.pump();
    // Started at once (the common case): no deadline timer to arm and clear.
    if (request.state === 'queued') request.timer = setTimeout(() => this.expire(request), Math.max(0, request.deadlineAt - performance.now()));
  }

  forward(wire: Buffer): void {
    const upstream = this.options.upstream();
    this.exchange?.progress();
    if (!upstream.write(wire)) this.blockUpload(upstream);
  }

  received(request: HttpRequest): void {
    if (request.state === 'active') this.exchange?.progress();
  }

  refuse(request: HttpRequest, status: GeneratedStatus, detail: string): void {
    const exchange = this.exchange;
    if (request.state === 'active' && exchange?.request === request) {
      // Part of this request already reached the upstream, which now waits for the rest: that connection is lost.
      this.abort(exchange, status, 'rejected', detail, 'a client sent a malformed request body');
      return;
    }
    if (request.state === 'done') return;
    this.unqueue(request);
    request.closeAfter = true;
    this.complete(request, 'rejected', refusal(status, request, detail));
  }

  /** A client left or was closed: its queued requests are never sent; an exchange of its own is abandoned. */
  left(client: HttpClient): void {
    for (const request of this.queue.removeAll(client)) this.complete(request, 'client_gone');
    if (this.retry?.client === client) {
      const request = this.retry;
      this.retry = undefined;
      this.complete(request, 'client_gone');
    }
    const exchange = this.exchange;
    if (exchange?.request.client === client) {
      // The rest of its response (or of its request) is still on the wire: only a new connection is clean.
      this.abort(exchange, 502, 'client_gone', '', 'a client left during its exchange');
    }
    this.pump();
  }

  // ------------------------------------------------------------------------------------------------ upstream side

  onUpstreamUp(): void {
    this.decoder = this.newDecoder();
    this.servedOnConnection = 0;
    this.gap.exchangeEnded();
    this.pump();
  }

  /** The connection (or an attempt) ended; everything Upstream read from it has been through onUpstreamData. */
  onUpstreamDown(): void {
    const exchange = this.exchange;
    this.uploadBlocked = false;
    this.downloadPaused = false;
    if (exchange) {
      // A body delimited by the close ends here (RFC 9112 §6.3 rule 8); any other response was cut short.
      const events = this.decoder.end();
      if (exchange.finalHead?.closeDelimited && events.some((event) => event.type === 'end')) {
        this.finish(exchange, true);
      } else if (this.retryable(exchange)) {
        this.endExchange(exchange);
        const { request } = exchange;
        this.options.log.debug({ client: request.client.address }, 'upstream closed a reused connection before answering; sending again');
        request.state = 'queued';
        request.retried = true;
        request.timer = setTimeout(() => this.expire(request), Math.max(0, request.deadlineAt - performance.now()));
        this.retry = request;
      } else {
        this.abort(exchange, 502, 'unavailable', DETAIL.upstreamClosed, undefined);
      }
    }
    this.decoder = this.newDecoder();
    this.servedOnConnection = 0;
    if (this.options.upstream().state === 'backoff') this.failQueued(502, 'unavailable', DETAIL.unavailable);
  }

  onUpstreamData(chunk: Buffer): void {
    const events = this.decoder.push(chunk);
    const exchange = this.exchange;
    let doubt: string | undefined;
    let stray = false;
    const client = exchange?.request.client;
    // Nothing starts while this chunk is handled: bytes after a response belong to the old exchange's connection.
    this.handlingUpstream = true;
    client?.socket.cork();
    try {
      try {
        for (const event of events) {
          if (event.type === 'error') {
            doubt = event.error.message;
            stray = event.error.reason === 'unsolicited-response';
            break;
          }
          if (!exchange || this.exchange !== exchange || !client) {
            doubt = 'response bytes without an exchange';
            stray = true;
            break;
          }
          exchange.progress();
          exchange.responseBytes += event.wire.length;
          switch (event.type) {
            case 'head': {
              const head = event.head as Http1ResponseHead;
              if (head.interim) exchange.interimOpen = true;
              else {
                exchange.finalHead = head;
                this.options.upstream().markHealthy();
              }
              client.write(event.wire);
              break;
            }
            case 'body':
            case 'chunk':
              client.write(event.wire);
              break;
            case 'end':
              client.write(event.wire);
              if (exchange.interimOpen) exchange.interimOpen = false;
              else this.finish(exchange, false);
              break;
          }
        }
      } finally {
        this.handlingUpstream = false;
      }
      if (doubt !== undefined) {
        if (stray) this.options.metrics.strayReplies.inc();
        const current = this.exchange;
        if (current) this.abort(current, 502, 'unavailable', DETAIL.badResponse, doubt);
        else this.options.upstream().reset(doubt);
      }
      // The next request goes upstream before this response leaves the cork: the device starts on it meanwhile.
      this.pump();
    } finally {
      client?.socket.uncork();
    }
    if (doubt === undefined && exchange && this.exchange === exchange && client?.needsDrain && !this.downloadPaused) {
      this.pauseDownload(exchange, client);
    }
  }

  // --------------------------------------------------------------------------------------------------- lifecycle

  /** Every queued request fails at once (upstream unreachable, or shutdown). */
  failQueued(status: GeneratedStatus, outcome: HttpOutcome, detail: string): void {
    const all = this.retry ? [this.retry] : [];
    this.retry = undefined;
    all.push(...this.queue.drainAll());
    for (const request of all) this.fail(request, status, outcome, detail);
  }

  /** Shutdown: what is still queued or exchanged ends as client_gone (the clients are being closed). */
  stop(): void {
    this.gap.stop();
    const all = this.retry ? [this.retry] : [];
    this.retry = undefined;
    all.push(...this.queue.drainAll());
    for (const request of all) this.complete(request, 'client_gone');
    const exchange = this.exchange;
    if (exchange) {
      this.endExchange(exchange);
      this.complete(exchange.request, 'client_gone');
    }
  }

  // ------------------------------------------------------------------------------------------------------ internals

  private newDecoder(): Http1Decoder {
    return new Http1Decoder('response', { maxHeaderBytes: this.options.config.maxHeaderBytes });
  }

  /** Starts the next exchange when the upstream is up and free and REQUEST_GAP_MS has passed. */
  private pump(): void {
    const upstream = this.options.upstream();
    while (!this.exchange && !this.handlingUpstream && upstream.usable && this.queued > 0) {
      if (!this.gap.ready()) return;
      const request = this.retry ?? this.queue.shift()!;
      if (request === this.retry) this.retry = undefined;
      if (request.deadlineAt - performance.now() < TIMER_RESOLUTION_MS) {
        // Its deadline is (all but) due and its timer has not run yet: answered now and never sent (DESIGN §5).
        this.fail(request, 504, 'timeout', DETAIL.deadline);
        continue;
      }
      this.start(request);
    }
  }

  private start(request: HttpRequest): void {
    const upstream = this.options.upstream();
    clearTimeout(request.timer);
    request.timer = undefined;
    request.state = 'active';
    const exchange = new Exchange(request, this.options.config.upstreamTimeoutMs, (stalled) => this.onStalled(stalled));
    this.exchange = exchange;
    this.decoder.expectResponseTo(request.head!.method);
    let accepted = true;
    upstream.batch(() => {
      accepted = upstream.write(request.head!.raw);
      for (const wire of request.pending) accepted = upstream.write(wire);
    });
    request.pending = [];
    if (!accepted) this.blockUpload(upstream);
    request.client.updateReading();
  }

  /** The response is complete. */
  private finish(exchange: Exchange, upstreamClosed: boolean): void {
    this.endExchange(exchange);
    const { request } = exchange;
    const head = exchange.finalHead!;
    // RFC 9112 §9.6: the client saw the same head we did, so a response that closes ends the client connection too; a
    // request whose body was not all read (the server answered early) leaves both connections out of step.
    if (!head.keepAlive || !request.received) request.closeAfter = true;
    const reusable = head.keepAlive && !request.closeAfter && request.received;
    this.servedOnConnection++;
    // Reset before the answer is completed: completing may close the client, which lets the next exchange start.
    if (!reusable && !upstreamClosed) {
      this.options.upstream().reset(request.received ? 'the exchange ended the connection (Connection: close)' : 'answered before the request body ended', true);
    }
    this.complete(request, 'ok');
  }

  /**
   * The exchange fails: a generated answer if the client has seen no final head yet, else its connection is closed.
   * `resetReason`: the upstream connection is reset first (undefined when it is already gone), so that completing the
   * request (which may close its client and start the next exchange) can never put another exchange on it.
   */
  private abort(exchange: Exchange, status: GeneratedStatus, outcome: HttpOutcome, detail: string, resetReason: string | undefined): void {
    this.endExchange(exchange);
    if (resetReason !== undefined) this.options.upstream().reset(resetReason);
    const { request } = exchange;
    if (request.state === 'done') return;
    if (exchange.finalHead) {
      request.closeAfter = true;
      if (outcome !== 'client_gone') this.options.log.warn({ client: request.client.address, outcome, detail }, 'response cut short; client closed');
      this.complete(request, outcome);
    } else {
      this.fail(request, status, outcome, detail);
    }
  }

  private endExchange(exchange: Exchange): void {
    exchange.stop();
    if (this.exchange === exchange) this.exchange = undefined;
    this.gap.exchangeEnded();
    this.uploadBlocked = false;
    if (this.downloadPaused) {
      this.downloadPaused = false;
      this.options.upstream().resumeReading();
    }
  }

  private onStalled(exchange: Exchange): void {
    if (this.exchange !== exchange) return;
    this.abort(exchange, 504, 'timeout', DETAIL.timeout, `no progress for UPSTREAM_TIMEOUT_MS (${this.options.config.upstreamTimeoutMs} ms)`);
    this.pump();
  }

  /** The deadline of a queued request. */
  private expire(request: HttpRequest): void {
    request.timer = undefined;
    if (request.state !== 'queued') return;
    this.unqueue(request);
    this.fail(request, 504, 'timeout', DETAIL.deadline);
  }

  private unqueue(request: HttpRequest): void {
    if (this.retry === request) this.retry = undefined;
    else this.queue.remove(request.client, request);
  }

  private retryable(exchange: Exchange): boolean {
    const { request } = exchange;
    return (
      exchange.responseBytes === 0 &&
      this.servedOnConnection > 0 &&
      !request.retried &&
      request.received &&
      request.head !== undefined &&
      request.head.body.kind === 'none' &&
      RETRYABLE_METHODS.has(request.head.method) &&
      !request.client.gone
    );
  }

  private blockUpload(upstream: Upstream): void {
    if (this.uploadBlocked) return;
    this.uploadBlocked = true;
    const exchange = this.exchange;
    upstream.onceDrain(() => {
      if (this.exchange !== exchange || !exchange) return;
      this.uploadBlocked = false;
      exchange.progress();
      exchange.request.client.updateReading();
    });
  }

  private pauseDownload(exchange: Exchange, client: HttpClient): void {
    this.downloadPaused = true;
    const upstream = this.options.upstream();
    upstream.pauseReading();
    client.onceDrain(() => {
      if (this.exchange !== exchange || !this.downloadPaused) return;
      this.downloadPaused = false;
      exchange.progress();
      upstream.resumeReading();
    });
  }

  /** Answers with a generated response (kept alive when the request was read whole and did not ask to close). */
  private fail(request: HttpRequest, status: GeneratedStatus, outcome: HttpOutcome, detail: string): void {
    if (request.state === 'done') return;
    if (!request.received) request.closeAfter = true;
    const answer = generatedResponse(status, { close: request.closeAfter, head: request.head?.method === 'HEAD', detail });
    this.complete(request, outcome, answer);
  }

  private complete(request: HttpRequest, outcome: HttpOutcome, answer?: Buffer): void {
    if (request.state === 'done') return;
    clearTimeout(request.timer);
    request.timer = undefined;
    request.state = 'done';
    request.pending = [];
    request.answer = answer;
    const { client } = request;
    const final: HttpOutcome = client.gone ? 'client_gone' : outcome;
    this.options.metrics.requests.inc({ protocol: PROTOCOL, outcome: final });
    if (final !== 'client_gone') this.options.metrics.requestDuration.observe((performance.now() - request.arrivedAt) / 1000);
    client.flush();
  }
}
