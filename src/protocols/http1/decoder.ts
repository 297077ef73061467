/**
 * The HTTP/1.1 message framer (RFC 9112 §6): a push-style state machine over one direction of one connection. It finds
 * where each message starts and ends and nothing more: the head is kept as received for byte-for-byte forwarding, bodies
 * pass through as slices of the pushed chunks, and only small framing elements (a header section, a chunk-size line, a
 * trailer section) are ever copied, each under its own bound. See `../http1.ts` for the API overview.
 */
import {
  DEFAULT_MAX_CHUNK_LINE_BYTES,
  DEFAULT_MAX_HEADER_BYTES,
  Fault,
  headerValues,
  listHasToken,
  parseChunkLine,
  parseContentLength,
  parseFieldLines,
  parseRequestLine,
  parseStatusLine,
  parseTransferCodings,
  splitLines,
  type Http1BodyFraming,
  type Http1Event,
  type Http1FrameError,
  type Http1Header,
  type Http1RequestHead,
  type Http1ResponseHead,
  type Http1Version,
} from './syntax.js';

export type Http1Side = 'request' | 'response';

export interface Http1DecoderOptions {
  /** Bound on a header section and on a trailer section, start line included (MAX_HEADER_BYTES). */
  maxHeaderBytes?: number;
  /** Bound on a chunk-size line with its extensions. */
  maxChunkLineBytes?: number;
  /**
   * Accept a bare LF as a line terminator (RFC 9112 §2.2 MAY). Default: false for requests (a client that the upstream
   * might parse differently is refused), true for responses (old embedded servers send LF; a response cannot smuggle a
   * request, and any doubt about a response already forces a redial).
   */
  allowBareLf?: boolean;
  /** RFC 9112 §3.2: an HTTP/1.1 request without Host MUST get 400. Default true. */
  requireHost?: boolean;
}

/**
 * - `idle`    between messages, nothing buffered (an EOF here is a clean close).
 * - `head`    part of a start line or header section has arrived.
 * - `body`    inside a body (including chunk framing and trailers).
 * - `closed`  the last message did not keep the connection alive; further input is discarded (`discardedBytes`).
 * - `failed`  an `error` event was emitted; nothing more will be.
 * - `ended`   `end()` was called.
 */
export type Http1DecoderState = 'idle' | 'head' | 'body' | 'closed' | 'failed' | 'ended';

type Phase = 'head' | 'length' | 'close' | 'chunk-line' | 'chunk-data' | 'trailers' | 'closed' | 'failed' | 'ended';

// Local copies: the line scanner reads them once per byte, and a module binding can cost a getter call under some loaders.
const CR = 0x0d;
const LF = 0x0a;
const EMPTY = Buffer.alloc(0);
const NO_TRAILERS: readonly Http1Header[] = [];

export class Http1Decoder {
  readonly side: Http1Side;
  private readonly maxHeaderBytes: number;
  private readonly maxChunkLineBytes: number;
  private readonly allowBareLf: boolean;
  private readonly requireHost: boolean;

  private phase: Phase = 'head';
  /** Methods of requests sent upstream and not yet finally answered, oldest first (response side). */
  private readonly awaiting: string[] = [];
  /** Body bytes still due in a Content-Length body or in the current chunk. */
  private remaining = 0;
  /** Whether the connection persists after the current message. */
  private keepAlive = true;
  private fatal: Http1FrameError | undefined;
  private discarded = 0;

  // A framing element being scanned (header section, chunk-size line, trailer section): copies of its bytes from earlier
  // pushes, and where the line scanner stands.
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes this element may still occupy. */
  private budget = 0;
  /** Content bytes (CR and LF excluded) in the current line. */
  private lineBytes = 0;
  private prevCR = false;
  /** Head: a non-empty line (the start line) has been seen; empty lines before it are skipped (RFC 9112 §2.2). */
  private sawStartLine = false;
  /** Chunk line: the CRLF that ends the previous chunk's data has not been seen yet (RFC 9112 §7.1). */
  private afterData = false;

  constructor(side: Http1Side, options: Http1DecoderOptions = {}) {
    this.side = side;
    this.maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
    this.maxChunkLineBytes = options.maxChunkLineBytes ?? DEFAULT_MAX_CHUNK_LINE_BYTES;
    this.allowBareLf = options.allowBareLf ?? side === 'response';
    this.requireHost = options.requireHost ?? true;
    this.startElement('head');
  }

  /** Bytes held between pushes: at most one framing element, never body bytes. */
  get bufferedBytes(): number {
    return this.pendingBytes;
  }

