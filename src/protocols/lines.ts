/**
 * `echo` framing: lines ending in `\n` (tcp-multiplexer's `echo`, after RFC 862's echo service).
 *
 * tcp-multiplexer (pkg/message/echo.go) reads each message with a fresh bufio.Reader, so whatever that reader had
 * buffered past the first `\n` (a pipelined second line) is thrown away, and a line has no length bound. Here the bytes
 * after a line stay queued for the next one, and a line longer than the bound is an error.
 */
import { ErrorCodes, FrameError } from '../errors.js';
import { ByteQueue, type DecodeResult, type FrameDecoder, type RawFrame } from './framing.js';

const LF = 0x0a;

/** Default bound of one line, `\n` included. */
export const DEFAULT_MAX_LINE_BYTES = 65_536;

export interface LineDecoderOptions {
  /** Longest line accepted, `\n` included. */
  maxLineBytes: number;
}

export const DEFAULT_LINE_DECODER_OPTIONS: LineDecoderOptions = { maxLineBytes: DEFAULT_MAX_LINE_BYTES };

export interface LineFrame extends RawFrame {
  /** The line without its final `\n` (a `\r` before it is kept: it is the peer's byte, not our framing). */
  readonly payload: Buffer;
}

function lineFrameOf(raw: Buffer): LineFrame {
  return { raw, payload: raw.subarray(0, raw.length - 1) };
}

export class LineDecoder implements FrameDecoder<LineFrame> {
  readonly #maxLineBytes: number;
  /** Bytes of the current line so far; never holds a `\n`, so each chunk is searched once and never rescanned. */
  readonly #partial = new ByteQueue();
  #error: FrameError | undefined;

  constructor(options: Partial<LineDecoderOptions> = {}) {
    this.#maxLineBytes = options.maxLineBytes ?? DEFAULT_LINE_DECODER_OPTIONS.maxLineBytes;
    if (!Number.isInteger(this.#maxLineBytes) || this.#maxLineBytes < 1) {
      throw new RangeError(`maxLineBytes must be a positive integer, got ${this.#maxLineBytes}`);
    }
  }

  get bufferedBytes(): number {
    return this.#partial.length;
  }

  get error(): FrameError | undefined {
    return this.#error;
  }

  push(chunk: Buffer): DecodeResult<LineFrame> {
    if (this.#error !== undefined) return { frames: [], error: this.#error };
    const frames: LineFrame[] = [];
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(LF, start);
      if (newline === -1) break;
      const end = newline + 1;
      const size = this.#partial.length + end - start;
      if (size > this.#maxLineBytes) return this.#fail(frames, size);
      this.#partial.push(chunk.subarray(start, end));
      frames.push(lineFrameOf(this.#partial.take(size)));
      start = end;
    }
    this.#partial.push(chunk.subarray(start));
    // A line of maxLineBytes must end with its `\n`; that many bytes without one can never become a line.
    if (this.#partial.length >= this.#maxLineBytes) return this.#fail(frames, this.#partial.length);
    return { frames };
  }

  #fail(frames: LineFrame[], size: number): DecodeResult<LineFrame> {
    this.#error = new FrameError(
      `line of ${size}+ bytes exceeds ${this.#maxLineBytes} (\\n included)`,
      ErrorCodes.FRAME_TOO_LARGE,
    );
    this.#partial.clear();
    return { frames, error: this.#error };
  }
}

/** The payload followed by `\n`, in a Buffer of exactly that size. The payload must not contain `\n`. */
export function encodeLine(payload: Buffer): Buffer {
  if (payload.includes(LF)) throw new RangeError('a line payload cannot contain \\n');
  const out = Buffer.allocUnsafe(payload.length + 1);
  payload.copy(out, 0);
  out[payload.length] = LF;
  return out;
}
