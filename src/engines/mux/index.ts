/**
 * mux mode (DESIGN §5): many clients on LISTEN_PORT, one upstream at TARGET, requests framed by PROTOCOL and queued
 * fairly, each reply back to its own client. Replaces tcp-multiplexer and Modbus proxies.
 *
 *   index.ts        the frame-based engine: clients, their framing and throttling
 *   engine-base.ts  lifecycle shared with http/: listener, upstream, idle close, /status, drain
 *   dispatcher.ts   queueing, sending, matching replies, deadlines, outcomes
 *   fair-queue.ts   per-client FIFOs served round-robin
 *   upstream.ts     the one upstream connection: dial, delay, backoff, reset
 *   framers.ts      per-protocol framing, correlation and failure replies
 *   rtu-framer.ts   PROTOCOL=modbus with an rtu: target: Modbus TCP clients, RTU over TCP upstream
 *   modbus/         PROTOCOL=modbus rules, pure: READ_ONLY/WRITE_ALLOW/UNIT_MAP (policy.ts), COALESCE (coalescing.ts),
 *                   CACHE_TTL_MS (cache.ts)
 *   http/           PROTOCOL=http: its own streaming engine on the same base
 */
import type { Socket } from 'node:net';
import { effectiveMaxInflight } from '../../config/modes/mux.js';
import type { FrameDecoder } from '../../protocols/framing.js';
import { remoteAddressOf } from '../../net/listen.js';
import { Dispatcher, type MuxClientPort, type MuxRequest } from './dispatcher.js';
import { MuxEngineBase, type MuxEngineContext } from './engine-base.js';
import { framerFor, type MuxFrame, type MuxFramer } from './framers.js';

/** Answers a client may have waiting behind an unanswered one (0x06 replies to a flood) before we stop reading it. */
const OUTBOX_SLACK = 64;

class MuxClient implements MuxClientPort {
  readonly queue: MuxRequest[] = [];
  inRing = false;
  readonly outbox: MuxRequest[] = [];
  unanswered = 0;
  pendingWrites = 0;
  lastWriteAnsweredTick = 0;
  gone = false;
  bytesIn = 0;
  bytesOut = 0;
  readonly address: string;
  readonly connectedAt = new Date().toISOString();
  readonly decoder: FrameDecoder<MuxFrame>;
  private readPaused = false;

  constructor(
    readonly socket: Socket,
    framer: MuxFramer,
    private readonly engine: MuxEngine,
    private readonly maxOutbox: number,
    private readonly maxWriteBuffer: number,
  ) {
    this.address = `${remoteAddressOf(socket)}:${socket.remotePort ?? 0}`;
    this.decoder = framer.clientDecoder();
  }

  send(bytes: Buffer): void {
    if (this.gone) return;
    this.bytesOut += bytes.length;
    this.engine.countOut(bytes.length);
    this.socket.write(bytes);
    this.throttle();
  }

  close(reason: string): void {
    if (this.gone) return;
    this.engine.clientLeft(this, reason);
    this.socket.end(() => this.socket.destroy());
  }

  released(): void {
    this.throttle();
  }

  /** Stops reading while answers pile up (a client that sends without reading), so memory stays bounded. */
  throttle(): void {
    if (this.gone || this.engine.draining) return;
    const full = this.outbox.length >= this.maxOutbox || this.socket.writableLength > this.maxWriteBuffer;
    if (full && !this.readPaused) {
      this.readPaused = true;
      this.socket.pause();
      this.socket.once('drain', () => this.throttle());
    } else if (!full && this.readPaused) {
      this.readPaused = false;
      this.socket.resume();
    }
  }
}

export class MuxEngine extends MuxEngineBase<MuxClient> {
  private readonly dispatcher: Dispatcher;
  private readonly framer: MuxFramer;

  constructor(context: MuxEngineContext) {
    super(context, { mode: 'mux' }, {
      onData: (chunk) => this.dispatcher.onUpstreamData(chunk),
      onUp: () => this.dispatcher.onUpstreamUp(),
      onDown: () => this.dispatcher.onUpstreamDown(),
    });
    const { config, metrics } = context;
    const mux = config.mux;
    this.framer = framerFor(mux);
    const maxInflight = effectiveMaxInflight(mux);
    if (maxInflight !== mux.maxInflight) {
      this.log.warn(
        { maxInflight: mux.maxInflight, protocol: mux.protocol },
        'MAX_INFLIGHT applies to PROTOCOL=modbus with a host:port or unix: target only; using 1',
      );
    }
    this.dispatcher = new Dispatcher({
      config: mux,
      framer: this.framer,
      maxInflight,
      upstream: () => this.upstream,
      log: this.log,
      metrics,
    });
  }

  protected statusFields() {
    return {
      protocol: this.framer.protocol,
      queued: this.dispatcher.queued,
      inflight: this.dispatcher.outstanding,
      cache: this.dispatcher.cacheStatus(),
    };
  }

  protected get queued(): number {
    return this.dispatcher.queued;
  }

  protected get inflight(): number {
    return this.dispatcher.outstanding;
  }

  protected stopTakingRequests(): void {
    for (const client of this.clients) client.socket.pause();
  }

  protected stopCore(): void {
    this.dispatcher.failQueued(0x0a, 'client_gone');
    this.dispatcher.stop();
  }

  countOut(bytes: number): void {
    this.context.metrics.hot.bytesOut += bytes;
  }

  /** A client leaves (it closed, its framing broke, or a failure its protocol cannot express closed it). */
  clientLeft(client: MuxClient, reason: string): void {
    if (client.gone) return;
    client.gone = true;
    this.dispatcher.onClientGone(client);
    this.clientRemoved(client, reason);
  }

  protected accept(socket: Socket): void {
    const { config, metrics } = this.context;
    const client = new MuxClient(
      socket,
      this.framer,
      this,
      config.mux.clientQueue + OUTBOX_SLACK,
      config.clientBufferBytes,
    );
    this.clientJoined(client);
    socket.on('data', (chunk: Buffer) => {
      if (client.gone) return;
      client.bytesIn += chunk.length;
      metrics.hot.bytesIn += chunk.length;
      const { frames, error } = client.decoder.push(chunk);
      if (error) {
        // A broken frame boundary cannot be resynchronised: this client is closed, nobody else notices (DESIGN §5).
        metrics.connectionsRejected.inc({ reason: 'bad_frame' });
        const reply = this.framer.frameErrorReply(error);
        this.clientLeft(client, `bad frame: ${error.message} (${error.code})`);
        if (reply) socket.end(reply, () => socket.destroy());
        else socket.destroy();
        return;
      }
      if (frames.length > 0) this.dispatcher.submitAll(client, frames);
      client.throttle();
    });
    // A client that shuts down its sending side has left (sockets are not half-open): its queued requests are never sent.
    socket.once('close', () => this.clientLeft(client, 'closed'));
  }
}
