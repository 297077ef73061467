/**
 * A yamux session over any Node Duplex (hashicorp yamux session.go; wire format in src/protocols/yamux.ts).
 *
 * - The transport is read without pause: flow control is the per-stream window, and a peer that sends beyond a window
 *   gets GoAway(protocol error) and the session closes.
 * - One writer owns the transport: control frames first, then one data frame per sendable stream in turn (round-robin, at
 *   most `maxFrameBytes` each), and only while the transport holds less than `writeQueueBytes`; so no stream starves
 *   another and queued bytes are bounded. A transport that does not drain within `writeTimeoutMs` means a dead peer.
 * - New streams are acknowledged at once; beyond `acceptBacklog` (streams nobody took yet) or `maxStreams`, refused
 *   with RST. After a GoAway either way, no new streams.
 * - Keepalive pings every `keepAliveIntervalMs`; an unanswered ping closes the session as dead after `pingTimeoutMs`.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { ErrorCodes, SwitchboardError } from '../../../errors.js';
import {
  Flag,
  FrameType,
  GoAwayCode,
  INITIAL_STREAM_WINDOW,
  MAX_DATA_FRAME_BYTES,
  MAX_STREAM_ID,
  SESSION_STREAM_ID,
  YamuxDecoder,
  encodeGoAway,
  encodePing,
  encodeWindowUpdate,
  type FrameHeader,
  type YamuxFrame,
} from '../../../protocols/yamux.js';
import { YamuxError, YamuxStream, type YamuxStreamHost } from './stream.js';

export { YamuxError, YamuxStream, type YamuxErrorReason } from './stream.js';

export type YamuxRole = 'client' | 'server';

/** Every tunable of a session, like yamux's Config. */
export interface YamuxSessionOptions {
  /** Receive window per stream we grant the peer (STREAM_WINDOW_BYTES). At least INITIAL_STREAM_WINDOW. */
  streamWindowBytes: number;
  /** Largest data frame we send; smaller frames interleave streams more finely. */
  maxFrameBytes: number;
  /** Accepted streams waiting for `accept()` (no 'stream' listener); more are refused with RST. */
  acceptBacklog: number;
  /** Open streams in both directions; more are refused with RST (inbound) or throw (outbound). */
  maxStreams: number;
  /** Interval of keepalive pings; 0 disables them. */
  keepAliveIntervalMs: number;
  /** A ping unanswered this long fails; for keepalive pings the session closes as dead. */
  pingTimeoutMs: number;
  /** The writer stops filling the transport at this many queued bytes (or its writableHighWaterMark if larger). */
  writeQueueBytes: number;
  /** A transport that does not drain for this long is dead; also the grace given to `end()` on close. */
  writeTimeoutMs: number;
  /** Control frames (window updates, FIN, RST, ping replies) queued behind a full transport before it is stalled. */
  maxQueuedControlFrames: number;
}

/** Defaults, like yamux's DefaultConfig(). */
export function defaultYamuxOptions(): YamuxSessionOptions {
  return {
    streamWindowBytes: INITIAL_STREAM_WINDOW,
    maxFrameBytes: 32 * 1024,
    acceptBacklog: 256,
    maxStreams: 1024,
    keepAliveIntervalMs: 30_000,
    pingTimeoutMs: 10_000,
    writeQueueBytes: 256 * 1024,
    writeTimeoutMs: 10_000,
    maxQueuedControlFrames: 4096,
  };
}

/** Throws a SWB_ERR_CONFIG error for options no session can run with (a programming or configuration mistake). */
export function validateYamuxOptions(options: YamuxSessionOptions): void {
  const fail = (message: string): never => {
    throw new SwitchboardError(ErrorCodes.CONFIG, `yamux: ${message}`);
  };
  const positiveInteger = (name: keyof YamuxSessionOptions, allowZero = false): void => {
    const value = options[name];
    if (!Number.isInteger(value) || value < (allowZero ? 0 : 1)) {
      fail(`${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${value}`);
    }
  };
  positiveInteger('streamWindowBytes');
  positiveInteger('maxFrameBytes');
  positiveInteger('acceptBacklog');
  positiveInteger('maxStreams');
  positiveInteger('keepAliveIntervalMs', true);
  positiveInteger('pingTimeoutMs');
  positiveInteger('writeQueueBytes');
  positiveInteger('writeTimeoutMs');
  positiveInteger('maxQueuedControlFrames');
  if (options.streamWindowBytes < INITIAL_STREAM_WINDOW || options.streamWindowBytes > MAX_DATA_FRAME_BYTES) {
    fail(`streamWindowBytes must be between ${INITIAL_STREAM_WINDOW} and ${MAX_DATA_FRAME_BYTES}`);
  }
}

