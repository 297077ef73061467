/**
 * HTTP/1.1 message framing (RFC 9112) for the mux engine: a pure, incremental framer with no sockets. It decides where each
 * request and response begins and ends, which is all a relay that carries one exchange at a time over a shared upstream
 * needs, and all it must get right: a framing mistake there delivers one client's response to another (request smuggling).
 *
 * ```ts
 * const requests = new Http1Decoder('request', { maxHeaderBytes });     // one per client connection
 * const responses = new Http1Decoder('response');                       // one per upstream connection
 * for (const event of requests.push(chunk)) …                           // head, body…, (chunk…,) end, repeated; or error
 * responses.expectResponseTo(head.method);                              // before writing that request upstream
 * for (const event of responses.push(chunk)) …                          // 1xx head+end pairs, then the final response
 * responses.end();                                                      // upstream EOF: ends a close-delimited body
 * ```
 *
 * API
 * - `new Http1Decoder(side: 'request' | 'response', options?: Http1DecoderOptions)`; options `maxHeaderBytes` (16384),
 *   `maxChunkLineBytes` (4096), `allowBareLf` (false for requests, true for responses), `requireHost` (true).
 * - `push(chunk: Buffer): Http1Event[]`: frames what it can; keeps at most one partial framing element (a header section, a
 *   chunk-size line, a trailer section) between pushes, copied and bounded; never body bytes. Bytes after one message are
 *   the start of the next (pipelining), in the same or a later push. Never throws.
 * - `end(): Http1Event[]`: the peer closed. Ends a close-delimited body (`end` event), or reports a message cut short (or a
 *   response still awaited) as an `error` with reason `truncated`.
 * - `expectResponseTo(method: string): void` (response side): the next final response answers a request with this method.
 * - `bufferedBytes`, `state` ('idle' | 'head' | 'body' | 'closed' | 'failed' | 'ended'), `awaitingResponses`,
 *   `discardedBytes`, `error` (the error that killed it). Like `FrameDecoder` in `framing.ts`, a dead decoder returns the
 *   same `error` event from every later push. (It does not implement `FrameDecoder`: its unit is a streamed message, not
 *   a bounded frame.)
 *
 * Events, in wire order; each carries `wire`, the input bytes it stands for, so writing every `wire` in order forwards the
 * message byte for byte:
 * - `{ type: 'head', head }`: `head.raw` is the start line and header section as received (an owned copy, never a view
 *   of the pushed chunk); `head.headers` the parsed field lines; `head.keepAlive`; `head.body` the framing (`none` |
 *   `length` | `chunked` | `close`). Requests add `method`, `target`, `expectContinue`; responses add `status`, `reason`,
 *   `requestMethod`, `interim` (1xx), `closeDelimited`.
 * - `{ type: 'body', data }`: a slice of a pushed chunk (shares its memory, not a copy): all of an identity body, the
 *   chunk-data of a chunked one.
 * - `{ type: 'chunk', size, extensions }`: one chunk-size line (size 0 is the last chunk).
 * - `{ type: 'end', trailers }`: the message is complete. A 1xx response is a message of its own (head, end) before the
 *   final one. After a message with `keepAlive: false` the decoder discards further input (state `closed`).
 * - `{ type: 'error', error }`: `error` is an `Http1FrameError` (a `FrameError`, code SWB_ERR_FRAME or
 *   SWB_ERR_FRAME_TOO_LARGE) with `status` to answer and a stable `reason`. Later pushes repeat it; close the connection.
 *
 * Decisions where the RFCs leave room (each cited where it is made):
 * - Requests: Content-Length with Transfer-Encoding, Transfer-Encoding in HTTP/1.0, any coding list other than exactly
 *   `chunked`, differing Content-Length values, bare CR, bare LF, obs-fold, a field name followed by whitespace, control
 *   bytes in values, junk in chunk lines: 400. `gzip, chunked` (well-formed but not understood): 501. CONNECT and any
 *   `Upgrade` field: 501. `HTTP/x.y` other than 1.0/1.1: 505; anything not shaped like a version: 400. Header section over
 *   the bound: 400 (DESIGN §5), code SWB_ERR_FRAME_TOO_LARGE. Content-Length given twice, even with equal values: 400
 *   (RFC 9110 §8.6 lets a recipient fold equal values into one, which a relay forwarding bytes cannot do). HTTP/1.1
 *   without Host, or two Host lines: 400 (RFC 9112 §3.2). `Transfer_Encoding`/`Content_Length` field names: 400
 *   (CGI-style servers fold `_` into `-`). A request-target must be visible ASCII (raw UTF-8 is refused, as Node does).
 *   Empty lines before a request line are skipped and not forwarded (RFC 9112 §2.2).
 * - Responses: every fault has status 502 (it is what the waiting client gets). Content-Length with Transfer-Encoding is
 *   refused (a relay cannot strip Content-Length as RFC 9112 §6.3 requires of intermediaries). Equal repeated
 *   Content-Length values are accepted (the client reading them is the only one affected). A final coding other than
 *   chunked, or neither length field, means the body runs to close (`closeDelimited`, redial). 101 is refused (we never
 *   forward Upgrade). Bytes while no response is awaited are `unsolicited-response`, so they cannot answer the next request.
 */
export { Http1Decoder, type Http1DecoderOptions, type Http1DecoderState, type Http1Side } from './http1/decoder.js';
export {
  DEFAULT_MAX_CHUNK_LINE_BYTES,
  DEFAULT_MAX_HEADER_BYTES,
  Http1FrameError,
  MAX_BODY_LENGTH,
  headerValues,
  type Http1BodyFraming,
  type Http1ErrorReason,
  type Http1Event,
  type Http1Head,
  type Http1Header,
  type Http1RequestHead,
  type Http1ResponseHead,
  type Http1Version,
} from './http1/syntax.js';
