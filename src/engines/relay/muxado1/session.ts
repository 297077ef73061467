/**
 * A muxado v1 session over any Node Duplex (muxado proto/session.go and proto/ext/heartbeat.go), enough to play
 * ethransom/tcp-relay's relay towards its services (`role: 'server'`) or a service towards a relay (`role: 'client'`).
 *
 * What it does, and where muxado says so:
 * - Stream ids: a client opens 3, 5, 7, ... and a server 2, 4, 6, ... A SYN with our parity or an id not above the last one
 *   the peer used is a protocol error that closes the session (session.go handleFrame).
 * - Streams opened by the peer with a stream type below MIN_EXTENSION_TYPE are emitted as 'stream'. Extension streams go
 *   to extensions: the heartbeat stream is answered here; any other extension type is refused with RST STREAM_CLOSED.
 * - Heartbeats (ext/heartbeat.go): each side opens one stream (priority 0x7FFFFFFF, type HEARTBEAT_STREAM_TYPE), writes a
 *   4-byte id every interval and waits for the same 4 bytes back; the other side echoes every 4 bytes it reads. Without
 *   an echo within interval + tolerance, muxado closes the session, so we echo the peer's heartbeats as they arrive. We
 *   also run our own (heartbeatIntervalMs, 0 to disable) to find dead peers.
 * - DATA on a stream that is gone gets RST STREAM_CLOSED; RST and WNDINC for it are ignored; any frame for an id the peer
 *   could not have opened yet is a protocol error (session.go getStream).
 * - GOAWAY from the peer: no new streams from us, and ours above its lastStreamId are dead. Our goAway() refuses new
 *   streams from the peer with RST REFUSED_STREAM, as muxado does. close() sends GOAWAY and ends the transport.
 *
 * The transport is read without pause: per-stream windows do the flow control. Control frames (SYN, WNDINC, FIN, RST,
 * GOAWAY, heartbeats) are written at once; DATA frames go out round-robin between streams, one frame per turn, only while
 * the transport is below its high-water mark. Everything is bounded: the decoder holds one frame, each stream at most its
 * window, the transport's write queue at most maxWriteBacklogBytes (past it the session closes), the streams maxStreams.
 * Bad bytes never throw: the session closes with a reason ('close' event) and the transport is ended.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { FrameError } from '../../../errors.js';
import {
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_HEARTBEAT_TOLERANCE_MS,
  DEFAULT_WINDOW,
  HEARTBEAT_ID_SIZE,
  HEARTBEAT_PRIORITY,
  HEARTBEAT_STREAM_TYPE,
  MAX_FRAME_BODY,
  MAX_STREAM_ID,
  MIN_EXTENSION_TYPE,
  Muxado1Decoder,
  type Muxado1Frame,
  ResetCode,
  WINDOW_INCREMENT_MASK,
  encodeData,
  encodeDataHeader,
  encodeGoAway,
  encodeRst,
  encodeSyn,
  encodeWndInc,
} from '../../../protocols/muxado1.js';
import { Muxado1Error, type Muxado1ErrorReason, Muxado1Stream, type Muxado1StreamHost } from './stream.js';

export interface Muxado1SessionOptions {
  /** 'server' for the relay (tcp-relay's relay runs muxado.Server: even ids), 'client' for a service (odd ids). */
  role: 'server' | 'client';
  /**
   * Receive window per stream. muxado v1 has no negotiation: both sides start at 64 KiB. A larger window is granted to
   * the peer with one WNDINC right after the stream opens (muxado adds increments without a cap).
   */
  receiveWindowBytes: number;
  /** Streams open at once (heartbeat streams not counted); more from the peer get RST REFUSED_STREAM. */
  maxStreams: number;
  /** Our own heartbeat period; 0 sends none (the peer's heartbeats are echoed either way). muxado's default is 3 s. */
  heartbeatIntervalMs: number;
  /** No echo within interval + tolerance closes the session, as muxado's check() does. muxado's default is 10 s. */
  heartbeatToleranceMs: number;
  /** Bound on the transport's write queue; a peer that stops reading past it gets the session closed. */
  maxWriteBacklogBytes: number;
  /** After close(), how long the transport may take to flush its GOAWAY before it is destroyed. */
  closeLingerMs: number;
  /** Passed to every stream's Duplex. */
  streamHighWaterMark?: number;
  /**
   * Bytes already read from the transport (say, while telling a legacy service from a preamble); they are decoded before
   * anything read later, on the next tick, so listeners attached right after construction see their frames.
   */
  head?: Buffer;
}

