/**
 * What a yamux stream and a muxado v1 stream have in common: a Node Duplex over one stream id of a multiplexed session,
 * with credit-based flow control in both directions. The protocols differ only in their frames (how a FIN, a RST, a
 * window grant and a data header look) and in what they do with a frame that breaks the rules; those stay in
 * yamux/stream.ts and muxado1/stream.ts.
 *
 * Receive side: payloads land in `recvQueue` (bounded by the window we granted); they move into the Readable only when
 * the consumer asks (`_read`), and credit goes back to the peer as they move, once it is at least half a window, so a
 * consumer that stops reading stops its sender and nothing else, and a steady transfer costs one grant per half window.
 * Send side: `_write` parks one chunk; the session's writer cuts it into data frames while the peer's window allows,
 * round-robin with the other streams, and completes the write callback when the chunk's last frame is handed to the
 * transport. That callback is the backpressure `write()` returns to the user.
 *
 * Half-close: `end()` sends the protocol's FIN after all written data; a FIN from the peer ends the Readable (`'end'`) once
 * the queue is read. `destroy()` before both FINs sends the protocol's RST unless the peer reset the stream, the session is
 * gone, or the subclass reset it itself.
 */
import { Duplex } from 'node:stream';

export type WriteCallback = (error?: Error | null) => void;

/** What a stream needs from its session; the session implements it (kept apart from the session to avoid an import cycle). */
export interface CreditedStreamHost<S> {
  readonly closed: boolean;
  /** Sends a control frame (window grant, FIN, RST) ahead of queued data. */
  sendControl(frame: Buffer): void;
  /** The stream has data to send and window to send it with. */
  markSendable(stream: S): void;
  /** Both directions are finished or the stream was reset: frames for its id are no longer expected. */
  forgetStream(stream: S): void;
}

/** One data frame cut from a stream's pending chunk. */
export interface OutgoingDataFrame {
  header: Buffer;
  payload: Buffer;
  /** The write callback to complete once the frame is handed to the transport (the chunk's last frame only). */
  done: WriteCallback | undefined;
}

export interface CreditedStreamWindows {
  /** Receive window we grant the peer. */
  receiveWindowBytes: number;
  /** What the peer lets us send before its first grant. */
  sendWindowBytes: number;
  readableHighWaterMark?: number;
  writableHighWaterMark?: number;
}

export abstract class CreditedStream<S extends CreditedStream<S>> extends Duplex {
  readonly id: number;
  /** Payload bytes received from and sent to the peer. */
  bytesIn = 0;
  bytesOut = 0;

  protected readonly host: CreditedStreamHost<S>;
  private readonly windowMax: number;
  /** Credit the peer still has: bytes it may send before our next window grant. */
  protected recvWindow: number;
  private readonly recvQueue: Buffer[] = [];
  private recvQueued = 0;
  private readWanted = false;
  /** Bytes we may still send before the peer grants more. */
  protected sendWindowBytes: number;
  private sendChunk: Buffer | undefined;
  private sendOffset = 0;
  private sendCallback: WriteCallback | undefined;
  protected remoteFin = false;
  private localFin = false;
  private endPushed = false;
  /** No RST on destroy: the peer reset the stream, the session is gone, or the subclass sent its own RST. */
  protected noResetNeeded = false;

  constructor(host: CreditedStreamHost<S>, id: number, windows: CreditedStreamWindows) {
    super({
      allowHalfOpen: true,
      readableHighWaterMark: windows.readableHighWaterMark,
      writableHighWaterMark: windows.writableHighWaterMark,
    });
    this.host = host;
    this.id = id;
    this.windowMax = windows.receiveWindowBytes;
    this.recvWindow = windows.receiveWindowBytes;
    this.sendWindowBytes = windows.sendWindowBytes;
  }

  // ---- the protocol's frames and errors ----

  /** The error a write or end gets once the session has closed. */
  protected abstract sessionClosedError(): Error;
  /** The frame that half-closes our side. */
  protected abstract finFrame(): Buffer;
  /** The frame that resets the stream (a destroy before both FINs). */
  protected abstract resetFrame(): Buffer;
  /** The frame that grants the peer `delta` more bytes. */
  protected abstract windowGrantFrame(delta: number): Buffer;
  /** The header of a data frame carrying `size` payload bytes. */
  protected abstract dataHeader(size: number): Buffer;

  /** Bytes we may still send before the peer grants more. */
  get sendWindow(): number {
    return this.sendWindowBytes;
  }

  /** Bytes received and not yet taken by the consumer (bounded by the window). */
  get receiveQueued(): number {
    return this.recvQueued;
  }

