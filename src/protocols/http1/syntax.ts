/**
 * HTTP/1.1 wire syntax (RFC 9112, RFC 9110): the message types the framer emits, its error type, its bounds, and the small
 * pure parsers for start lines, field lines, Content-Length, Transfer-Encoding and chunk-size lines. Nothing here keeps
 * state between calls; `decoder.ts` drives these over a byte stream.
 *
 * Parsers return a `Fault` instead of throwing: the decoder turns it into an `Http1FrameError` whose status depends on the
 * side (a client gets 400/501/505 for its request; a bad upstream response becomes 502).
 */
import { ErrorCodes, FrameError } from '../../errors.js';

// ---------------------------------------------------------------------------------------------------------------- bounds

/** MAX_HEADER_BYTES' default: start line + field lines + the empty line, counted as received. */
export const DEFAULT_MAX_HEADER_BYTES = 16384;
/**
 * A chunk-size line with its extensions (and the CRLF that ended the previous chunk's data). Extensions carry nothing a
 * gateway needs; Node caps them after CVE-2024-22019 for the same reason: an unbounded line is unbounded buffering.
 */
export const DEFAULT_MAX_CHUNK_LINE_BYTES = 4096;
/** Largest Content-Length or chunk size accepted: beyond it a JS number loses integer precision and framing would drift. */
export const MAX_BODY_LENGTH = Number.MAX_SAFE_INTEGER;

// ------------------------------------------------------------------------------------------------------------- types

export type Http1Version = '1.0' | '1.1';

/** One field line as received: `name` keeps its case, `value` has its surrounding whitespace (OWS) removed. */
export interface Http1Header {
  readonly name: string;
  readonly value: string;
}

/** How the body of a message is delimited (RFC 9112 §6.3). */
export type Http1BodyFraming =
  | { readonly kind: 'none' }
  | { readonly kind: 'length'; readonly length: number }
  | { readonly kind: 'chunked' }
  /** Responses only: the body runs until the upstream closes, so the connection cannot be reused (redial). */
  | { readonly kind: 'close' };

interface Http1HeadBase {
  readonly version: Http1Version;
  /** Start line and header section exactly as received, through the empty line that ends it: forward these bytes as-is. */
  readonly raw: Buffer;
  readonly headers: readonly Http1Header[];
  /**
   * RFC 9112 §9.3: HTTP/1.1 persists unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`; a
   * close-delimited response never. For a response the engine must also honour its request's decision.
   */
  readonly keepAlive: boolean;
  readonly body: Http1BodyFraming;
}

export interface Http1RequestHead extends Http1HeadBase {
  readonly kind: 'request';
  readonly method: string;
  readonly target: string;
  /** `Expect: 100-continue` on an HTTP/1.1 request (RFC 9110 §10.1.1: ignored in HTTP/1.0). */
  readonly expectContinue: boolean;
}

export interface Http1ResponseHead extends Http1HeadBase {
  readonly kind: 'response';
  readonly status: number;
  readonly reason: string;
  /** The method of the request this answers (given by `expectResponseTo`). */
  readonly requestMethod: string;
  /** 1xx: another response to the same request follows (RFC 9110 §15.2). */
  readonly interim: boolean;
  /** The body ends only when the upstream closes: after this exchange the engine must redial. */
  readonly closeDelimited: boolean;
}

export type Http1Head = Http1RequestHead | Http1ResponseHead;

/**
 * What `push`/`end` return, in wire order. Every event has `wire`: the input bytes it accounts for. Writing every `wire` in
 * order reproduces the consumed input byte for byte (empty lines skipped before a request line excepted, RFC 9112 §2.2).
 * - `head`  start line + header section (`wire === head.raw`).
 * - `body`  body bytes, zero-copy slices of pushed chunks (`data === wire`); for chunked bodies only chunk-data.
 * - `chunk` chunked framing: one chunk-size line with its extensions, preceded by the CRLF that ended the previous chunk's
 *           data; `size === 0` is the last-chunk.
 * - `end`   the message is complete; for chunked bodies `wire` is the trailer section and the final CRLF.
 * - `error` the stream cannot be framed; later pushes return the same error. Send `error.status` and close.
 */
