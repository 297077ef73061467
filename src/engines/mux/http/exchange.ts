/**
 * One HTTP request and its response over the shared upstream, and the request as it waits for its turn.
 *
 * An exchange has no fixed duration (a 100 MB download is one exchange), so its clock is progress, not age: it fails when
 * nothing moves for UPSTREAM_TIMEOUT_MS. Progress is any byte from the upstream, request bytes written to it, or either
 * socket draining. Before the response head that is exactly "UPSTREAM_TIMEOUT_MS without an answer after the last request
 * byte" (504); after it, it catches an upstream that stops mid-body and a client that stops reading, either of which
 * would otherwise hold the shared upstream forever.
 */
import type { Http1RequestHead, Http1ResponseHead } from '../../../protocols/http1.js';
import type { HttpClient } from './client.js';

export type HttpOutcome = 'ok' | 'timeout' | 'unavailable' | 'rejected' | 'client_gone';

/** A request of one client: queued, being exchanged, or done (its answer written or waiting for earlier answers). */
export interface HttpRequest {
  readonly client: HttpClient;
  /** Undefined for a request refused before its head could be parsed. */
  readonly head: Http1RequestHead | undefined;
  /** performance.now() when its head was complete. */
  readonly arrivedAt: number;
  /** REQUEST_DEADLINE_MS after arrival: a request still queued then gets 504 and is never sent. */
  readonly deadlineAt: number;
  state: 'queued' | 'active' | 'done';
  /** Body framing bytes (views of socket reads) that arrived while it was queued; bounded: the client is paused then. */
  pending: Buffer[];
  /** Its last byte has arrived from the client. */
  received: boolean;
  timer: NodeJS.Timeout | undefined;
  /** A response switchboard wrote for it (400/501/502/504/505); undefined when the upstream's response was streamed. */
  answer: Buffer | undefined;
  /** The client is closed once this request is answered. */
  closeAfter: boolean;
  /** Sent again once after the upstream dropped a reused connection before answering (idempotent, bodiless requests). */
  retried: boolean;
}

export function newRequest(client: HttpClient, head: Http1RequestHead | undefined, deadlineMs: number): HttpRequest {
  const now = performance.now();
  return {
    client,
    head,
    arrivedAt: now,
    deadlineAt: now + deadlineMs,
    state: 'queued',
    pending: [],
    received: false,
    timer: undefined,
    answer: undefined,
    closeAfter: head !== undefined && !head.keepAlive,
    retried: false,
  };
}

export class Exchange {
  /** The final (non-1xx) response head, once forwarded: from then on a failure can only close the client. */
  finalHead: Http1ResponseHead | undefined;
  /** A 1xx response is being forwarded; its `end` is not the end of the exchange. */
  interimOpen = false;
  /** Response bytes received (0 means the upstream never started answering: a retry is safe for idempotent requests). */
  responseBytes = 0;
  private lastProgressAt = performance.now();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly request: HttpRequest,
    private readonly timeoutMs: number,
    private readonly onStalled: (exchange: Exchange) => void,
  ) {
    this.arm(timeoutMs);
  }

  /** Something moved: one field write, so it is cheap on the per-chunk path; the timer reads it when it fires. */
  progress(): void {
    this.lastProgressAt = performance.now();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(delayMs: number): void {
    this.timer = setTimeout(() => this.check(), Math.max(1, Math.ceil(delayMs)));
  }

  private check(): void {
    this.timer = undefined;
    const idle = performance.now() - this.lastProgressAt;
    // Timers fire in whole milliseconds, possibly a fraction early: allow 1 ms.
    if (idle >= this.timeoutMs - 1) this.onStalled(this);
    else this.arm(this.timeoutMs - idle);
  }
}
