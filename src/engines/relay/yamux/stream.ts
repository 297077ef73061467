/**
 * One yamux stream as a Node Duplex (hashicorp yamux stream.go, with Node's stream machinery doing the waiting).
 *
 * Receive side: data frames land in `recvQueue` (bounded by the window we granted); they move into the Readable only when
 * the consumer asks (`_read`), and window credit goes back to the peer as they move, so a consumer that stops reading stops
 * its sender and nothing else. Send side: `_write` parks one chunk; the session's writer cuts it into data frames while the
 * peer's window allows, round-robin with the other streams, and completes the write callback when the last frame of the
 * chunk is handed to the transport. That callback is the backpressure `write()` returns to the user.
 *
 * Half-close: `end()` sends FIN (after all written data); a FIN from the peer ends the Readable (`'end'`) once the queue is
 * read. `destroy()` before both FINs sends RST; a RST from the peer destroys the stream with a `stream_reset` YamuxError.
 */
import { Duplex } from 'node:stream';
import { ErrorCodes, SwitchboardError } from '../../../errors.js';
import {
  Flag,
  INITIAL_STREAM_WINDOW,
  MAX_LENGTH_FIELD,
  encodeDataHeader,
  encodeWindowUpdate,
} from '../../../protocols/yamux.js';

export type YamuxErrorReason =
  /** The peer reset (or refused) the stream. */
  | 'stream_reset'
  /** The session ended while the stream or the call was still using it. */
  | 'session_closed'
  /** The peer sent GoAway: it accepts no new streams. */
  | 'remote_go_away'
  /** `maxStreams` streams are open already. */
  | 'too_many_streams'
  /** Every stream id of our parity has been used. */
  | 'streams_exhausted'
  /** A ping got no answer within its timeout. */
  | 'ping_timeout'
  /** The peer broke the protocol (bad frame, window exceeded, duplicate stream, GoAway with an error code). */
  | 'protocol';

/** Every yamux failure carries SWB_ERR_PROTOCOL and a `reason` saying which one it is. */
export class YamuxError extends SwitchboardError {
  readonly reason: YamuxErrorReason;
  constructor(reason: YamuxErrorReason, message: string, options?: { cause?: unknown }) {
    super(ErrorCodes.PROTOCOL, message, options);
    this.name = 'YamuxError';
    this.reason = reason;
  }
}

/** What a stream needs from its session; the session implements it (kept here to avoid an import cycle). */
export interface YamuxStreamHost {
  readonly closed: boolean;
  /** Queue a control frame (window update, FIN, RST); control frames go out before data. */
  sendControl(frame: Buffer): void;
  /** The stream has data to send and window to send it with. */
  markSendable(stream: YamuxStream): void;
  /** Both directions are finished or the stream was reset: frames for its id are no longer expected. */
  forgetStream(stream: YamuxStream): void;
}

export interface YamuxStreamInit {
  /** Receive window we grant the peer (the session already announced anything above INITIAL_STREAM_WINDOW). */
  streamWindowBytes: number;
  readableHighWaterMark?: number;
  writableHighWaterMark?: number;
}

/** One data frame cut from a stream's pending chunk. */
export interface OutgoingDataFrame {
  header: Buffer;
  payload: Buffer;
  /** The write callback to complete once the frame is handed to the transport (the chunk's last frame only). */
  done: ((error?: Error | null) => void) | undefined;
}

type WriteCallback = (error?: Error | null) => void;

export class YamuxStream extends Duplex {
  readonly id: number;
  /** Payload bytes received from and sent to the peer. */
  bytesIn = 0;
  bytesOut = 0;

  private readonly host: YamuxStreamHost;
  private readonly windowMax: number;
  /** Credit the peer still has: bytes it may send before our next window update. */
  private recvWindow: number;
  private readonly recvQueue: Buffer[] = [];
  private recvQueued = 0;
  private readWanted = false;
  /** Bytes the peer may still send us before it must wait for a window update. */
  private sendWindowBytes = INITIAL_STREAM_WINDOW;
  private sendChunk: Buffer | undefined;
  private sendOffset = 0;
  private sendCallback: WriteCallback | undefined;
  private remoteFin = false;
  private localFin = false;
  private endPushed = false;
  private resetReceived = false;
  private acknowledged: boolean;

  constructor(host: YamuxStreamHost, id: number, init: YamuxStreamInit, acknowledged: boolean) {
    super({
      allowHalfOpen: true,
      readableHighWaterMark: init.readableHighWaterMark,
      writableHighWaterMark: init.writableHighWaterMark,
    });
    this.host = host;
    this.id = id;
    this.windowMax = init.streamWindowBytes;
    this.recvWindow = init.streamWindowBytes;
    this.acknowledged = acknowledged;
  }

  /** Bytes we may still send before the peer grants more. */
  get sendWindow(): number {
    return this.sendWindowBytes;
  }