export type YamuxCloseReason =
  /** `close()`, `drain()` or `destroy()` without an error. */
  | 'local'
  /** The peer ended or closed the transport. */
  | 'transport_end'
  /** The transport failed (or `destroy(error)` was called). */
  | 'transport_error'
  /** The peer broke the protocol; we sent GoAway(protocol error). */
  | 'protocol_error'
  /** The peer sent GoAway with an error code. */
  | 'remote_error'
  /** A keepalive ping got no answer in time. */
  | 'keepalive_timeout'
  /** The transport did not drain in time, or too many control frames queued behind it. */
  | 'write_stalled';

/** Plain counters, read by the engine's metrics at scrape time. */
export interface YamuxSessionStats {
  /** Transport bytes, headers included. */
  bytesIn: number;
  bytesOut: number;
  framesIn: number;
  framesOut: number;
  streamsOpened: number;
  streamsAccepted: number;
  streamsRefused: number;
  /** Our pings, and the answers to them. */
  pingsSent: number;
  pingsAnswered: number;
  /** Pings from the peer (each answered). */
  pingsReceived: number;
  lastPingRttMs: number | undefined;
}

export interface YamuxSessionEvents {
  /** A stream the peer opened (already acknowledged). Without a listener streams wait for `accept()`. */
  stream: [stream: YamuxStream];
  /** The peer sent GoAway(normal): no new streams may be opened; existing ones continue. */
  goaway: [code: number];
  /** Emitted once; `error` is set unless the reason is 'local' or a clean 'transport_end'. */
  close: [reason: YamuxCloseReason, error: Error | undefined];
}

interface PendingPing {
  startedAt: number;
  timer: NodeJS.Timeout;
  settle: (error: Error | undefined, rttMs: number) => void;
}

export class YamuxSession extends EventEmitter<YamuxSessionEvents> implements YamuxStreamHost {
  readonly role: YamuxRole;
  readonly options: Readonly<YamuxSessionOptions>;
  readonly stats: YamuxSessionStats = {
    bytesIn: 0,
    bytesOut: 0,
    framesIn: 0,
    framesOut: 0,
    streamsOpened: 0,
    streamsAccepted: 0,
    streamsRefused: 0,
    pingsSent: 0,
    pingsAnswered: 0,
    pingsReceived: 0,
    lastPingRttMs: undefined,
  };

  private readonly transport: Duplex;
  private readonly decoder: YamuxDecoder;
  private readonly streams = new Map<number, YamuxStream>();
  /** Streams with data and window, in service order: the writer takes the first and re-appends it (round-robin). */
  private readonly sendable = new Set<YamuxStream>();
  private readonly controlQueue: Buffer[] = [];
  private readonly backlog: YamuxStream[] = [];
  private readonly acceptWaiters: Array<{ resolve: (s: YamuxStream) => void; reject: (e: Error) => void }> = [];
  private readonly pings = new Map<number, PendingPing>();
  private nextStreamId: number;
  private nextPingId = 0;
  private isClosed = false;
  private reason: YamuxCloseReason | undefined;
  private goAwaySent = false;
  private peerGoAway = false;
  private flushScheduled = false;
  private waitingDrain = false;
  private drainTimer: NodeJS.Timeout | undefined;
  private keepAliveTimer: NodeJS.Timeout | undefined;
  private keepAlivePending = false;
  private readonly drainWaiters: Array<() => void> = [];