export type Http1Event =
  | { readonly type: 'head'; readonly head: Http1Head; readonly wire: Buffer }
  | { readonly type: 'body'; readonly data: Buffer; readonly wire: Buffer }
  | { readonly type: 'chunk'; readonly size: number; readonly extensions: string; readonly wire: Buffer }
  | { readonly type: 'end'; readonly trailers: readonly Http1Header[]; readonly wire: Buffer }
  | { readonly type: 'error'; readonly error: Http1FrameError; readonly wire: Buffer };

// ------------------------------------------------------------------------------------------------------------ errors

/** Why a stream was refused; stable, for tests and metrics labels. */
export type Http1ErrorReason =
  | 'bad-start-line'
  | 'unsupported-version'
  | 'bad-header'
  | 'obs-fold'
  | 'bare-cr'
  | 'bare-lf'
  | 'headers-too-large'
  | 'missing-host'
  | 'duplicate-host'
  | 'cl-and-te'
  | 'bad-content-length'
  | 'conflicting-content-length'
  | 'duplicate-content-length'
  | 'bad-transfer-encoding'
  | 'te-in-http10'
  | 'unsupported-transfer-coding'
  | 'bad-chunk'
  | 'chunk-line-too-large'
  | 'trailers-too-large'
  | 'upgrade'
  | 'connect'
  | 'switching-protocols'
  | 'unsolicited-response'
  | 'truncated';

/** Status a client gets when its request is refused. Every fault in a response becomes 502 (RFC 9110 §15.6.3). */
const REQUEST_STATUS: Readonly<Record<Http1ErrorReason, number>> = {
  'bad-start-line': 400,
  // RFC 9110 §15.6.6: 505 names the case exactly, for a well-formed HTTP/x.y we do not speak.
  'unsupported-version': 505,
  'bad-header': 400,
  'obs-fold': 400,
  'bare-cr': 400,
  'bare-lf': 400,
  // DESIGN §5 and issue 7 ask for 400 (431 of RFC 6585 would also fit).
  'headers-too-large': 400,
  'missing-host': 400,
  'duplicate-host': 400,
  'cl-and-te': 400,
  'bad-content-length': 400,
  'conflicting-content-length': 400,
  'duplicate-content-length': 400,
  'bad-transfer-encoding': 400,
  'te-in-http10': 400,
  // RFC 9112 §6.1: a transfer coding the server does not understand SHOULD get 501.
  'unsupported-transfer-coding': 501,
  'bad-chunk': 400,
  'chunk-line-too-large': 400,
  'trailers-too-large': 400,
  upgrade: 501,
  connect: 501,
  'switching-protocols': 400,
  'unsolicited-response': 400,
  truncated: 400,
};

const TOO_LARGE: ReadonlySet<Http1ErrorReason> = new Set(['headers-too-large', 'chunk-line-too-large', 'trailers-too-large']);

/** A FrameError that knows the HTTP status to answer with and a stable `reason`. */
export class Http1FrameError extends FrameError {
  readonly status: number;
  readonly reason: Http1ErrorReason;
  constructor(reason: Http1ErrorReason, status: number, message: string) {
    super(message, TOO_LARGE.has(reason) ? ErrorCodes.FRAME_TOO_LARGE : ErrorCodes.FRAME);
    this.name = 'Http1FrameError';
    this.reason = reason;
    this.status = status;
  }
}

/** A parse failure before it is known which side (request or response) it belongs to. */
export class Fault {
  constructor(
    readonly reason: Http1ErrorReason,
    readonly message: string,
  ) {}

  toError(side: 'request' | 'response'): Http1FrameError {
    const status = side === 'request' ? REQUEST_STATUS[this.reason] : 502;
    return new Http1FrameError(this.reason, status, `${side}: ${this.message}`);
  }
}

// ------------------------------------------------------------------------------------------------- character classes

export const CR = 0x0d;
export const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
const SEMICOLON = 0x3b;
const EQUALS = 0x3d;
const DQUOTE = 0x22;
const BACKSLASH = 0x5c;

function byteTable(test: (byte: number) => boolean): Uint8Array {
  const table = new Uint8Array(256);
  for (let byte = 0; byte < 256; byte++) table[byte] = test(byte) ? 1 : 0;
  return table;
}