export const DEFAULT_MUXADO1_SESSION_OPTIONS: Readonly<Muxado1SessionOptions> = {
  role: 'server',
  receiveWindowBytes: DEFAULT_WINDOW,
  maxStreams: 1024,
  heartbeatIntervalMs: DEFAULT_HEARTBEAT_INTERVAL_MS,
  heartbeatToleranceMs: DEFAULT_HEARTBEAT_TOLERANCE_MS,
  maxWriteBacklogBytes: 4 * 1024 * 1024,
  closeLingerMs: 1_000,
};

export interface Muxado1CloseInfo {
  /** Why the session ended: 'local' (close() called), 'transport_closed' (the peer hung up), or a Muxado1Error reason. */
  reason: 'local' | 'transport_closed' | Muxado1ErrorReason;
  /** Set for every reason except 'local' and a clean 'transport_closed'. */
  error: Muxado1Error | FrameError | undefined;
  /** The peer's GOAWAY, if one arrived before the end (muxado sends one before closing, with its reason as debug). */
  remoteGoAway: { errorCode: number; debug: string } | undefined;
}

export interface Muxado1SessionStats {
  framesIn: number;
  framesOut: number;
  /** The peer's heartbeats we echoed. */
  heartbeatsEchoed: number;
  /** Our heartbeats the peer echoed, and the last round trip. */
  heartbeatsAnswered: number;
  lastHeartbeatRttMs: number | undefined;
}

export interface Muxado1SessionEvents {
  /** A stream opened by the peer (not an extension stream). */
  stream: [stream: Muxado1Stream];
  /** The peer sent GOAWAY. */
  goaway: [lastStreamId: number, errorCode: number, debug: Buffer];
  /** The peer echoed one of our heartbeats. */
  heartbeat: [rttMs: number];
  /** Emitted once; every stream is destroyed by then. */
  close: [info: Muxado1CloseInfo];
}

/** The peer's heartbeat stream: we echo every 4 bytes read on it. */
interface HeartbeatResponder {
  id: number;
  partial: Buffer;
  recvWindow: number;
  sendWindow: number;
}

/** Our heartbeat stream: one id in flight at a time, like muxado's request(). */
interface HeartbeatRequester {
  id: number;
  nextId: number;
  inFlight: { id: number; sentAt: number } | undefined;
  partial: Buffer;
  recvWindow: number;
  sendWindow: number;
  timer: NodeJS.Timeout | undefined;
  watchdog: NodeJS.Timeout | undefined;
}

const EMPTY = Buffer.alloc(0);

export class Muxado1Session extends EventEmitter<Muxado1SessionEvents> implements Muxado1StreamHost {
  readonly options: Readonly<Muxado1SessionOptions>;
  readonly stats: Muxado1SessionStats = {
    framesIn: 0,
    framesOut: 0,
    heartbeatsEchoed: 0,
    heartbeatsAnswered: 0,
    lastHeartbeatRttMs: undefined,
  };

  private readonly transport: Duplex;
  private readonly decoder = new Muxado1Decoder();
  private readonly streams = new Map<number, Muxado1Stream>();
  /** Streams with data and window, served round-robin one frame at a time. */
  private readonly sendable: Muxado1Stream[] = [];
  private readonly queued = new Set<Muxado1Stream>();
  private lastLocalId: number;
  private lastRemoteId: number;
  private localGoneAway = false;
  private remoteGoneAway = false;
  private remoteGoAwayInfo: Muxado1CloseInfo['remoteGoAway'];
  private responder: HeartbeatResponder | undefined;
  private requester: HeartbeatRequester | undefined;
  private isClosed = false;
  private flushing = false;
  private lingerTimer: NodeJS.Timeout | undefined;