  constructor(transport: Duplex, role: YamuxRole, options: Partial<YamuxSessionOptions> = {}) {
    super();
    const merged = defaultYamuxOptions();
    for (const [name, value] of Object.entries(options) as Array<[keyof YamuxSessionOptions, number | undefined]>) {
      if (value !== undefined) merged[name] = value;
    }
    validateYamuxOptions(merged);
    this.options = Object.freeze(merged);
    this.role = role;
    this.transport = transport;
    // spec "StreamID Field": the client uses odd ids, the server even ones; 0 is the session.
    this.nextStreamId = role === 'client' ? 1 : 2;
    // A frame longer than the whole window we grant can never be legal, so the decoder may refuse it outright.
    this.decoder = new YamuxDecoder({ maxDataBytes: merged.streamWindowBytes });

    transport.on('data', this.onTransportData);
    transport.on('end', this.onTransportEnd);
    transport.on('close', this.onTransportClose);
    transport.on('error', this.onTransportError);
    transport.on('drain', this.onTransportDrain);

    if (merged.keepAliveIntervalMs > 0) {
      this.keepAliveTimer = setInterval(this.keepAlive, merged.keepAliveIntervalMs);
      this.keepAliveTimer.unref();
    }
    // A transport that died before we were handed it will never say so again.
    if (transport.destroyed) process.nextTick(this.onTransportClose);
  }

  get closed(): boolean {
    return this.isClosed;
  }

  get closeReason(): YamuxCloseReason | undefined {
    return this.reason;
  }

  /** Streams still exchanging frames (either direction open). */
  get numStreams(): number {
    return this.streams.size;
  }

  /** True once the peer sent GoAway: `openStream()` throws. */
  get remoteGoAway(): boolean {
    return this.peerGoAway;
  }

  /** True once we sent GoAway: new streams from the peer are refused. */
  get localGoAway(): boolean {
    return this.goAwaySent;
  }

  /** Opens a stream (SYN goes out at once; data may follow before the ACK, spec "Opening a stream"). */
  openStream(): YamuxStream {
    if (this.isClosed) throw new YamuxError('session_closed', 'yamux: session closed');
    if (this.peerGoAway) throw new YamuxError('remote_go_away', 'yamux: peer sent GoAway, no new streams');
    if (this.streams.size >= this.options.maxStreams) {
      throw new YamuxError('too_many_streams', `yamux: ${this.options.maxStreams} streams already open`);
    }
    if (this.nextStreamId > MAX_STREAM_ID) throw new YamuxError('streams_exhausted', 'yamux: stream ids exhausted');
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const stream = this.createStream(id, false);
    this.stats.streamsOpened++;
    // spec "Flow Control": a larger window is announced with the SYN.
    this.sendControl(encodeWindowUpdate(id, Flag.SYN, this.options.streamWindowBytes - INITIAL_STREAM_WINDOW));
    return stream;
  }

  /** The next stream from the backlog (streams arrive here only while there is no 'stream' listener). */
  accept(): Promise<YamuxStream> {
    for (;;) {
      const stream = this.backlog.shift();
      if (!stream) break;
      if (!stream.destroyed) return Promise.resolve(stream);
    }
    if (this.isClosed) return Promise.reject(new YamuxError('session_closed', 'yamux: session closed'));
    return new Promise((resolve, reject) => this.acceptWaiters.push({ resolve, reject }));
  }

  /** Sends a ping and resolves with the round-trip time in milliseconds. */
  ping(timeoutMs: number = this.options.pingTimeoutMs): Promise<number> {
    return new Promise((resolve, reject) => {
      this.sendPing(timeoutMs, false, (error, rttMs) => (error ? reject(error) : resolve(rttMs)));
    });
  }

  /** Tells the peer we accept no new streams (existing ones continue). Idempotent. */
  goAway(code: GoAwayCode = GoAwayCode.Normal): void {
    if (this.isClosed || this.goAwaySent) return;
    this.goAwaySent = true;
    this.sendControl(encodeGoAway(code));
  }