  /** Bytes received after a message that closed the connection, thrown away. */
  get discardedBytes(): number {
    return this.discarded;
  }

  /** Requests whose final response has not begun yet (response side). */
  get awaitingResponses(): number {
    return this.awaiting.length;
  }

  /** The error that killed the decoder, if any (as in `FrameDecoder` of `framing.ts`). */
  get error(): Http1FrameError | undefined {
    return this.fatal;
  }

  get state(): Http1DecoderState {
    switch (this.phase) {
      case 'head':
        return this.pendingBytes === 0 && this.lineBytes === 0 && !this.prevCR ? 'idle' : 'head';
      case 'closed':
      case 'failed':
      case 'ended':
        return this.phase;
      default:
        return 'body';
    }
  }

  /**
   * Response side: a request with this method is being sent upstream; its response (after any 1xx) comes next. Call it
   * before writing the request, once per request, in order. The method decides framing: HEAD answers have no body, and a
   * 2xx to CONNECT would be a tunnel (refused).
   */
  expectResponseTo(method: string): void {
    if (this.side !== 'response') throw new TypeError('expectResponseTo() is for response decoders');
    this.awaiting.push(method);
  }

  /**
   * Frames as much of `chunk` as possible. Never throws on any input. Once dead, every push returns the same `error` event
   * again (the `FrameDecoder` contract of `framing.ts`); after `end()` it returns nothing.
   */
  push(chunk: Buffer): Http1Event[] {
    const events: Http1Event[] = [];
    if (this.phase === 'failed' && this.fatal) return [{ type: 'error', error: this.fatal, wire: EMPTY }];
    let pos = 0;
    while (pos < chunk.length) {
      switch (this.phase) {
        case 'head':
          if (this.side === 'response' && this.awaiting.length === 0 && this.state === 'idle') {
            // Bytes nobody asked for (a 408 before closing, junk after a response) must not answer the next request.
            this.fail(new Fault('unsolicited-response', 'bytes arrived while no request was outstanding'), events);
            return events;
          }
          pos = this.scanElement(chunk, pos, events);
          break;
        case 'chunk-line':
        case 'trailers':
          pos = this.scanElement(chunk, pos, events);
          break;
        case 'length':
        case 'chunk-data':
          pos = this.takeBody(chunk, pos, events);
          break;
        case 'close': {
          const data = chunk.subarray(pos);
          events.push({ type: 'body', data, wire: data });
          pos = chunk.length;
          break;
        }
        case 'closed':
          this.discarded += chunk.length - pos;
          pos = chunk.length;
          break;
        case 'failed':
        case 'ended':
          return events;
      }
    }
    return events;
  }

  /**
   * The peer closed its sending side. Completes a close-delimited response body; a message cut short, or a response
   * still awaited, is an `error` with reason `truncated`. The decoder accepts no input afterwards.
   */
  end(): Http1Event[] {
    const events: Http1Event[] = [];
    switch (this.phase) {
      case 'close':
        this.phase = 'ended';
        events.push({ type: 'end', trailers: NO_TRAILERS, wire: EMPTY });
        return events;
      case 'head':
        if (this.state === 'idle' && this.awaiting.length === 0) break;
        return this.endFailed(
          this.state === 'idle' ? 'the connection closed before a response' : 'the connection closed inside a message head',
          events,
        );
      case 'length':
      case 'chunk-line':
      case 'chunk-data':
      case 'trailers':
        return this.endFailed('the connection closed inside a message body', events);
      case 'failed':
      case 'closed':
        break;
      case 'ended':
        return events;
    }
    this.phase = 'ended';
    return events;
  }

  private endFailed(message: string, events: Http1Event[]): Http1Event[] {
    this.fail(new Fault('truncated', message), events);
    this.phase = 'ended';
    return events;
  }

  // ------------------------------------------------------------------------------------------------------ scanning

  private startElement(phase: 'head' | 'chunk-line' | 'trailers', afterData = false): void {
    this.phase = phase;
    this.pending = [];
    this.pendingBytes = 0;
    this.lineBytes = 0;
    this.prevCR = false;
    this.sawStartLine = false;
    this.afterData = afterData;
    this.budget = phase === 'chunk-line' ? this.maxChunkLineBytes : this.maxHeaderBytes;
  }