  /** Bytes received and not yet taken by the consumer (bounded by the window). */
  get receiveQueued(): number {
    return this.recvQueued;
  }

  /** True once the peer acknowledged a stream we opened (always true for accepted streams). */
  get established(): boolean {
    return this.acknowledged;
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
      callback(new YamuxError('session_closed', 'yamux: session closed'));
      return;
    }
    if (chunk.length === 0) {
      callback();
      return;
    }
    this.sendChunk = chunk;
    this.sendOffset = 0;
    this.sendCallback = callback;
    if (this.sendWindowBytes > 0) this.host.markSendable(this);
  }

  override _final(callback: WriteCallback): void {
    if (this.host.closed) {
      callback(new YamuxError('session_closed', 'yamux: session closed'));
      return;
    }
    // Node calls _final after every write callback, so all data frames are already on the transport queue ahead of it.
    this.localFin = true;
    this.host.sendControl(encodeWindowUpdate(this.id, Flag.FIN, 0));
    if (this.remoteFin) this.host.forgetStream(this);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const finished = this.localFin && this.remoteFin;
    if (!finished && !this.resetReceived && !this.host.closed) {
      this.host.sendControl(encodeWindowUpdate(this.id, Flag.RST, 0));
    }
    this.sendChunk = undefined;
    this.sendCallback = undefined;
    this.recvQueue.length = 0;
    this.recvQueued = 0;
    this.host.forgetStream(this);
    callback(error);
  }

  // ---- called by the session (frames from the peer, writer) ----

  /** @internal A data payload arrived. Returns false when it exceeds the window we granted (a session protocol error). */
  receiveData(payload: Buffer): boolean {
    if (payload.length > this.recvWindow) return false;
    this.recvWindow -= payload.length;
    this.bytesIn += payload.length;
    if (this.destroyed) return true;
    this.recvQueue.push(payload);
    this.recvQueued += payload.length;
    this.deliver();
    return true;
  }

  /** @internal True once the peer sent FIN: more data on the stream is a protocol error. */
  get remoteFinished(): boolean {
    return this.remoteFin;
  }

  /** @internal The peer granted `delta` more bytes. Returns false if the window would overflow u32. */
  receiveWindowUpdate(delta: number): boolean {
    if (this.sendWindowBytes + delta > MAX_LENGTH_FIELD) return false;
    this.sendWindowBytes += delta;
    if (this.sendChunk && this.sendWindowBytes > 0 && !this.destroyed) this.host.markSendable(this);
    return true;
  }

  /** @internal The peer accepted the stream we opened. */
  receiveAck(): void {
    this.acknowledged = true;
  }

  /** @internal The peer half-closed. */
  receiveFin(): void {
    if (this.remoteFin) return;
    this.remoteFin = true;
    this.deliver();
    if (this.localFin) this.host.forgetStream(this);
  }

  /** @internal The peer reset the stream. */
  receiveReset(): void {
    this.resetReceived = true;
    this.destroy(new YamuxError('stream_reset', `yamux: stream ${this.id} reset by peer`));
  }

  /** @internal The session ended; no RST can or need be sent. */
  sessionClosed(error: Error | undefined): void {
    this.resetReceived = true;
    this.destroy(error);
  }

  /** @internal True while there is pending data and window to send it. */
  get canSend(): boolean {
    return this.sendChunk !== undefined && this.sendWindowBytes > 0 && !this.destroyed;
  }

  /** @internal Cuts the next data frame (at most `maxFrameBytes`) from the pending chunk. */
  takeDataFrame(maxFrameBytes: number): OutgoingDataFrame | undefined {
    const chunk = this.sendChunk;
    if (!chunk || this.sendWindowBytes === 0 || this.destroyed) return undefined;
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
    return { header: encodeDataHeader(this.id, 0, size), payload, done };
  }

  /** Moves queued payloads into the Readable while the consumer wants them, then returns the credit. */
  private deliver(): void {
    while (this.readWanted && this.recvQueue.length > 0) {
      const payload = this.recvQueue.shift() as Buffer;
      this.recvQueued -= payload.length;
      this.readWanted = this.push(payload);
    }
    if (this.recvQueue.length === 0 && this.remoteFin && !this.endPushed) {
      this.endPushed = true;
      this.push(null);
    }
    this.maybeSendWindowUpdate();
  }

  /**
   * Grants the peer what the consumer has taken, once it is at least half the window (as yamux's sendWindowUpdate does),
   * so a steady transfer costs one window update per half window rather than one per frame.
   */
  private maybeSendWindowUpdate(): void {
    if (this.remoteFin || this.destroyed || this.host.closed) return;
    const delta = this.windowMax - this.recvQueued - this.recvWindow;
    if (delta < this.windowMax / 2) return;
    this.recvWindow += delta;
    this.host.sendControl(encodeWindowUpdate(this.id, 0, delta));
  }
}