  constructor(transport: Duplex, options: Partial<Muxado1SessionOptions> = {}) {
    super();
    this.options = { ...DEFAULT_MUXADO1_SESSION_OPTIONS, ...options };
    this.transport = transport;
    // session.go NewSession: a client's lastId starts at 1 (first stream 3), a server's at 0 (first stream 2); the
    // remote half starts at the other value, so the peer's first stream must be above it.
    this.lastLocalId = this.options.role === 'client' ? 1 : 0;
    this.lastRemoteId = this.options.role === 'client' ? 0 : 1;

    const { head } = this.options;
    // Queued before the 'data' listener schedules the transport's resume, so these bytes come first.
    if (head !== undefined && head.length > 0) process.nextTick(() => this.onTransportData(head));
    transport.on('data', (chunk: Buffer) => this.onTransportData(chunk));
    transport.on('drain', () => this.flush());
    transport.on('end', () => this.finish('transport_closed', undefined));
    transport.on('close', () => this.finish('transport_closed', undefined));
    transport.on('error', (error: Error) =>
      this.finish('transport_closed', new Muxado1Error('session_closed', `muxado: transport error: ${error.message}`, { cause: error })),
    );
    if (this.options.heartbeatIntervalMs > 0) this.startHeartbeat();
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Open streams, heartbeat streams not counted. */
  get streamCount(): number {
    return this.streams.size;
  }

  /**
   * Opens a stream (SYN with priority 0 and type 0, as muxado's Open()). Returns an error instead when the session is
   * closed, the peer sent GOAWAY, or the stream bound or the id space is used up.
   */
  openStream(): Muxado1Stream | Muxado1Error {
    if (this.isClosed) return new Muxado1Error('session_closed', 'muxado: session closed');
    if (this.remoteGoneAway) return new Muxado1Error('remote_go_away', 'muxado: the peer sent GOAWAY');
    if (this.streams.size >= this.options.maxStreams) {
      return new Muxado1Error('too_many_streams', `muxado: ${this.streams.size} streams open already`);
    }
    const id = this.nextLocalId();
    if (id === undefined) return new Muxado1Error('too_many_streams', 'muxado: stream ids exhausted');
    const stream = this.createStream(id, 0, 0);
    this.sendControl(encodeSyn(id));
    this.grantExtraWindow(id);
    return stream;
  }

  /**
   * Tells the peer to open no more streams (GOAWAY NO_ERROR with the last id it opened); later SYNs get RST
   * REFUSED_STREAM. Existing streams go on, so a caller can drain them and then close().
   */
  goAway(errorCode: number = ResetCode.NO_ERROR): void {
    if (this.isClosed || this.localGoneAway) return;
    this.localGoneAway = true;
    this.sendControl(encodeGoAway(this.lastRemoteId, errorCode));
  }

  /** Sends GOAWAY (unless sent already), destroys every stream and ends the transport. */
  close(): void {
    this.goAway(ResetCode.NO_ERROR);
    this.finish('local', undefined);
  }

  /** Ends the session without a GOAWAY and destroys the transport at once. */
  destroy(): void {
    this.finish('local', undefined);
    this.transport.destroy();
  }

  // ---- Muxado1StreamHost ----

  sendControl(frame: Buffer): void {
    if (this.isClosed) return;
    this.write(frame);
    this.checkBacklog();
  }

  markSendable(stream: Muxado1Stream): void {
    if (this.isClosed || this.queued.has(stream)) return;
    this.queued.add(stream);
    this.sendable.push(stream);
    this.flush();
  }

  forgetStream(stream: Muxado1Stream): void {
    if (this.streams.get(stream.id) === stream) this.streams.delete(stream.id);
    this.queued.delete(stream);
  }

  // ---- reading ----

  private onTransportData(chunk: Buffer): void {
    if (this.isClosed) return;
    const { frames, error } = this.decoder.push(chunk);
    for (const frame of frames) {
      if (this.isClosed) return;
      this.stats.framesIn += 1;
      this.handleFrame(frame);
    }
    if (error && !this.isClosed) this.fail(error.message, error);
  }

  private handleFrame(frame: Muxado1Frame): void {
    switch (frame.kind) {
      case 'syn':
        this.onSyn(frame.streamId, frame.priority, frame.streamType, frame.fin);
        return;
      case 'data':
        this.onData(frame.streamId, frame.payload, frame.fin);
        return;
      case 'rst':
        if (!this.checkKnownId(frame.streamId)) return;
        if (this.requester?.id === frame.streamId) {
          // A peer without the heartbeat extension refuses our heartbeat stream: stop asking, keep the session.
          this.stopHeartbeat();
          return;
        }
        if (this.responder?.id === frame.streamId) {
          this.responder = undefined;
          return;
        }
        this.streams.get(frame.streamId)?.receiveReset(frame.errorCode);
        return;
      case 'wndinc':
        if (!this.checkKnownId(frame.streamId)) return;
        if (this.requester?.id === frame.streamId) {
          this.requester.sendWindow = Math.min(this.requester.sendWindow + frame.increment, WINDOW_INCREMENT_MASK);
        } else if (this.responder?.id === frame.streamId) {
          this.responder.sendWindow = Math.min(this.responder.sendWindow + frame.increment, WINDOW_INCREMENT_MASK);
        } else {
          this.streams.get(frame.streamId)?.receiveWindowIncrement(frame.increment);
        }
        return;
      case 'goaway':
        this.onGoAway(frame.lastStreamId, frame.errorCode, frame.debug);
        return;
    }
  }

  private onSyn(id: number, priority: number, streamType: number, fin: boolean): void {
    // session.go: while going away, refuse new streams (before any id check).
    if (this.localGoneAway) {
      this.sendControl(encodeRst(id, ResetCode.REFUSED_STREAM));
      return;
    }
    if (id === 0 || this.isLocalId(id)) {
      this.fail(`muxado: stream id ${id} has the wrong parity for the peer`);
      return;
    }
    if (id <= this.lastRemoteId) {
      this.fail(`muxado: stream id ${id} is not above the peer's last id ${this.lastRemoteId}`);
      return;
    }
    this.lastRemoteId = id;

    if (streamType >= MIN_EXTENSION_TYPE) {
      if (streamType === HEARTBEAT_STREAM_TYPE && this.responder === undefined) {
        this.responder = { id, partial: EMPTY, recvWindow: DEFAULT_WINDOW, sendWindow: DEFAULT_WINDOW };
      } else {
        // session.go: an extension type nobody registered gets RST STREAM_CLOSED. A second heartbeat stream would block
        // muxado's own reader; we refuse it instead.
        this.sendControl(encodeRst(id, ResetCode.STREAM_CLOSED));
      }
      return;
    }

    if (this.streams.size >= this.options.maxStreams || this.listenerCount('stream') === 0) {
      this.sendControl(encodeRst(id, ResetCode.REFUSED_STREAM));
      return;
    }
    const stream = this.createStream(id, priority, streamType);
    this.grantExtraWindow(id);
    if (fin) stream.receiveData(EMPTY, true);
    this.emit('stream', stream);
  }

  private onData(id: number, payload: Buffer, fin: boolean): void {
    if (!this.checkKnownId(id)) return;
    if (this.responder?.id === id) {
      this.onHeartbeatRequest(payload, fin);
      return;
    }
    if (this.requester?.id === id) {
      this.onHeartbeatEcho(payload);
      return;
    }
    const stream = this.streams.get(id);
    if (stream === undefined) {
      // session.go: DATA on a stream that is gone is a stream-level error.
      this.sendControl(encodeRst(id, ResetCode.STREAM_CLOSED));
      return;
    }
    stream.receiveData(payload, fin);
  }

  private onGoAway(lastStreamId: number, errorCode: number, debug: Buffer): void {
    this.remoteGoneAway = true;
    this.remoteGoAwayInfo = { errorCode, debug: debug.toString('utf8') };
    this.emit('goaway', lastStreamId, errorCode, debug);
    // session.go: our streams above the last id the peer handled were never seen and are closed.
    for (const stream of [...this.streams.values()]) {
      if (this.isLocalId(stream.id) && stream.id > lastStreamId) {
        stream.sessionClosed(new Muxado1Error('remote_go_away', `muxado: stream ${stream.id} dropped by the peer's GOAWAY`));
      }
    }
  }

  /** An id the peer could not have seen yet (above the last one of its parity) is a protocol error (session.go getStream). */
  private checkKnownId(id: number): boolean {
    if (id === 0) {
      this.fail('muxado: stream frame for stream id 0');
      return false;
    }
    const last = this.isLocalId(id) ? this.lastLocalId : this.lastRemoteId;
    if (id > last) {
      this.fail(`muxado: frame for stream ${id}, which was never opened`);
      return false;
    }
    return true;
  }

  // ---- heartbeats ----

  private onHeartbeatRequest(payload: Buffer, fin: boolean): void {
    const responder = this.responder as HeartbeatResponder;
    if (payload.length > responder.recvWindow) {
      this.fail(`muxado: ${payload.length} heartbeat bytes with a window of ${responder.recvWindow}`);
      return;
    }
    // The bytes are consumed at once, so the credit goes straight back, batched like any stream's.
    responder.recvWindow -= payload.length;
    if (DEFAULT_WINDOW - responder.recvWindow >= DEFAULT_WINDOW / 2) {
      this.sendControl(encodeWndInc(responder.id, DEFAULT_WINDOW - responder.recvWindow));
      responder.recvWindow = DEFAULT_WINDOW;
    }
    const bytes = responder.partial.length === 0 ? payload : Buffer.concat([responder.partial, payload]);
    const whole = bytes.length - (bytes.length % HEARTBEAT_ID_SIZE);
    // Echo every complete id, as much as the peer's window allows; what does not fit is dropped (a peer that stops
    // reading its heartbeat stream times itself out).
    const echo = Math.min(whole, responder.sendWindow - (responder.sendWindow % HEARTBEAT_ID_SIZE), MAX_FRAME_BODY - (MAX_FRAME_BODY % HEARTBEAT_ID_SIZE));
    if (echo > 0) {
      responder.sendWindow -= echo;
      this.sendControl(encodeData(responder.id, bytes.subarray(0, echo)));
      this.stats.heartbeatsEchoed += echo / HEARTBEAT_ID_SIZE;
    }
    responder.partial = Buffer.from(bytes.subarray(whole));
    if (fin) {
      this.sendControl(encodeDataHeader(responder.id, 0, true));
      this.responder = undefined;
    }
  }

  private startHeartbeat(): void {
    const id = this.nextLocalId();
    if (id === undefined) return;
    this.sendControl(encodeSyn(id, { priority: HEARTBEAT_PRIORITY, streamType: HEARTBEAT_STREAM_TYPE }));
    const { heartbeatIntervalMs } = this.options;
    const requester: HeartbeatRequester = {
      id,
      nextId: 0,
      inFlight: undefined,
      partial: EMPTY,
      recvWindow: DEFAULT_WINDOW,
      sendWindow: DEFAULT_WINDOW,
      timer: setInterval(() => this.sendHeartbeat(), heartbeatIntervalMs).unref(),
      watchdog: undefined,
    };
    this.requester = requester;
    this.armWatchdog();
  }

  /** heartbeat.go check(): a timer of interval + tolerance, restarted by every echo; when it fires the session closes. */
  private armWatchdog(): void {
    const requester = this.requester;
    if (requester === undefined) return;
    if (requester.watchdog) clearTimeout(requester.watchdog);
    const { heartbeatIntervalMs, heartbeatToleranceMs } = this.options;
    requester.watchdog = setTimeout(() => {
      this.fail(`muxado: no heartbeat echo within ${heartbeatIntervalMs + heartbeatToleranceMs} ms`, undefined, 'heartbeat_timeout');
    }, heartbeatIntervalMs + heartbeatToleranceMs).unref();
  }

  private sendHeartbeat(): void {
    const requester = this.requester;
    if (requester === undefined || this.isClosed || requester.inFlight || requester.sendWindow < HEARTBEAT_ID_SIZE) return;
    const id = requester.nextId;
    requester.nextId = (requester.nextId + 1) >>> 0;
    const body = Buffer.allocUnsafe(HEARTBEAT_ID_SIZE);
    body.writeUInt32BE(id, 0);
    requester.inFlight = { id, sentAt: performance.now() };
    requester.sendWindow -= HEARTBEAT_ID_SIZE;
    this.sendControl(encodeData(requester.id, body));
  }

  private onHeartbeatEcho(payload: Buffer): void {
    const requester = this.requester as HeartbeatRequester;
    if (payload.length > requester.recvWindow) {
      this.fail(`muxado: ${payload.length} heartbeat echo bytes with a window of ${requester.recvWindow}`);
      return;
    }
    requester.recvWindow -= payload.length;
    if (DEFAULT_WINDOW - requester.recvWindow >= DEFAULT_WINDOW / 2) {
      this.sendControl(encodeWndInc(requester.id, DEFAULT_WINDOW - requester.recvWindow));
      requester.recvWindow = DEFAULT_WINDOW;
    }
    let bytes = requester.partial.length === 0 ? payload : Buffer.concat([requester.partial, payload]);
    while (bytes.length >= HEARTBEAT_ID_SIZE) {
      const echoed = bytes.readUInt32BE(0);
      bytes = bytes.subarray(HEARTBEAT_ID_SIZE);
      const inFlight = requester.inFlight;
      // heartbeat.go request(): an echo that is not the id just sent ends the session.
      if (inFlight === undefined || inFlight.id !== echoed) {
        this.fail(`muxado: heartbeat echo ${echoed} does not match ${inFlight?.id ?? 'nothing sent'}`);
        return;
      }
      requester.inFlight = undefined;
      const rttMs = performance.now() - inFlight.sentAt;
      this.stats.heartbeatsAnswered += 1;
      this.stats.lastHeartbeatRttMs = rttMs;
      this.armWatchdog();
      this.emit('heartbeat', rttMs);
    }
    requester.partial = Buffer.from(bytes);
  }

  private stopHeartbeat(): void {
    const requester = this.requester;
    if (requester === undefined) return;
    if (requester.timer) clearInterval(requester.timer);
    if (requester.watchdog) clearTimeout(requester.watchdog);
    this.requester = undefined;
  }

  // ---- writing ----

  private write(frame: Buffer): void {
    this.stats.framesOut += 1;
    this.transport.write(frame);
  }

  private checkBacklog(): void {
    if (this.transport.writableLength > this.options.maxWriteBacklogBytes) {
      this.fail(`muxado: ${this.transport.writableLength} bytes queued for a peer that is not reading`, undefined, 'write_backlog');
    }
  }

  /** Serves sendable streams round-robin, one DATA frame per turn, while the transport takes more. */
  private flush(): void {
    if (this.flushing || this.isClosed) return;
    this.flushing = true;
    this.transport.cork();
    try {
      while (this.sendable.length > 0 && !this.transport.writableNeedDrain && !this.isClosed) {
        const stream = this.sendable.shift() as Muxado1Stream;
        this.queued.delete(stream);
        const frame = stream.takeDataFrame(MAX_FRAME_BODY);
        if (frame === undefined) continue;
        this.stats.framesOut += 1;
        this.transport.write(frame.header);
        this.transport.write(frame.payload);
        if (stream.canSend) {
          this.queued.add(stream);
          this.sendable.push(stream);
        }
        frame.done?.();
      }
    } finally {
      this.transport.uncork();
      this.flushing = false;
    }
    // A write callback above may have queued more while we were flushing and the transport still takes it.
    if (this.sendable.length > 0 && !this.transport.writableNeedDrain && !this.isClosed) queueMicrotask(() => this.flush());
  }

  // ---- lifecycle ----

  private createStream(id: number, priority: number, streamType: number): Muxado1Stream {
    const stream = new Muxado1Stream(this, id, {
      receiveWindowBytes: this.options.receiveWindowBytes,
      priority,
      streamType,
      readableHighWaterMark: this.options.streamHighWaterMark,
      writableHighWaterMark: this.options.streamHighWaterMark,
    });
    this.streams.set(id, stream);
    return stream;
  }

  /** A window above muxado's fixed 64 KiB is granted with one WNDINC as the stream opens. */
  private grantExtraWindow(id: number): void {
    const extra = this.options.receiveWindowBytes - DEFAULT_WINDOW;
    if (extra > 0) this.sendControl(encodeWndInc(id, Math.min(extra, WINDOW_INCREMENT_MASK)));
  }

  private nextLocalId(): number | undefined {
    const id = this.lastLocalId + 2;
    if (id > MAX_STREAM_ID) return undefined;
    this.lastLocalId = id;
    return id;
  }

  private isLocalId(id: number): boolean {
    return this.options.role === 'client' ? (id & 1) === 1 : (id & 1) === 0;
  }

  /** A protocol error: GOAWAY PROTOCOL_ERROR to the peer (as muxado's die()), then close. */
  private fail(message: string, frameError?: FrameError, reason: Muxado1ErrorReason = 'protocol'): void {
    if (this.isClosed) return;
    const error = frameError ?? new Muxado1Error(reason, message);
    if (!this.localGoneAway) {
      this.localGoneAway = true;
      const code = reason === 'protocol' ? ResetCode.PROTOCOL_ERROR : ResetCode.NO_ERROR;
      this.write(encodeGoAway(this.lastRemoteId, code));
    }
    this.finish(frameError ? 'protocol' : reason, error);
  }

  private finish(reason: Muxado1CloseInfo['reason'], error: Muxado1CloseInfo['error']): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.stopHeartbeat();
    this.responder = undefined;
    this.sendable.length = 0;
    this.queued.clear();
    const streamError = new Muxado1Error('session_closed', `muxado: session closed (${error?.message ?? reason})`, { cause: error });
    for (const stream of [...this.streams.values()]) stream.sessionClosed(streamError);
    this.streams.clear();
    if (!this.transport.destroyed) {
      this.transport.end();
      this.lingerTimer = setTimeout(() => this.transport.destroy(), this.options.closeLingerMs).unref();
      this.transport.once('close', () => clearTimeout(this.lingerTimer));
    }
    this.emit('close', { reason, error, remoteGoAway: this.remoteGoAwayInfo });
  }
}