  /**
   * Scans lines of the current framing element until it is complete (then handles it) or the chunk runs out (then keeps a
   * copy of the partial element). Checks every line terminator on the way: RFC 9112 §2.2 allows CR only as part of CRLF.
   */
  private scanElement(chunk: Buffer, pos: number, events: Http1Event[]): number {
    let segmentStart = pos;
    for (let i = pos; i < chunk.length; i++) {
      if (this.pendingBytes + (i + 1 - segmentStart) > this.budget) return this.failTooLarge(events);
      const byte = chunk[i]!;
      if (this.prevCR && byte !== LF) return this.fail(new Fault('bare-cr', 'CR not followed by LF'), events);
      if (byte === CR) {
        this.prevCR = true;
        continue;
      }
      if (byte !== LF) {
        this.lineBytes++;
        if (this.afterData) return this.fail(new Fault('bad-chunk', 'chunk data is longer than its chunk size'), events);
        continue;
      }
      if (!this.prevCR && !this.allowBareLf) return this.fail(new Fault('bare-lf', 'line ends in LF without CR'), events);
      const empty = this.lineBytes === 0;
      this.lineBytes = 0;
      this.prevCR = false;
      if (this.phase === 'head' && !this.sawStartLine) {
        if (!empty) {
          this.sawStartLine = true;
          continue;
        }
        // RFC 9112 §2.2: empty lines before a request line SHOULD be ignored; they still count against the bound.
        this.budget -= this.pendingBytes + (i + 1 - segmentStart);
        this.pending = [];
        this.pendingBytes = 0;
        segmentStart = i + 1;
        continue;
      }
      if (this.phase === 'chunk-line' && this.afterData) {
        this.afterData = false; // the CRLF after chunk-data; the chunk-size line follows
        continue;
      }
      if (this.phase === 'chunk-line') {
        if (empty) return this.fail(new Fault('bad-chunk', 'empty chunk-size line'), events);
      } else if (!empty) {
        continue; // a field line; the section ends at the empty line
      }
      const tail = chunk.subarray(segmentStart, i + 1);
      // A head is owned, never a view of the pushed chunk (RawFrame in framing.ts): a request queued behind another
      // exchange must not pin a whole socket read. Chunk lines and trailers, forwarded at once, may stay views.
      const wire =
        this.pending.length > 0 ? Buffer.concat([...this.pending, tail]) : this.phase === 'head' ? Buffer.from(tail) : tail;
      this.pending = [];
      this.pendingBytes = 0;
      this.completeElement(wire, events);
      return i + 1;
    }
    if (segmentStart < chunk.length) {
      // A copy, so that a few header bytes never pin a whole socket read in memory.
      const rest = Buffer.from(chunk.subarray(segmentStart));
      this.pending.push(rest);
      this.pendingBytes += rest.length;
    }
    return chunk.length;
  }

  private completeElement(wire: Buffer, events: Http1Event[]): void {
    switch (this.phase) {
      case 'head':
        this.completeHead(wire, events);
        return;
      case 'chunk-line': {
        // The element is [CRLF after the previous chunk] chunk-size-line CRLF; parse only the last line.
        let end = wire.length - 1;
        if (wire[end - 1] === CR) end--;
        const start = wire.lastIndexOf(LF, end - 1) + 1;
        const parsed = parseChunkLine(wire.subarray(start, end));
        if (parsed instanceof Fault) {
          this.fail(parsed, events);
          return;
        }
        events.push({ type: 'chunk', size: parsed.size, extensions: parsed.extensions, wire });
        if (parsed.size === 0) {
          this.startElement('trailers'); // RFC 9112 §7.1.2: last-chunk, then a trailer section ending in an empty line
        } else {
          this.phase = 'chunk-data';
          this.remaining = parsed.size;
        }
        return;
      }
      case 'trailers': {
        const trailers = parseFieldLines(splitLines(wire));
        if (trailers instanceof Fault) {
          this.fail(trailers, events);
          return;
        }
        this.finishMessage(trailers, wire, events);
        return;
      }
      default:
        return;
    }
  }

  private takeBody(chunk: Buffer, pos: number, events: Http1Event[]): number {
    const end = Math.min(chunk.length, pos + this.remaining);
    const data = chunk.subarray(pos, end);
    events.push({ type: 'body', data, wire: data });
    this.remaining -= data.length;
    if (this.remaining === 0) {
      if (this.phase === 'chunk-data') this.startElement('chunk-line', true);
      else this.finishMessage(NO_TRAILERS, EMPTY, events);
    }
    return end;
  }

  private finishMessage(trailers: readonly Http1Header[], wire: Buffer, events: Http1Event[]): void {
    events.push({ type: 'end', trailers, wire });
    if (this.keepAlive) this.startElement('head');
    else this.phase = 'closed';
  }

  // ----------------------------------------------------------------------------------------------------------- heads

