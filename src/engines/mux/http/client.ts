/**
 * One HTTP client connection in mux mode: its request framer, its requests in arrival order (which is the order answers
 * are written in), and when its socket is read. A client is read only while that cannot make switchboard buffer: not
 * while one of its requests is queued with its body still to come (the body waits in the client's TCP window, not in our
 * memory), not while it has CLIENT_QUEUE requests queued, not while the upstream cannot take its body.
 */
import type { Socket } from 'node:net';
import type { Logger } from '../../../log.js';
import type { Metrics } from '../../../metrics.js';
import { remoteAddressOf } from '../../../net/listen.js';
import { Http1Decoder, type Http1Event, type Http1FrameError, type Http1RequestHead } from '../../../protocols/http1.js';
import type { QueueOwner } from '../fair-queue.js';
import { newRequest, type HttpRequest } from './exchange.js';
import { generatedResponse, requestErrorStatus, type GeneratedStatus } from './replies.js';

/**
 * After switchboard closes a client, it keeps reading (and discarding) for this long before destroying the socket: closing
 * with unread input makes the kernel send RST, which can destroy the response the client has not read yet (RFC 9112 §9.6).
 */
export const LINGER_MS = 2000;

/** What a client needs from the engine. */
export interface HttpClientHost {
  readonly draining: boolean;
  /** The upstream cannot take more request bytes until it drains. */
  readonly uploadBlocked: boolean;
  submit(request: HttpRequest): void;
  /** Body framing bytes of the request being exchanged, to the upstream. */
  forward(wire: Buffer): void;
  /** The last byte of `request` has arrived. */
  received(request: HttpRequest): void;
  /** The client's framing broke inside `request` (or before a head, then `request` is new and was never queued). */
  refuse(request: HttpRequest, status: GeneratedStatus, detail: string): void;
  /** The client is closed or closing: none of its queued requests may be sent. */
  left(client: HttpClient, reason: string): void;
  /** Runs `fn` with upstream writes gathered into one syscall. */
  batchUpstream(fn: () => void): void;
}

export interface HttpClientOptions {
  maxHeaderBytes: number;
  clientQueue: number;
  requestDeadlineMs: number;
  log: Logger;
  metrics: Metrics;
}

export class HttpClient implements QueueOwner<HttpRequest> {
  /** Its requests not yet sent upstream (owned by the FairQueue). */
  readonly queue: HttpRequest[] = [];
  inRing = false;
  /** Requests not yet answered to the client, in arrival order. */
  readonly requests: HttpRequest[] = [];
  gone = false;
  bytesIn = 0;
  bytesOut = 0;
  readonly address: string;
  readonly connectedAt = new Date().toISOString();
  private readonly decoder: Http1Decoder;
  /** The request whose body is still arriving. */
  private receiving: HttpRequest | undefined;
  /** The framing broke: nothing more is read from this client. */
  private broken = false;
  private readPaused = false;
  private drainWaiter: (() => void) | undefined;

  constructor(
    readonly socket: Socket,
    private readonly host: HttpClientHost,
    private readonly options: HttpClientOptions,
  ) {
    this.address = `${remoteAddressOf(socket)}:${socket.remotePort ?? 0}`;
    this.decoder = new Http1Decoder('request', { maxHeaderBytes: options.maxHeaderBytes });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    // Sockets here are not half-open: a client that shuts down its sending side has left, and its queue is never sent.
    socket.once('close', () => this.left('closed'));
  }

  /** Bytes for the client (a response, in order). */
  write(bytes: Buffer): void {
    if (this.gone || bytes.length === 0) return;
    this.bytesOut += bytes.length;
    this.options.metrics.hot.bytesOut += bytes.length;
    this.socket.write(bytes);
  }

  /** The client's write buffer is above its high-water mark. */
  get needsDrain(): boolean {
    return this.socket.writableNeedDrain;
  }

  /** Calls `fn` when the client's write buffer drains (one listener however often it is asked; the latest `fn` wins). */
  onceDrain(fn: () => void): void {
    const armed = this.drainWaiter !== undefined;
    this.drainWaiter = fn;
    if (armed) return;
    this.socket.once('drain', () => {
      const waiter = this.drainWaiter;
      this.drainWaiter = undefined;
      waiter?.();
    });
  }

