/**
 * One muxado v1 stream as a Node Duplex (muxado proto/stream.go, with Node's stream machinery doing the waiting).
 *
 * Windows as muxado v1 runs them: each direction starts at 64 KiB with no negotiation; the receiver returns credit with
 * WNDINC as its application consumes. muxado's receive buffer is exactly the window, and data beyond it makes muxado reset
 * the stream with FLOW_CONTROL_ERROR, so our send window starts at DEFAULT_WINDOW and never goes negative.
 *
 * Receive side: DATA payloads land in `recvQueue` (bounded by the window we granted); they move into the Readable only when
 * the consumer asks (`_read`), and credit goes back as they move, in WNDINC frames of at least half a window. Send side:
 * `_write` parks one chunk; the session's writer cuts it into DATA frames of at most 16383 bytes while the window allows,
 * round-robin with the other streams, and completes the write callback when the chunk's last frame is on the transport.
 *
 * Half-close: `end()` sends an empty DATA with FIN after all written data (what muxado's HalfClose/Close send); a FIN from
 * the peer ends the Readable once the queue is read. `destroy()` before both FINs sends RST CANCEL; a RST from the peer
 * destroys the stream with a `stream_reset` Muxado1Error.
 */
import { Duplex } from 'node:stream';
import { ErrorCodes, SwitchboardError } from '../../../errors.js';
import {
  DEFAULT_WINDOW,
  MAX_FRAME_BODY,
  ResetCode,
  WINDOW_INCREMENT_MASK,
  encodeDataHeader,
  encodeRst,
  encodeWndInc,
} from '../../../protocols/muxado1.js';

export type Muxado1ErrorReason =
  /** The peer reset (or refused) the stream. */
  | 'stream_reset'
  /** The session ended while the stream was still open. */
  | 'session_closed'
  /** The peer sent GOAWAY: it accepts no new streams (and dropped ours above its last id). */
  | 'remote_go_away'
  /** `maxStreams` streams are open already, or every stream id of our parity is used. */
  | 'too_many_streams'
  /** Our heartbeat got no echo within interval + tolerance. */
  | 'heartbeat_timeout'
  /** A tcp-relay service did not open its first stream in time. */
  | 'handshake_timeout'
  /** The relay had no address to give the service (the promise passed to serveTcpRelayHandshake rejected). */
  | 'handshake_failed'
  /** The transport could not take our frames fast enough (write backlog past its bound). */
  | 'write_backlog'
  /** The peer broke the protocol (bad frame, bad stream id, data beyond the window, wrong heartbeat echo). */
  | 'protocol';

/** Every muxado v1 failure carries SWB_ERR_PROTOCOL and a `reason` saying which one it is. */
export class Muxado1Error extends SwitchboardError {
  readonly reason: Muxado1ErrorReason;
  /** For `stream_reset`: the RST's error code (ResetCode). */
  readonly resetCode: number | undefined;
  constructor(reason: Muxado1ErrorReason, message: string, options?: { cause?: unknown; resetCode?: number }) {
    super(ErrorCodes.PROTOCOL, message, options);
    this.name = 'Muxado1Error';
    this.reason = reason;
    this.resetCode = options?.resetCode;
  }
}

/** What a stream needs from its session; the session implements it (kept here to avoid an import cycle). */
export interface Muxado1StreamHost {
  readonly closed: boolean;
  /** Writes a control frame (WNDINC, FIN, RST) at once, ahead of queued data. */
  sendControl(frame: Buffer): void;
  /** The stream has data to send and window to send it with. */
  markSendable(stream: Muxado1Stream): void;
  /** The stream is finished both ways or reset: frames for its id are no longer expected. */
  forgetStream(stream: Muxado1Stream): void;
}

export interface Muxado1StreamInit {
  /** Receive window we grant the peer (the session already announced anything above DEFAULT_WINDOW). */
  receiveWindowBytes: number;
  /** The SYN's fields, for information: muxado ignores priority. */
  priority: number;
  streamType: number;
  readableHighWaterMark?: number;
  writableHighWaterMark?: number;
}

/** One DATA frame cut from a stream's pending chunk. */
export interface OutgoingDataFrame {
  header: Buffer;
  payload: Buffer;
  /** The write callback to complete once the frame is on the transport (the chunk's last frame only). */
  done: WriteCallback | undefined;
}

type WriteCallback = (error?: Error | null) => void;

export class Muxado1Stream extends Duplex {
  readonly id: number;
  readonly priority: number;
  readonly streamType: number;
  /** Payload bytes received from and sent to the peer. */
  bytesIn = 0;
  bytesOut = 0;

  private readonly host: Muxado1StreamHost;
  private readonly windowMax: number;
  /** Bytes the peer may still send before our next WNDINC. */
  private recvWindow: number;
  private readonly recvQueue: Buffer[] = [];
  private recvQueued = 0;
  private readWanted = false;
  /** Bytes we may still send: muxado's receive buffer for this stream is DEFAULT_WINDOW and fills as we send. */
  private sendWindowBytes = DEFAULT_WINDOW;
  private sendChunk: Buffer | undefined;
  private sendOffset = 0;
  private sendCallback: WriteCallback | undefined;
  private remoteFin = false;
  private localFin = false;
  private endPushed = false;
  private noResetNeeded = false;

