/**
 * What every mux framer shares: the decoder contract and the byte queue behind it.
 *
 * A decoder is fed whatever a socket read returned (a chunk may hold half a frame, or three and a half) and hands back
 * the complete frames it now has. It keeps the remainder itself, never throws on bytes from the network, and never holds
 * more than one frame's worth of bytes: a header that announces more than the bound is an error at once, not a wait.
 * After an error the decoder is dead, because a byte stream with a broken frame boundary cannot be resynchronised; it
 * keeps returning that error and drops its buffer.
 */
import { FrameError } from '../errors.js';

export interface DecodeResult<F> {
  /** Complete frames in arrival order. Frames decoded before an error in the same chunk are still delivered. */
  readonly frames: F[];
  /** Set once the stream is broken; the same error is returned by every later push. */
  readonly error?: FrameError;
}

export interface FrameDecoder<F> {
  /** Feeds the next chunk read from the socket. An empty chunk just returns (no frames, or the error if dead). */
  push(chunk: Buffer): DecodeResult<F>;
  /** Bytes held for an incomplete frame; always below the decoder's frame bound, 0 once dead. */
  readonly bufferedBytes: number;
  /** The error that killed the decoder, if any. */
  readonly error: FrameError | undefined;
}

/** Every frame carries the exact bytes it arrived as, so an engine can forward it without re-encoding. */
export interface RawFrame {
  /** The whole frame as on the wire. Owned by the frame: it never aliases the chunk passed to push(). */
  readonly raw: Buffer;
}

/**
 * A FIFO of received chunks, consumed from the front. Chunks are kept as a list and only the bytes a header needs are
 * ever joined, so feeding a frame one byte at a time costs O(frame size), not O(frame size²).
 */
export class ByteQueue {
  #chunks: Buffer[] = [];
  /** Bytes of #chunks[0] already consumed. */
  #offset = 0;
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /**
   * The first `count` bytes as one contiguous view, without consuming them, or undefined while fewer are queued. The view
   * is only valid until the next push/take/clear. When the bytes span chunks they are joined once and kept joined, so
   * asking again is free.
   */
  peek(count: number): Buffer | undefined {
    if (count > this.#length) return undefined;
    const first = this.#chunks[0];
    if (first === undefined) return count === 0 ? Buffer.alloc(0) : undefined;
    if (first.length - this.#offset >= count) return first.subarray(this.#offset, this.#offset + count);

    const joined = Buffer.allocUnsafe(count);
    let written = 0;
    let used = 0;
    let offset = this.#offset;
    while (written < count) {
      const chunk = this.#chunks[used] as Buffer;
      const n = Math.min(chunk.length - offset, count - written);
      chunk.copy(joined, written, offset, offset + n);
      written += n;
      if (offset + n === chunk.length) {
        used += 1;
        offset = 0;
      } else {
        // The last chunk is only partly joined: keep its tail as a chunk of its own.
        this.#chunks[used] = chunk.subarray(offset + n);
        offset = 0;
      }
    }
    this.#chunks.splice(0, used, joined);
    this.#offset = 0;
    return joined;
  }

  /** Removes the first `count` bytes (count <= length) and returns them in a Buffer of their own. */
  take(count: number): Buffer {
    if (count > this.#length) throw new RangeError(`take(${count}) with ${this.#length} bytes queued`);
    const out = Buffer.allocUnsafe(count);
    let written = 0;
    let used = 0;
    while (written < count) {
      const chunk = this.#chunks[used] as Buffer;
      const n = Math.min(chunk.length - this.#offset, count - written);
      chunk.copy(out, written, this.#offset, this.#offset + n);
      written += n;
      if (this.#offset + n === chunk.length) {
        used += 1;
        this.#offset = 0;
      } else {
        this.#offset += n;
      }
    }
    if (used > 0) this.#chunks.splice(0, used);
    this.#length -= count;
    return out;
  }

  clear(): void {
    this.#chunks = [];
    this.#offset = 0;
    this.#length = 0;
  }
}

/**
 * One step of a queue decoder: a frame, an error that ends the stream, or undefined when more bytes are needed.
 */
export type DecodeStep<F> = F | FrameError | undefined;

/**
 * Base for decoders that can tell a frame's length from a short header. Subclasses implement decodeNext(): look at the
 * queue, return undefined if the frame is not complete yet, otherwise take() it and return it; or return a FrameError.
 * They must return an error rather than wait whenever a header announces more than their bound, which is what keeps
 * bufferedBytes bounded.
 */
export abstract class QueueDecoder<F> implements FrameDecoder<F> {
  protected readonly queue = new ByteQueue();
  #error: FrameError | undefined;

  get bufferedBytes(): number {
    return this.queue.length;
  }

  get error(): FrameError | undefined {
    return this.#error;
  }

  push(chunk: Buffer): DecodeResult<F> {
    if (this.#error !== undefined) return { frames: [], error: this.#error };
    this.queue.push(chunk);
    const frames: F[] = [];
    for (;;) {
      const step = this.decodeNext(this.queue);
      if (step === undefined) return { frames };
      if (step instanceof FrameError) {
        this.fail(step);
        return { frames, error: step };
      }
      frames.push(step);
    }
  }

  /** Marks the decoder dead and releases its buffer. */
  protected fail(error: FrameError): void {
    this.#error = error;
    this.queue.clear();
  }

  protected abstract decodeNext(queue: ByteQueue): DecodeStep<F>;
}