  /** Writes every answer that is due, in request order; closes the client after one that says so. */
  flush(): void {
    while (this.requests.length > 0 && this.requests[0]!.state === 'done') {
      const request = this.requests.shift()!;
      if (this.gone) continue;
      if (request.answer) this.write(request.answer);
      if (request.closeAfter) {
        this.close(request.head && !request.head.keepAlive ? 'request said Connection: close' : 'connection closed after the answer');
        return;
      }
    }
    this.updateReading();
  }

  /** Ends the connection after what was written; queued requests are never sent. */
  close(reason: string): void {
    if (this.gone) return;
    this.left(reason);
    const socket = this.socket;
    socket.end();
    // Keep reading (into the void) so unread input does not turn our FIN into an RST; then give up.
    socket.resume();
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  }

  /** Reads from the client only while nothing it sends would have to be buffered. */
  updateReading(): void {
    if (this.gone) return;
    const receiving = this.receiving;
    const streaming = receiving?.state === 'active';
    const blocked =
      this.broken ||
      (this.host.draining && !streaming) ||
      this.queue.length >= this.options.clientQueue ||
      receiving?.state === 'queued' ||
      (streaming && this.host.uploadBlocked);
    if (blocked && !this.readPaused) {
      this.readPaused = true;
      this.socket.pause();
    } else if (!blocked && this.readPaused) {
      this.readPaused = false;
      this.socket.resume();
    }
  }

  private left(reason: string): void {
    if (this.gone) return;
    this.gone = true;
    this.host.left(this, reason);
  }

  private onData(chunk: Buffer): void {
    if (this.gone || this.broken) return;
    this.bytesIn += chunk.length;
    this.options.metrics.hot.bytesIn += chunk.length;
    const events = this.decoder.push(chunk);
    this.host.batchUpstream(() => {
      for (const event of events) {
        this.onEvent(event);
        if (this.broken || this.gone) break;
      }
    });
    this.updateReading();
  }

  private onEvent(event: Http1Event): void {
    switch (event.type) {
      case 'head': {
        const head = event.head as Http1RequestHead;
        const request = newRequest(this, head, this.options.requestDeadlineMs);
        // A request without a body is complete with its head (its `end` event follows in the same push).
        if (head.body.kind === 'none' || (head.body.kind === 'length' && head.body.length === 0)) request.received = true;
        this.requests.push(request);
        this.receiving = request;
        this.host.submit(request);
        return;
      }
      case 'body':
      case 'chunk':
        if (this.receiving) this.carry(this.receiving, event.wire);
        return;
      case 'end': {
        const request = this.receiving;
        this.receiving = undefined;
        if (!request) return;
        this.carry(request, event.wire);
        request.received = true;
        this.host.received(request);
        return;
      }
      case 'error':
        this.refuse(event.error);
        return;
    }
  }

  /** Body bytes go upstream while the request is exchanged, wait with it while it is queued, and are dropped once it is answered. */
  private carry(request: HttpRequest, wire: Buffer): void {
    if (wire.length === 0) return;
    if (request.state === 'active') this.host.forward(wire);
    else if (request.state === 'queued') request.pending.push(wire);
  }

  /** A malformed request: its status (400/501/505) in turn, then the connection is closed (DESIGN §5). */
  private refuse(error: Http1FrameError): void {
    this.broken = true;
    const { log, metrics } = this.options;
    metrics.connectionsRejected.inc({ reason: 'bad_frame' });
    log.info({ client: this.address, reason: error.reason, code: error.code, status: error.status }, 'malformed request refused');
    const status = requestErrorStatus(error.status);
    const detail = `malformed request (${error.reason})`;
    const request = this.receiving;
    this.receiving = undefined;
    if (request && request.state !== 'done') {
      this.host.refuse(request, status, detail);
      return;
    }
    if (request?.closeAfter) return; // already answered and closing
    const refused = newRequest(this, undefined, 0);
    this.requests.push(refused);
    this.host.refuse(refused, status, detail);
  }
}

/** The response for a refused request: always with `connection: close`. */
export function refusal(status: GeneratedStatus, request: HttpRequest, detail: string): Buffer {
  return generatedResponse(status, { close: true, head: request.head?.method === 'HEAD', detail });
}
