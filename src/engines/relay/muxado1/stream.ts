/**
 * One muxado v1 stream as a Node Duplex (muxado proto/stream.go, with Node's stream machinery doing the waiting). Flow
 * control, half-close and the send/receive queues are `CreditedStream`'s (../credited-stream.ts), shared with yamux; here
 * are muxado v1's frames and rules:
 *
 * Windows as muxado v1 runs them: each direction starts at 64 KiB with no negotiation; the receiver returns credit with
 * WNDINC as its application consumes. muxado's receive buffer is exactly the window, and data beyond it makes muxado reset
 * the stream with FLOW_CONTROL_ERROR, so our send window starts at DEFAULT_WINDOW and never goes negative. DATA frames
 * carry at most 16383 bytes (a 14-bit length).
 *
 * Half-close: `end()` sends an empty DATA with FIN (what muxado's HalfClose/Close send). `destroy()` before both FINs
 * sends RST CANCEL; a RST from the peer destroys the stream with a `stream_reset` Muxado1Error.
 */
import { ErrorCodes, SwitchboardError } from '../../../errors.js';
import {
  DEFAULT_WINDOW,
  ResetCode,
  WINDOW_INCREMENT_MASK,
  encodeDataHeader,
  encodeRst,
  encodeWndInc,
} from '../../../protocols/muxado1.js';
import { CreditedStream, type CreditedStreamHost } from '../credited-stream.js';

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

/** What a stream needs from its session; the session implements it. */
export type Muxado1StreamHost = CreditedStreamHost<Muxado1Stream>;

export interface Muxado1StreamInit {
  /** Receive window we grant the peer (the session already announced anything above DEFAULT_WINDOW). */
  receiveWindowBytes: number;
  /** The SYN's fields, for information: muxado ignores priority. */
  priority: number;
  streamType: number;
  readableHighWaterMark?: number;
  writableHighWaterMark?: number;
}

export class Muxado1Stream extends CreditedStream<Muxado1Stream> {
  readonly priority: number;
  readonly streamType: number;

  constructor(host: Muxado1StreamHost, id: number, init: Muxado1StreamInit) {
    super(host, id, {
      receiveWindowBytes: init.receiveWindowBytes,
      // muxado's receive buffer for this stream is DEFAULT_WINDOW and fills as we send.
      sendWindowBytes: DEFAULT_WINDOW,
      readableHighWaterMark: init.readableHighWaterMark,
      writableHighWaterMark: init.writableHighWaterMark,
    });
    this.priority = init.priority;
    this.streamType = init.streamType;
  }

  protected sessionClosedError(): Error {
    return new Muxado1Error('session_closed', 'muxado: session closed');
  }

  protected finFrame(): Buffer {
    return encodeDataHeader(this.id, 0, true);
  }

  protected resetFrame(): Buffer {
    return encodeRst(this.id, ResetCode.CANCEL);
  }

  protected windowGrantFrame(increment: number): Buffer {
    return encodeWndInc(this.id, increment);
  }

  protected dataHeader(size: number): Buffer {
    return encodeDataHeader(this.id, size, false);
  }

  // ---- called by the session (frames from the peer) ----

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
    this.accept(payload);
    if (fin) this.finishRemote();
    else this.deliver();
  }

  /** @internal The peer granted `increment` more bytes. */
  receiveWindowIncrement(increment: number): void {
    // muxado never caps the window; we keep it within the 31 bits a WNDINC can carry.
    this.setSendWindow(Math.min(this.sendWindowBytes + increment, WINDOW_INCREMENT_MASK));
  }

  /** @internal The peer reset the stream. */
  receiveReset(errorCode: number): void {
    this.noResetNeeded = true;
    this.destroy(new Muxado1Error('stream_reset', `muxado: stream ${this.id} reset by peer (code ${errorCode})`, { resetCode: errorCode }));
  }

  private resetWith(code: number, why: string): void {
    if (!this.destroyed && !this.host.closed) this.host.sendControl(encodeRst(this.id, code));
    this.noResetNeeded = true;
    this.destroy(new Muxado1Error('protocol', `muxado: stream ${this.id} reset: ${why}`, { resetCode: code }));
  }
}
