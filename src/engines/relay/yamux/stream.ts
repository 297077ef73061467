/**
 * One yamux stream as a Node Duplex (hashicorp yamux stream.go, with Node's stream machinery doing the waiting). Flow
 * control, half-close and the send/receive queues are `CreditedStream`'s (../credited-stream.ts), shared with muxado v1;
 * here are yamux's frames: FIN and RST are flags on a window update, credit goes back in window updates, and a stream
 * starts with INITIAL_STREAM_WINDOW each way. A RST from the peer destroys the stream with a `stream_reset` YamuxError.
 */
import { ErrorCodes, SwitchboardError } from '../../../errors.js';
import { Flag, INITIAL_STREAM_WINDOW, MAX_LENGTH_FIELD, encodeDataHeader, encodeWindowUpdate } from '../../../protocols/yamux.js';
import { CreditedStream, type CreditedStreamHost } from '../credited-stream.js';

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

/** What a stream needs from its session; the session implements it. */
export type YamuxStreamHost = CreditedStreamHost<YamuxStream>;

export interface YamuxStreamInit {
  /** Receive window we grant the peer (the session already announced anything above INITIAL_STREAM_WINDOW). */
  streamWindowBytes: number;
  readableHighWaterMark?: number;
  writableHighWaterMark?: number;
}

export class YamuxStream extends CreditedStream<YamuxStream> {
  private acknowledged: boolean;

  constructor(host: YamuxStreamHost, id: number, init: YamuxStreamInit, acknowledged: boolean) {
    super(host, id, {
      receiveWindowBytes: init.streamWindowBytes,
      // Every yamux stream starts with 256 KiB of credit each way (spec: initial window).
      sendWindowBytes: INITIAL_STREAM_WINDOW,
      readableHighWaterMark: init.readableHighWaterMark,
      writableHighWaterMark: init.writableHighWaterMark,
    });
    this.acknowledged = acknowledged;
  }

  /** True once the peer acknowledged a stream we opened (always true for accepted streams). */
  get established(): boolean {
    return this.acknowledged;
  }

  protected sessionClosedError(): Error {
    return new YamuxError('session_closed', 'yamux: session closed');
  }

  protected finFrame(): Buffer {
    return encodeWindowUpdate(this.id, Flag.FIN, 0);
  }

  protected resetFrame(): Buffer {
    return encodeWindowUpdate(this.id, Flag.RST, 0);
  }

  protected windowGrantFrame(delta: number): Buffer {
    return encodeWindowUpdate(this.id, 0, delta);
  }

  protected dataHeader(size: number): Buffer {
    return encodeDataHeader(this.id, 0, size);
  }

  // ---- called by the session (frames from the peer) ----

  /** @internal A data payload arrived. Returns false when it exceeds the window we granted (a session protocol error). */
  receiveData(payload: Buffer): boolean {
    if (payload.length > this.recvWindow) return false;
    this.accept(payload);
    if (!this.destroyed) this.deliver();
    return true;
  }

  /** @internal True once the peer sent FIN: more data on the stream is a protocol error. */
  get remoteFinished(): boolean {
    return this.remoteFin;
  }

  /** @internal The peer granted `delta` more bytes. Returns false if the window would overflow u32. */
  receiveWindowUpdate(delta: number): boolean {
    if (this.sendWindowBytes + delta > MAX_LENGTH_FIELD) return false;
    this.setSendWindow(this.sendWindowBytes + delta);
    return true;
  }

  /** @internal The peer accepted the stream we opened. */
  receiveAck(): void {
    this.acknowledged = true;
  }

  /** @internal The peer half-closed. */
  receiveFin(): void {
    if (!this.remoteFin) this.finishRemote();
  }

  /** @internal The peer reset the stream. */
  receiveReset(): void {
    this.noResetNeeded = true;
    this.destroy(new YamuxError('stream_reset', `yamux: stream ${this.id} reset by peer`));
  }
}