  /** GoAway, then close once every stream has finished or after `timeoutMs`, whichever is first. */
  drain(timeoutMs: number): Promise<void> {
    if (this.isClosed) return Promise.resolve();
    this.goAway();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.close(), timeoutMs);
      timer.unref();
      this.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.drainWaiters.push(() => this.close());
      this.checkDrained();
    });
  }

  /** Sends GoAway (unless sent), flushes control frames, ends the transport and closes every stream. */
  close(): void {
    if (this.isClosed) return;
    if (!this.goAwaySent) {
      this.goAwaySent = true;
      this.controlQueue.push(encodeGoAway(GoAwayCode.Normal));
    }
    this.terminate('local', undefined, true);
  }

  /** Closes at once: no GoAway, transport destroyed. */
  destroy(error?: Error): void {
    this.terminate(error ? 'transport_error' : 'local', error, false);
  }

  // ---- YamuxStreamHost ----

  sendControl(frame: Buffer): void {
    if (this.isClosed) return;
    if (this.controlQueue.length >= this.options.maxQueuedControlFrames) {
      const error = new YamuxError('protocol', 'yamux: control frames pile up behind the transport');
      this.terminate('write_stalled', error, false);
      return;
    }
    this.controlQueue.push(frame);
    this.scheduleFlush();
  }

  markSendable(stream: YamuxStream): void {
    if (this.isClosed) return;
    this.sendable.add(stream);
    this.scheduleFlush();
  }

  forgetStream(stream: YamuxStream): void {
    this.sendable.delete(stream);
    if (this.streams.get(stream.id) === stream) {
      this.streams.delete(stream.id);
      this.checkDrained();
    }
  }

  // ---- reading ----

  private readonly onTransportData = (chunk: Buffer): void => {
    if (this.isClosed) return;
    this.stats.bytesIn += chunk.length;
    const { frames, error } = this.decoder.push(chunk);
    for (const frame of frames) {
      if (this.isClosed) return;
      this.stats.framesIn++;
      this.handleFrame(frame);
    }
    if (error && !this.isClosed) this.protocolError(error.message, error);
  };

  /** One handler per frame type (spec "Type Field"). */
  private handleFrame(frame: YamuxFrame): void {
    const { header } = frame;
    switch (header.type) {
      case FrameType.Data:
      case FrameType.WindowUpdate:
        this.handleStreamFrame(header, frame.payload);
        return;
      case FrameType.Ping:
        this.handlePing(header);
        return;
      case FrameType.GoAway:
        this.handleGoAway(header);
        return;
    }
  }

  private handleStreamFrame(header: FrameHeader, payload: Buffer): void {
    const id = header.streamId;
    let stream = this.streams.get(id);
    if (header.flags & Flag.SYN) {
      // spec: client ids are odd, server ids even, 0 is the session; a SYN for a live id is a duplicate.
      const peerParity = this.role === 'client' ? 0 : 1;
      if (id === SESSION_STREAM_ID || id % 2 !== peerParity) {
        this.protocolError(`yamux: SYN with stream id ${id} not the peer's to open`);
        return;
      }
      if (stream) {
        this.protocolError(`yamux: duplicate SYN for stream ${id}`);
        return;
      }
      stream = this.incomingStream(id);
      if (!stream) return;
    }
    // Frames for a stream we reset or finished may still be in flight (yamux discards them too).
    if (!stream) return;
    if (header.flags & Flag.RST) {
      stream.receiveReset();
      return;
    }
    if (header.flags & Flag.ACK) stream.receiveAck();
    if (header.type === FrameType.Data) {
      if (payload.length > 0) {
        if (stream.remoteFinished) {
          this.protocolError(`yamux: data on stream ${id} after its FIN`);
          return;
        }
        if (!stream.receiveData(payload)) {
          this.protocolError(`yamux: stream ${id} receive window exceeded by a ${payload.length}-byte frame`);
          return;
        }
      }
    } else if (header.length > 0 && !stream.receiveWindowUpdate(header.length)) {
      this.protocolError(`yamux: window update overflows stream ${id}'s send window`);
      return;
    }
    if (header.flags & Flag.FIN) stream.receiveFin();
  }

  /** Registers and acknowledges a stream the peer opened, or refuses it with RST. */
  private incomingStream(id: number): YamuxStream | undefined {
    const waiting = this.acceptWaiters.length > 0 || this.listenerCount('stream') > 0;
    const backlogFull = !waiting && this.backlog.length >= this.options.acceptBacklog;
    const refuse = this.goAwaySent || this.streams.size >= this.options.maxStreams || backlogFull;
    if (refuse) {
      this.stats.streamsRefused++;
      this.sendControl(encodeWindowUpdate(id, Flag.RST, 0));
      return undefined;
    }
    const stream = this.createStream(id, true);
    this.stats.streamsAccepted++;
    this.sendControl(encodeWindowUpdate(id, Flag.ACK, this.options.streamWindowBytes - INITIAL_STREAM_WINDOW));
    const waiter = this.acceptWaiters.shift();
    if (waiter) waiter.resolve(stream);
    else if (this.listenerCount('stream') > 0) this.emit('stream', stream);
    else this.backlog.push(stream);
    return stream;
  }

  private createStream(id: number, acknowledged: boolean): YamuxStream {
    const stream = new YamuxStream(this, id, { streamWindowBytes: this.options.streamWindowBytes }, acknowledged);
    this.streams.set(id, stream);
    return stream;
  }

  private handlePing(header: FrameHeader): void {
    if (header.flags & Flag.SYN) {
      // spec: the opaque value is echoed back with ACK.
      this.stats.pingsReceived++;
      this.sendControl(encodePing(Flag.ACK, header.length));
      return;
    }
    if (header.flags & Flag.ACK) {
      const pending = this.pings.get(header.length);
      if (!pending) return;
      this.pings.delete(header.length);
      clearTimeout(pending.timer);
      const rttMs = performance.now() - pending.startedAt;
      this.stats.pingsAnswered++;
      this.stats.lastPingRttMs = rttMs;
      pending.settle(undefined, rttMs);
    }
  }

  private handleGoAway(header: FrameHeader): void {
    if (header.length === GoAwayCode.Normal) {
      this.peerGoAway = true;
      this.emit('goaway', header.length);
      return;
    }
    const what =
      header.length === GoAwayCode.ProtocolError
        ? 'protocol error'
        : header.length === GoAwayCode.InternalError
          ? 'internal error'
          : `code ${header.length}`;
    this.terminate('remote_error', new YamuxError('protocol', `yamux: peer sent GoAway (${what})`), false);
  }

  private readonly onTransportEnd = (): void => {
    this.terminate('transport_end', undefined, false);
  };

  private readonly onTransportClose = (): void => {
    this.terminate('transport_end', undefined, false);
  };

  private readonly onTransportError = (error: Error): void => {
    this.terminate('transport_error', error, false);
  };

  // ---- writing ----

  private scheduleFlush(): void {
    if (this.flushScheduled || this.waitingDrain || this.isClosed) return;
    this.flushScheduled = true;
    process.nextTick(this.flush);
  }

  /** The one writer: control frames first, then data frames round-robin, while the transport has room. */
  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.isClosed || this.waitingDrain) return;
    const transport = this.transport;
    const bound = Math.max(this.options.writeQueueBytes, transport.writableHighWaterMark);
    transport.cork();
    try {
      while (transport.writableLength < bound) {
        const control = this.controlQueue.shift();
        if (control) {
          this.writeFrame(control, undefined);
          continue;
        }
        const stream = this.sendable.values().next().value as YamuxStream | undefined;
        if (!stream) break;
        this.sendable.delete(stream);
        const frame = stream.takeDataFrame(this.options.maxFrameBytes);
        if (!frame) continue;
        this.writeFrame(frame.header, frame.payload);
        if (stream.canSend) this.sendable.add(stream);
        frame.done?.();
        if (this.isClosed) return;
      }
    } finally {
      transport.uncork();
    }
    if (transport.writableNeedDrain && !this.isClosed) {
      this.waitingDrain = true;
      this.drainTimer = setTimeout(this.onWriteStalled, this.options.writeTimeoutMs);
      this.drainTimer.unref();
    }
  };

  private writeFrame(header: Buffer, payload: Buffer | undefined): void {
    this.transport.write(header);
    this.stats.bytesOut += header.length;
    if (payload && payload.length > 0) {
      this.transport.write(payload);
      this.stats.bytesOut += payload.length;
    }
    this.stats.framesOut++;
  }

  private readonly onTransportDrain = (): void => {
    if (!this.waitingDrain) return;
    this.waitingDrain = false;
    clearTimeout(this.drainTimer);
    this.drainTimer = undefined;
    if (this.controlQueue.length > 0 || this.sendable.size > 0) this.scheduleFlush();
  };

  private readonly onWriteStalled = (): void => {
    const error = new YamuxError('protocol', `yamux: transport did not drain in ${this.options.writeTimeoutMs} ms`);
    this.terminate('write_stalled', error, false);
  };

  // ---- keepalive and pings ----

  private readonly keepAlive = (): void => {
    if (this.keepAlivePending || this.isClosed) return;
    this.keepAlivePending = true;
    this.sendPing(this.options.pingTimeoutMs, true, (error) => {
      this.keepAlivePending = false;
      if (error && !this.isClosed) this.terminate('keepalive_timeout', error, false);
    });
  };

  private sendPing(timeoutMs: number, unref: boolean, settle: PendingPing['settle']): void {
    if (this.isClosed) {
      settle(new YamuxError('session_closed', 'yamux: session closed'), 0);
      return;
    }
    const id = this.nextPingId;
    this.nextPingId = (this.nextPingId + 1) >>> 0;
    const timer = setTimeout(() => {
      this.pings.delete(id);
      settle(new YamuxError('ping_timeout', `yamux: ping unanswered after ${timeoutMs} ms`), 0);
    }, timeoutMs);
    if (unref) timer.unref();
    this.pings.set(id, { startedAt: performance.now(), timer, settle });
    this.stats.pingsSent++;
    this.sendControl(encodePing(Flag.SYN, id));
  }

  // ---- ending ----

  private protocolError(message: string, cause?: Error): void {
    // Frames already queued (an ACK, a ping reply) go out first; the GoAway says why the end follows.
    this.goAwaySent = true;
    this.controlQueue.push(encodeGoAway(GoAwayCode.ProtocolError));
    this.terminate('protocol_error', new YamuxError('protocol', message, { cause }), true);
  }

  private checkDrained(): void {
    if (this.streams.size > 0 || this.drainWaiters.length === 0) return;
    for (const waiter of this.drainWaiters.splice(0)) waiter();
  }

  /**
   * Ends the session once. Graceful: queued control frames (GoAway last) are written and the transport ended, destroyed if
   * it has not closed within writeTimeoutMs. Otherwise the transport is destroyed at once.
   */
  private terminate(reason: YamuxCloseReason, error: Error | undefined, graceful: boolean): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.reason = reason;
    clearInterval(this.keepAliveTimer);
    clearTimeout(this.drainTimer);
    const transport = this.transport;
    transport.off('data', this.onTransportData);
    transport.off('drain', this.onTransportDrain);

    if (graceful && !transport.destroyed && transport.writable) {
      for (const frame of this.controlQueue.splice(0)) this.writeFrame(frame, undefined);
      transport.end();
      const timer = setTimeout(() => transport.destroy(), this.options.writeTimeoutMs);
      timer.unref();
      transport.once('close', () => clearTimeout(timer));
    } else {
      transport.destroy();
    }
    this.controlQueue.length = 0;
    this.sendable.clear();

    const streamError =
      reason === 'local'
        ? undefined
        : new YamuxError('session_closed', `yamux: session closed (${reason})`, { cause: error });
    for (const stream of [...this.streams.values(), ...this.backlog]) stream.sessionClosed(streamError);
    this.streams.clear();
    this.backlog.length = 0;
    for (const waiter of this.acceptWaiters.splice(0)) {
      waiter.reject(new YamuxError('session_closed', 'yamux: session closed'));
    }
    for (const [id, pending] of this.pings) {
      clearTimeout(pending.timer);
      this.pings.delete(id);
      pending.settle(new YamuxError('session_closed', 'yamux: session closed'), 0);
    }
    this.emit('close', reason, error);
  }
}