/** RFC 9110 §5.6.2 tchar. */
const TCHAR = byteTable((b) => /^[0-9A-Za-z!#$%&'*+\-.^_`|~]$/.test(String.fromCharCode(b)));
/** RFC 9110 §5.5 field-vchar plus SP/HTAB: VCHAR and obs-text; no other control characters (NUL, bare CR, DEL). */
const FIELD_CHAR = byteTable((b) => b === HTAB || (b >= 0x20 && b !== 0x7f));
/** Request-target bytes (RFC 9112 §3.2, RFC 3986): visible ASCII. SP or a CTL would shift the request line. */
const TARGET_CHAR = byteTable((b) => b > 0x20 && b < 0x7f);
/** RFC 9110 §5.6.4 qdtext. */
const QDTEXT = byteTable((b) => b === HTAB || (b >= 0x20 && b !== DQUOTE && b !== BACKSLASH && b !== 0x7f));
/** RFC 9110 §5.6.4 quoted-pair second byte. */
const QUOTED_PAIR = byteTable((b) => b === HTAB || (b >= 0x20 && b !== 0x7f));
/** HEXDIG value, or NOT_HEX. */
const NOT_HEX = 0xff;
const HEX_DIGIT = new Uint8Array(256).fill(NOT_HEX);
for (let digit = 0; digit < 16; digit++) {
  HEX_DIGIT['0123456789abcdef'.charCodeAt(digit)] = digit;
  HEX_DIGIT['0123456789ABCDEF'.charCodeAt(digit)] = digit;
}

function isToken(bytes: Buffer, from = 0, to = bytes.length): boolean {
  if (from >= to) return false;
  for (let i = from; i < to; i++) if (TCHAR[bytes[i]!] === 0) return false;
  return true;
}

function isTokenText(text: string): boolean {
  return isToken(Buffer.from(text, 'latin1'));
}

const isOws = (byte: number | undefined): boolean => byte === SP || byte === HTAB;

// ---------------------------------------------------------------------------------------------------------- lines

/** Splits a complete head (or trailer section) into its lines without their terminators, dropping the final empty line. */
export function splitLines(section: Buffer): Buffer[] {
  const lines: Buffer[] = [];
  let start = 0;
  for (;;) {
    const lf = section.indexOf(LF, start);
    if (lf < 0) break;
    const end = lf > start && section[lf - 1] === CR ? lf - 1 : lf;
    if (end === start) break; // the empty line that ends the section
    lines.push(section.subarray(start, end));
    start = lf + 1;
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------------- start lines

/** `HTTP/1.1` → '1.1'; a well-formed version we do not speak → 'unsupported'; anything else → null. */
function parseVersion(bytes: Buffer): Http1Version | 'unsupported' | null {
  // RFC 9112 §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive.
  if (bytes.length !== 8 || bytes.toString('latin1', 0, 5) !== 'HTTP/' || bytes[6] !== 0x2e) return null;
  const major = bytes[5]! - 0x30;
  const minor = bytes[7]! - 0x30;
  if (major < 0 || major > 9 || minor < 0 || minor > 9) return null;
  if (major === 1 && minor === 1) return '1.1';
  if (major === 1 && minor === 0) return '1.0';
  return 'unsupported';
}

export interface RequestLine {
  method: string;
  target: string;
  version: Http1Version;
}

/** RFC 9112 §3: method SP request-target SP HTTP-version, single spaces only (no whitespace-tolerant parsing). */
export function parseRequestLine(line: Buffer): RequestLine | Fault {
  const firstSp = line.indexOf(SP);
  const lastSp = line.lastIndexOf(SP);
  if (firstSp <= 0 || lastSp === firstSp) return new Fault('bad-start-line', 'request line is not "method target version"');
  if (!isToken(line, 0, firstSp)) return new Fault('bad-start-line', 'method is not a token');
  for (let i = firstSp + 1; i < lastSp; i++) {
    if (TARGET_CHAR[line[i]!] === 0) return new Fault('bad-start-line', 'request-target has a byte other than visible ASCII');
  }
  if (lastSp === firstSp + 1) return new Fault('bad-start-line', 'empty request-target');
  const version = parseVersion(line.subarray(lastSp + 1));
  if (version === null) return new Fault('bad-start-line', 'malformed HTTP-version');
  if (version === 'unsupported') return new Fault('unsupported-version', 'only HTTP/1.0 and HTTP/1.1 are supported');
  return { method: line.toString('latin1', 0, firstSp), target: line.toString('latin1', firstSp + 1, lastSp), version };
}

export interface StatusLine {
  version: Http1Version;
  status: number;
  reason: string;
}

/** RFC 9112 §4: HTTP-version SP 3DIGIT SP [reason-phrase]; the SP before an empty reason is often omitted, so optional. */
export function parseStatusLine(line: Buffer): StatusLine | Fault {
  const version = parseVersion(line.subarray(0, 8));
  if (version === null || line[8] !== SP) return new Fault('bad-start-line', 'status line does not start with HTTP-version SP');
  if (version === 'unsupported') return new Fault('unsupported-version', 'HTTP version other than 1.0/1.1');
  let status = 0;
  for (let i = 9; i < 12; i++) {
    const digit = (line[i] ?? 0) - 0x30;
    if (digit < 0 || digit > 9) return new Fault('bad-start-line', 'status code is not three digits');
    status = status * 10 + digit;
  }
  if (status < 100) return new Fault('bad-start-line', `status code ${status} is below 100`);
  if (line.length > 12 && line[12] !== SP) return new Fault('bad-start-line', 'status code is not followed by SP');
  for (let i = 13; i < line.length; i++) {
    if (FIELD_CHAR[line[i]!] === 0) return new Fault('bad-start-line', 'reason-phrase contains a control byte');
  }
  return { version, status, reason: line.length > 13 ? line.toString('latin1', 13) : '' };
}

// ---------------------------------------------------------------------------------------------------- field lines

/** RFC 9112 §5: field-name ":" OWS field-value OWS. */
export function parseFieldLine(line: Buffer): Http1Header | Fault {
  // RFC 9112 §5.2: obs-fold (a line starting with SP/HTAB) is refused (§2.2 likewise for whitespace before the first field).
  if (isOws(line[0])) return new Fault('obs-fold', 'obsolete line folding (a field line starts with whitespace)');
  const colon = line.indexOf(COLON);
  if (colon <= 0) return new Fault('bad-header', 'field line has no name or no colon');
  // RFC 9112 §5.1: no whitespace between field name and colon; such a message MUST be rejected with 400.
  if (!isToken(line, 0, colon)) return new Fault('bad-header', 'field name is not a token');
  let start = colon + 1;
  let end = line.length;
  while (start < end && isOws(line[start])) start++;
  while (end > start && isOws(line[end - 1])) end--;
  for (let i = start; i < end; i++) {
    if (FIELD_CHAR[line[i]!] === 0) return new Fault('bad-header', 'field value contains a control byte');
  }
  return { name: line.toString('latin1', 0, colon), value: line.toString('latin1', start, end) };
}

export function parseFieldLines(lines: readonly Buffer[]): Http1Header[] | Fault {
  const headers: Http1Header[] = [];
  for (const line of lines) {
    const header = parseFieldLine(line);
    if (header instanceof Fault) return header;
    headers.push(header);
  }
  return headers;
}

/** Values of every field line named `lowerName` (case-insensitive), in order. */
export function headerValues(headers: readonly Http1Header[], lowerName: string): string[] {
  const values: string[] = [];
  for (const header of headers) {
    if (header.name.length === lowerName.length && header.name.toLowerCase() === lowerName) values.push(header.value);
  }
  return values;
}

/**
 * The members of a comma-separated list field across all its lines (RFC 9110 §5.3 combines lines with ", "), trimmed. Empty
 * members are kept as '' so framing fields can refuse them: parsers that disagree on `chunked,,` are how smuggling starts.
 */
export function listMembers(values: readonly string[]): string[] {
  const members: string[] = [];
  for (const value of values) for (const member of value.split(',')) members.push(trimOws(member));
  return members;
}

/**
 * Removes SP and HTAB only. String.prototype.trim() would also strip U+00A0, which is obs-text (0xA0) on the wire: it
 * would read `chunked\xA0` as `chunked` where the upstream reads an unknown coding, a classic smuggling discrepancy.
 */
function trimOws(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && (text[start] === ' ' || text[start] === '\t')) start++;
  while (end > start && (text[end - 1] === ' ' || text[end - 1] === '\t')) end--;
  return text.slice(start, end);
}

/** Case-insensitive token membership in a list field such as Connection. */
export function listHasToken(values: readonly string[], lowerToken: string): boolean {
  for (const member of listMembers(values)) if (member.toLowerCase() === lowerToken) return true;
  return false;
}

// ------------------------------------------------------------------------------------------------- framing fields

/**
 * RFC 9110 §8.6: Content-Length = 1*DIGIT. `-1`, `+5`, `0x10`, `5 5` and empty values are refused; differing values are an
 * unrecoverable framing error. Repeated identical values (`3, 3`, or two lines) MAY be accepted, but only by a recipient
 * that then replaces them with one value; a relay that forwards the field as received would leave its reading to the
 * upstream, so `allowRepeats` is for responses only.
 */
export function parseContentLength(values: readonly string[], allowRepeats: boolean): number | Fault {
  let length: number | undefined;
  const members = listMembers(values);
  for (const member of members) {
    if (!/^[0-9]+$/.test(member)) return new Fault('bad-content-length', `Content-Length "${member}" is not a decimal number`);
    const value = Number(member);
    if (value > MAX_BODY_LENGTH) return new Fault('bad-content-length', `Content-Length ${member} is too large`);
    if (length !== undefined && value !== length) return new Fault('conflicting-content-length', 'Content-Length values differ');
    length = value;
  }
  if (length === undefined) return new Fault('bad-content-length', 'empty Content-Length');
  if (members.length > 1 && !allowRepeats) return new Fault('duplicate-content-length', 'Content-Length given more than once');
  return length;
}

/** The transfer-codings named by Transfer-Encoding, lower-cased; a member with parameters keeps them (`gzip;q=1`). */
export function parseTransferCodings(values: readonly string[]): string[] | Fault {
  const codings: string[] = [];
  for (const member of listMembers(values)) {
    // RFC 9112 §7: transfer-coding = token *( OWS ";" OWS transfer-parameter ); only the leading token matters here.
    const name = trimOws(member.split(';', 1)[0]!);
    if (!isTokenText(name)) return new Fault('bad-transfer-encoding', `Transfer-Encoding member "${member}" is not a coding`);
    codings.push(member === name ? name.toLowerCase() : member.toLowerCase());
  }
  return codings;
}

// --------------------------------------------------------------------------------------------------------- chunks

export interface ChunkLine {
  size: number;
  /** The chunk-ext text as received (e.g. `;name=value`), without the size. */
  extensions: string;
}

/**
 * RFC 9112 §7.1: chunk-size [ chunk-ext ] with chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ) and ext-val =
 * token / quoted-string. Parsed strictly: lenient chunk-extension parsing (a bare LF inside a quoted string, junk after the
 * size) is a known request smuggling vector, so anything outside the grammar is refused.
 */
export function parseChunkLine(line: Buffer): ChunkLine | Fault {
  let i = 0;
  let size = 0;
  for (let digit = HEX_DIGIT[line[0] ?? 0]!; digit !== NOT_HEX; digit = HEX_DIGIT[line[i] ?? 0]!) {
    size = size * 16 + digit;
    if (size > MAX_BODY_LENGTH) return new Fault('bad-chunk', 'chunk size is too large');
    i++;
  }
  if (i === 0) return new Fault('bad-chunk', 'chunk size is not hexadecimal');
  const extStart = i;
  while (i < line.length) {
    while (isOws(line[i])) i++;
    if (line[i] !== SEMICOLON) return new Fault('bad-chunk', 'junk after the chunk size');
    i++;
    while (isOws(line[i])) i++;
    const nameStart = i;
    while (i < line.length && TCHAR[line[i]!] === 1) i++;
    if (i === nameStart) return new Fault('bad-chunk', 'chunk extension without a name');
    let j = i;
    while (isOws(line[j])) j++;
    if (line[j] !== EQUALS) continue;
    i = j + 1;
    while (isOws(line[i])) i++;
    if (line[i] === DQUOTE) {
      i++;
      for (;;) {
        const byte = line[i];
        if (byte === undefined) return new Fault('bad-chunk', 'unterminated quoted chunk extension');
        if (byte === DQUOTE) break;
        if (byte === BACKSLASH) {
          if (QUOTED_PAIR[line[i + 1] ?? 0] === 0) return new Fault('bad-chunk', 'bad quoted-pair in chunk extension');
          i += 2;
        } else if (QDTEXT[byte] === 1) i++;
        else return new Fault('bad-chunk', 'control byte in quoted chunk extension');
      }
      i++;
    } else {
      const valueStart = i;
      while (i < line.length && TCHAR[line[i]!] === 1) i++;
      if (i === valueStart) return new Fault('bad-chunk', 'chunk extension "=" without a value');
    }
  }
  return { size, extensions: line.toString('latin1', extStart) };
}
