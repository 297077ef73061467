/**
 * The groups-mode join line, as a pure parser (no sockets, no timers; the engine owns those).
 *
 * A TCP client's first bytes are PREFIX + group id, ended by `\n` (a `\r` before it is removed) or by JOIN_QUIET_MS of
 * silence, because SocketForwarder clients send no newline: they write the join message and wait. Bytes after the
 * newline are the member's first data. First bytes that are not the prefix close the socket. An empty group id is valid.
 */
import { ErrorCodes, FrameError } from '../../errors.js';

export type JoinResult =
  | { kind: 'pending' }
  | { kind: 'joined'; groupId: string; rest: Buffer }
  | { kind: 'refused'; reason: 'no_prefix' | 'too_long'; error: FrameError };

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;

export class JoinLineParser {
  private buffered: Buffer = Buffer.alloc(0);
  private result: JoinResult = { kind: 'pending' };

  /**
   * @param prefix the join prefix, compared byte for byte (case-sensitive)
   * @param maxLineBytes MAX_MESSAGE_BYTES: the longest join line, newline excluded
   */
  constructor(
    private readonly prefix: Buffer,
    private readonly maxLineBytes: number,
  ) {}

  push(chunk: Buffer): JoinResult {
    if (this.result.kind !== 'pending') return this.result;
    const searchFrom = this.buffered.length;
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);

    // Refuse as soon as the bytes seen so far cannot be the prefix: no need to wait for the rest of a wrong line.
    const comparable = Math.min(this.buffered.length, this.prefix.length);
    if (this.buffered.compare(this.prefix, 0, comparable, 0, comparable) !== 0) {
      return this.refuse('no_prefix', 'the first line does not start with the join prefix');
    }

    const newline = this.buffered.indexOf(NEWLINE, Math.max(searchFrom, this.prefix.length));
    if (newline < 0) {
      if (this.buffered.length > this.maxLineBytes) return this.refuseTooLong();
      return this.result;
    }
    let lineEnd = newline;
    if (lineEnd > this.prefix.length && this.buffered[lineEnd - 1] === CARRIAGE_RETURN) lineEnd--;
    if (lineEnd > this.maxLineBytes) return this.refuseTooLong();
    return this.join(lineEnd, this.buffered.subarray(newline + 1));
  }

  /** JOIN_QUIET_MS passed without a byte: a complete prefix ends the line here; a partial one keeps waiting. */
  quiet(): JoinResult {
    if (this.result.kind !== 'pending' || this.buffered.length < this.prefix.length) return this.result;
    let lineEnd = this.buffered.length;
    if (this.buffered[lineEnd - 1] === CARRIAGE_RETURN) lineEnd--;
    return this.join(lineEnd, Buffer.alloc(0));
  }

  private join(lineEnd: number, rest: Buffer): JoinResult {
    const groupId = this.buffered.toString('utf8', this.prefix.length, lineEnd);
    this.result = { kind: 'joined', groupId, rest: Buffer.from(rest) };
    this.buffered = Buffer.alloc(0);
    return this.result;
  }

  private refuseTooLong(): JoinResult {
    return this.refuse('too_long', `the join line is longer than MAX_MESSAGE_BYTES (${this.maxLineBytes})`, ErrorCodes.FRAME_TOO_LARGE);
  }

  private refuse(
    reason: 'no_prefix' | 'too_long',
    message: string,
    code: typeof ErrorCodes.FRAME | typeof ErrorCodes.FRAME_TOO_LARGE = ErrorCodes.FRAME,
  ): JoinResult {
    this.result = { kind: 'refused', reason, error: new FrameError(message, code) };
    this.buffered = Buffer.alloc(0);
    return this.result;
  }
}