  constructor(host: Muxado1StreamHost, id: number, init: Muxado1StreamInit) {
    super({
      allowHalfOpen: true,
      readableHighWaterMark: init.readableHighWaterMark,
      writableHighWaterMark: init.writableHighWaterMark,
    });
    this.host = host;
    this.id = id;
    this.priority = init.priority;
    this.streamType = init.streamType;
    this.windowMax = init.receiveWindowBytes;
    this.recvWindow = init.receiveWindowBytes;
  }

  /** Bytes we may still send before the peer grants more. */
  get sendWindow(): number {
    return this.sendWindowBytes;
  }

  /** Bytes received and not yet taken by the consumer (bounded by the window). */
  get receiveQueued(): number {
    return this.recvQueued;
  }

  /** Hard-closes the stream: RST CANCEL to the peer unless both sides had already finished. Same as `destroy()`. */
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
      callback(new Muxado1Error('session_closed', 'muxado: session closed'));
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
      callback(new Muxado1Error('session_closed', 'muxado: session closed'));
      return;
    }
    // Node calls _final after every write callback, so all DATA frames are already on the transport ahead of the FIN.
    this.localFin = true;
    this.host.sendControl(encodeDataHeader(this.id, 0, true));
    if (this.remoteFin) this.host.forgetStream(this);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const finished = this.localFin && this.remoteFin;
    if (!finished && !this.noResetNeeded && !this.host.closed) {
      this.host.sendControl(encodeRst(this.id, ResetCode.CANCEL));
    }
    this.sendChunk = undefined;
    this.sendCallback = undefined;
    this.recvQueue.length = 0;
    this.recvQueued = 0;
    this.host.forgetStream(this);
    callback(error);
  }

  // ---- called by the session (frames from the peer, writer) ----

  /**
   * @internal A DATA frame arrived. Like muxado (stream.go handleStreamData), data beyond the window or after the peer's
   * FIN is a stream-level error: the stream is reset with FLOW_CONTROL_ERROR or STREAM_CLOSED, the session lives on.
   */
  receiveData(payload: Buffer, fin: boolean): void {
    if (this.remoteFin) {
      if (payload.length > 0 || fin) this.resetWith(ResetCode.STREAM_CLOSED, 'data after FIN');
      return;
    }
    if (payload.length > this.recvWindow) {
      this.resetWith(ResetCode.FLOW_CONTROL_ERROR, `${payload.length} bytes with a window of ${this.recvWindow}`);
      return;
    }
    this.recvWindow -= payload.length;
    this.bytesIn += payload.length;
    if (payload.length > 0 && !this.destroyed) {
      this.recvQueue.push(payload);
      this.recvQueued += payload.length;
    }
    if (fin) this.remoteFin = true;
    this.deliver();
    if (fin && this.localFin) this.host.forgetStream(this);
  }

  /** @internal The peer granted `increment` more bytes. */
  receiveWindowIncrement(increment: number): void {
    // muxado never caps the window; we keep it within the 31 bits a WNDINC can carry.
    this.sendWindowBytes = Math.min(this.sendWindowBytes + increment, WINDOW_INCREMENT_MASK);
    if (this.sendChunk && this.sendWindowBytes > 0 && !this.destroyed) this.host.markSendable(this);
  }

  /** @internal The peer reset the stream. */
  receiveReset(errorCode: number): void {
    this.noResetNeeded = true;
    this.destroy(new Muxado1Error('stream_reset', `muxado: stream ${this.id} reset by peer (code ${errorCode})`, { resetCode: errorCode }));
  }

  /** @internal The session ended (or the peer's GOAWAY dropped this stream); no RST can or need be sent. */
  sessionClosed(error: Error | undefined): void {
    this.noResetNeeded = true;
    this.destroy(error);
  }

  /** @internal True while there is pending data and window to send it. */
  get canSend(): boolean {
    return this.sendChunk !== undefined && this.sendWindowBytes > 0 && !this.destroyed;
  }

  /** @internal Cuts the next DATA frame (at most 16383 bytes, muxado's 14-bit length) from the pending chunk. */
  takeDataFrame(): OutgoingDataFrame | undefined {
    const chunk = this.sendChunk;
    if (!chunk || this.sendWindowBytes <= 0 || this.destroyed) return undefined;
    const size = Math.min(chunk.length - this.sendOffset, this.sendWindowBytes, MAX_FRAME_BODY);
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
    return { header: encodeDataHeader(this.id, size, false), payload, done };
  }

  private resetWith(code: number, why: string): void {
    if (!this.destroyed && !this.host.closed) this.host.sendControl(encodeRst(this.id, code));
    this.noResetNeeded = true;
    this.destroy(new Muxado1Error('protocol', `muxado: stream ${this.id} reset: ${why}`, { resetCode: code }));
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
    this.maybeSendWindowIncrement();
  }

  /**
   * Returns what the consumer has taken once it is at least half the window. muxado sends a WNDINC per Read(); batching
   * costs the sender nothing, because it still holds at least half a window while we wait.
   */
  private maybeSendWindowIncrement(): void {
    if (this.remoteFin || this.destroyed || this.host.closed) return;
    const increment = this.windowMax - this.recvQueued - this.recvWindow;
    if (increment <= 0 || increment < this.windowMax / 2) return;
    this.recvWindow += increment;
    this.host.sendControl(encodeWndInc(this.id, increment));
  }
}