/*
 * ---- tcp-relay's handshake ----
 *
 * The one exchange ethransom/tcp-relay adds on top of muxado (relay.go handleSession, echoserver.go main):
 *
 *   1. The service dials the relay and opens the first stream (the heartbeat extension stream it opens at the same time
 *      does not count: muxado routes extension streams away from Accept()).
 *   2. The relay writes its public address as bare ASCII, `localhost:<port>`, no newline, and closes the stream (DATA,
 *      then an empty DATA with FIN). The service reads to EOF and closes its side.
 *   3. From then on the relay opens one stream per visitor and the service accepts them. tcp-relay's relay never
 *      accepts a second stream from the service; we refuse any with RST REFUSED_STREAM instead of leaving them hanging.
 */

/** How long a service has to open its first stream after connecting. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

/** The text tcp-relay's relay sends on the first stream. */
export function tcpRelayAddress(port: number): string {
  return `localhost:${port}`;
}

/**
 * Waits for the service's first stream, writes `address` on it and half-closes it. Call it in the same tick as the
 * session is constructed: a stream that arrives while the session has no 'stream' listener is refused. `address` may be
 * a promise, or a function called once the first stream has arrived (tcp-relay pulls its port from the pool only after
 * accepting that stream, so bytes that never become a stream hold no port).
 * Resolves with undefined once the address is on the transport, or with the Muxado1Error that prevented it (timeout,
 * session closed, address rejected); never rejects. Afterwards the session has no 'stream' listener left, so further
 * streams from the service are refused.
 */