  private completeHead(raw: Buffer, events: Http1Event[]): void {
    const head = this.side === 'request' ? parseRequestHead(raw, this.requireHost) : this.parseResponseHead(raw);
    if (head instanceof Fault) {
      this.fail(head, events);
      return;
    }
    events.push({ type: 'head', head, wire: head.raw });
    // An interim response never ends the connection by itself: the final response follows on it.
    this.keepAlive = head.kind === 'response' && head.interim ? true : head.keepAlive;
    const body = head.body;
    if (body.kind === 'none' || (body.kind === 'length' && body.length === 0)) {
      this.finishMessage(NO_TRAILERS, EMPTY, events);
    } else if (body.kind === 'length') {
      this.phase = 'length';
      this.remaining = body.length;
    } else if (body.kind === 'chunked') {
      this.startElement('chunk-line');
    } else {
      this.phase = 'close';
    }
  }

  private parseResponseHead(raw: Buffer): Http1ResponseHead | Fault {
    const lines = splitLines(raw);
    const statusLine = parseStatusLine(lines[0]!);
    if (statusLine instanceof Fault) return statusLine;
    const headers = parseFieldLines(lines.slice(1));
    if (headers instanceof Fault) return headers;
    const { version, status, reason } = statusLine;
    const requestMethod = this.awaiting[0]!;
    // We refuse Upgrade requests, so a 101 means the upstream switched protocols unasked (RFC 9110 §15.2.2).
    if (status === 101) return new Fault('switching-protocols', 'upstream answered 101 Switching Protocols');
    const interim = status < 200;
    if (!interim) this.awaiting.shift();
    // RFC 9112 §6.3 rule 2: a 2xx to CONNECT turns the connection into a tunnel; CONNECT is never forwarded, so refuse.
    if (requestMethod === 'CONNECT' && status < 300 && !interim) return new Fault('connect', 'upstream opened a CONNECT tunnel');
    let body: Http1BodyFraming;
    // RFC 9112 §6.3 rule 1: these responses end at the empty line whatever their Content-Length or Transfer-Encoding say.
    if (requestMethod === 'HEAD' || interim || status === 204 || status === 304) body = { kind: 'none' };
    else {
      const framing = responseBodyFraming(version, headers);
      if (framing instanceof Fault) return framing;
      body = framing;
    }
    const closeDelimited = body.kind === 'close';
    return {
      kind: 'response',
      version,
      raw,
      headers,
      keepAlive: !closeDelimited && persists(version, headers),
      body,
      status,
      reason,
      requestMethod,
      interim,
      closeDelimited,
    };
  }

  // ---------------------------------------------------------------------------------------------------------- errors

  private fail(fault: Fault, events: Http1Event[]): number {
    const error = fault.toError(this.side);
    this.fatal = error;
    this.phase = 'failed';
    this.pending = [];
    this.pendingBytes = 0;
    events.push({ type: 'error', error, wire: EMPTY });
    return Number.MAX_SAFE_INTEGER; // past any chunk: stop scanning
  }

  private failTooLarge(events: Http1Event[]): number {
    const fault =
      this.phase === 'head'
        ? new Fault('headers-too-large', `header section exceeds ${this.maxHeaderBytes} bytes`)
        : this.phase === 'trailers'
          ? new Fault('trailers-too-large', `trailer section exceeds ${this.maxHeaderBytes} bytes`)
          : new Fault('chunk-line-too-large', `chunk-size line exceeds ${this.maxChunkLineBytes} bytes`);
    return this.fail(fault, events);
  }
}

// ---------------------------------------------------------------------------------------------------- head rules

function parseRequestHead(raw: Buffer, requireHost: boolean): Http1RequestHead | Fault {
  const lines = splitLines(raw);
  const requestLine = parseRequestLine(lines[0]!);
  if (requestLine instanceof Fault) return requestLine;
  const headers = parseFieldLines(lines.slice(1));
  if (headers instanceof Fault) return headers;
  const { method, target, version } = requestLine;
  // RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, or with more than one Host line.
  const hosts = headerValues(headers, 'host');
  if (hosts.length > 1) return new Fault('duplicate-host', 'more than one Host field line');
  if (hosts.length === 0 && version === '1.1' && requireHost) return new Fault('missing-host', 'HTTP/1.1 request without Host');
  const body = requestBodyFraming(version, headers);
  if (body instanceof Fault) return body;
  // A mux carries one exchange at a time; a tunnel or a protocol switch would hold the shared upstream forever.
  if (method === 'CONNECT') return new Fault('connect', 'CONNECT is not supported');
  if (headerValues(headers, 'upgrade').length > 0) return new Fault('upgrade', 'Upgrade is not supported');
  return {
    kind: 'request',
    version,
    raw,
    headers,
    keepAlive: persists(version, headers),
    body,
    method,
    target,
    expectContinue: version === '1.1' && headerValues(headers, 'expect').some((value) => value.toLowerCase() === '100-continue'),
  };
}