  /** Hard-closes the stream: RST to the peer unless both sides had already finished. Same as `destroy()`. */
  reset(): void {
    this.destroy();
  }

  // ---- Duplex implementation ----

  override _read(): void {
    this.readWanted = true;
    this.deliver();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: WriteCallback): void {
    if (this.host.closed) {
      callback(this.sessionClosedError());
      return;
    }
    if (chunk.length === 0) {
      callback();
      return;
    }
    this.sendChunk = chunk;
    this.sendOffset = 0;
    this.sendCallback = callback;
    if (this.sendWindowBytes > 0) this.host.markSendable(this.self);
  }

  override _final(callback: WriteCallback): void {
    if (this.host.closed) {
      callback(this.sessionClosedError());
      return;
    }
    // Node calls _final after every write callback, so all data frames are already on the transport ahead of the FIN.
    this.localFin = true;
    this.host.sendControl(this.finFrame());
    if (this.remoteFin) this.host.forgetStream(this.self);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const finished = this.localFin && this.remoteFin;
    if (!finished && !this.noResetNeeded && !this.host.closed) this.host.sendControl(this.resetFrame());
    this.sendChunk = undefined;
    this.sendCallback = undefined;
    this.recvQueue.length = 0;
    this.recvQueued = 0;
    this.host.forgetStream(this.self);
    callback(error);
  }

  // ---- called by the session (frames from the peer, writer) ----

  /** @internal True while there is pending data and window to send it. */
  get canSend(): boolean {
    return this.sendChunk !== undefined && this.sendWindowBytes > 0 && !this.destroyed;
  }

  /** @internal Cuts the next data frame (at most `maxFrameBytes` of payload) from the pending chunk. */
  takeDataFrame(maxFrameBytes: number): OutgoingDataFrame | undefined {
    const chunk = this.sendChunk;
    if (!chunk || this.sendWindowBytes <= 0 || this.destroyed) return undefined;
    const size = Math.min(chunk.length - this.sendOffset, this.sendWindowBytes, maxFrameBytes);
    const payload = chunk.subarray(this.sendOffset, this.sendOffset + size);
    this.sendOffset += size;
    this.sendWindowBytes -= size;
    this.bytesOut += size;
    let done: WriteCallback | undefined;
    if (this.sendOffset === chunk.length) {
      done = this.sendCallback;
      this.sendChunk = undefined;
      this.sendCallback = undefined;
    }
    return { header: this.dataHeader(size), payload, done };
  }

  /** @internal The session ended (or dropped this stream); no RST can or need be sent. */
  sessionClosed(error: Error | undefined): void {
    this.noResetNeeded = true;
    this.destroy(error);
  }

  // ---- for the protocol subclasses ----

  /** A payload within the window arrived (the subclass checked the window and the protocol's rules). */
  protected accept(payload: Buffer): void {
    this.recvWindow -= payload.length;
    this.bytesIn += payload.length;
    if (payload.length > 0 && !this.destroyed) {
      this.recvQueue.push(payload);
      this.recvQueued += payload.length;
    }
  }

  /** The peer half-closed: the Readable ends once the queue is read. */
  protected finishRemote(): void {
    this.remoteFin = true;
    this.deliver();
    if (this.localFin) this.host.forgetStream(this.self);
  }

  /** The peer's window for us is now `bytes`. */
  protected setSendWindow(bytes: number): void {
    this.sendWindowBytes = bytes;
    if (this.sendChunk && this.sendWindowBytes > 0 && !this.destroyed) this.host.markSendable(this.self);
  }

  /** Moves queued payloads into the Readable while the consumer wants them, then returns the credit. */
  protected deliver(): void {
    while (this.readWanted && this.recvQueue.length > 0) {
      const payload = this.recvQueue.shift() as Buffer;
      this.recvQueued -= payload.length;
      this.readWanted = this.push(payload);
    }
    if (this.recvQueue.length === 0 && this.remoteFin && !this.endPushed) {
      this.endPushed = true;
      this.push(null);
    }
    this.maybeGrantWindow();
  }

  /** Grants the peer what the consumer has taken, once it is at least half the window. */
  private maybeGrantWindow(): void {
    if (this.remoteFin || this.destroyed || this.host.closed) return;
    const delta = this.windowMax - this.recvQueued - this.recvWindow;
    if (delta <= 0 || delta < this.windowMax / 2) return;
    this.recvWindow += delta;
    this.host.sendControl(this.windowGrantFrame(delta));
  }

  private get self(): S {
    return this as unknown as S;
  }
}