export function serveTcpRelayHandshake(
  session: Muxado1Session,
  address: string | Promise<string> | (() => Promise<string>),
  timeoutMs: number = DEFAULT_HANDSHAKE_TIMEOUT_MS,
): Promise<Muxado1Error | undefined> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (result: Muxado1Error | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.off('stream', onStream);
      session.off('close', onClose);
      resolve(result);
    };
    const timer = setTimeout(() => {
      settle(new Muxado1Error('handshake_timeout', `muxado: no handshake with the service within ${timeoutMs} ms`));
    }, timeoutMs);
    timer.unref();
    const onClose = (): void => settle(new Muxado1Error('session_closed', 'muxado: session closed before the handshake'));
    const onStream = (stream: Muxado1Stream): void => {
      session.off('stream', onStream);
      // Anything the service sends on it is discarded; its FIN then lets the stream finish both ways.
      stream.on('error', (error: Error) =>
        settle(error instanceof Muxado1Error ? error : new Muxado1Error('session_closed', error.message, { cause: error })),
      );
      stream.resume();
      (typeof address === 'function' ? address() : Promise.resolve(address)).then(
        (text) => {
          if (settled) return;
          stream.end(Buffer.from(text, 'latin1'), () => settle(undefined));
        },
        (error: unknown) => {
          stream.destroy();
          settle(new Muxado1Error('handshake_failed', 'muxado: no address for the service', { cause: error }));
        },
      );
    };
    session.on('stream', onStream);
    session.on('close', onClose);
  });
}