/** RFC 9112 §9.3: whether the connection persists after this message. */
function persists(version: Http1Version, headers: readonly Http1Header[]): boolean {
  const connection = headerValues(headers, 'connection');
  if (listHasToken(connection, 'close')) return false;
  return version === '1.1' || listHasToken(connection, 'keep-alive');
}

const FRAMING_FIELD_NAMES: ReadonlySet<string> = new Set(['content-length', 'transfer-encoding']);

/** RFC 9112 §6.3 for requests: chunked, Content-Length or no body; every ambiguity is refused rather than resolved. */
function requestBodyFraming(version: Http1Version, headers: readonly Http1Header[]): Http1BodyFraming | Fault {
  // Not an RFC rule: CGI-style servers map `_` and `-` in field names to the same variable, so `Transfer_Encoding` could
  // frame a body for the upstream while we ignore it. Nobody sends these names honestly.
  for (const { name } of headers) {
    if (name.includes('_') && FRAMING_FIELD_NAMES.has(name.toLowerCase().replaceAll('_', '-'))) {
      return new Fault('bad-header', `field name "${name}" imitates a framing field`);
    }
  }
  const transferEncoding = headerValues(headers, 'transfer-encoding');
  const contentLength = headerValues(headers, 'content-length');
  if (transferEncoding.length > 0) {
    // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
    if (version === '1.0') return new Fault('te-in-http10', 'Transfer-Encoding in an HTTP/1.0 request');
    // RFC 9112 §6.3 rule 3: both is a smuggling signature; a server MAY reject it, and a byte-for-byte relay must.
    if (contentLength.length > 0) return new Fault('cl-and-te', 'both Content-Length and Transfer-Encoding');
    const codings = parseTransferCodings(transferEncoding);
    if (codings instanceof Fault) return codings;
    // RFC 9112 §6.3 rule 4: a request whose final coding is not chunked has no determinable length (400); chunked may be
    // applied only once (§6.1). `chunked, identity` fails here: `identity` is no longer a transfer coding.
    const chunkedCount = codings.filter((coding) => coding === 'chunked').length;
    if (codings.at(-1) !== 'chunked' || chunkedCount !== 1) {
      const list = transferEncoding.join(', ');
      return new Fault('bad-transfer-encoding', `Transfer-Encoding "${list}" does not end in a single chunked`);
    }
    if (codings.length > 1) return new Fault('unsupported-transfer-coding', `transfer coding "${codings[0]}" is not supported`);
    return { kind: 'chunked' };
  }
  if (contentLength.length > 0) {
    const length = parseContentLength(contentLength, false);
    if (length instanceof Fault) return length;
    return { kind: 'length', length };
  }
  return { kind: 'none' }; // RFC 9112 §6.3 rule 7
}

/** RFC 9112 §6.3 for responses that may have a body. */
function responseBodyFraming(version: Http1Version, headers: readonly Http1Header[]): Http1BodyFraming | Fault {
  const transferEncoding = headerValues(headers, 'transfer-encoding');
  const contentLength = headerValues(headers, 'content-length');
  if (transferEncoding.length > 0) {
    if (version === '1.0') return new Fault('te-in-http10', 'Transfer-Encoding in an HTTP/1.0 response');
    // Rule 3 lets a recipient use Transfer-Encoding, but an intermediary must then drop Content-Length before forwarding,
    // which a byte-for-byte relay cannot do: refuse.
    if (contentLength.length > 0) return new Fault('cl-and-te', 'both Content-Length and Transfer-Encoding');
    const codings = parseTransferCodings(transferEncoding);
    if (codings instanceof Fault) return codings;
    const chunkedCount = codings.filter((coding) => coding === 'chunked').length;
    if (chunkedCount > 1) return new Fault('bad-transfer-encoding', 'chunked applied more than once');
    // Rule 4: a response whose final coding is not chunked runs until the connection closes.
    return codings.at(-1) === 'chunked' ? { kind: 'chunked' } : { kind: 'close' };
  }
  if (contentLength.length > 0) {
    const length = parseContentLength(contentLength, true);
    if (length instanceof Fault) return length;
    return { kind: 'length', length };
  }
  return { kind: 'close' }; // rule 8
}
