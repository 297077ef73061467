/**
 * mux mode with PROTOCOL=http (DESIGN §5, issue 7): many HTTP/1.1 clients share one upstream that serves one exchange at
 * a time (a device whose web server accepts one connection). The frame-based MuxEngine does not fit streamed bodies, so
 * HTTP has its own path that reuses the mux parts that do: Upstream (dial, delay, backoff, reset, idle close), FairQueue
 * (round-robin between clients), TcpListener and the shared metrics.
 *
 *   engine.ts      lifecycle: listener, clients, idle close, /status, drain
 *   client.ts      one client connection: request framer, answer order, when its socket is read
 *   scheduler.ts   queueing, one exchange at a time, streaming both ways, failures and outcomes
 *   exchange.ts    one request and its response; the progress clock
 *   replies.ts     the 400/501/502/504/505 responses switchboard writes itself
 */
import type { Socket } from 'node:net';
import { MuxEngineBase, type MuxEngineContext } from '../engine-base.js';
import { HttpClient } from './client.js';
import { HttpScheduler } from './scheduler.js';

export class HttpMuxEngine extends MuxEngineBase<HttpClient> {
  private readonly scheduler: HttpScheduler;

  constructor(context: MuxEngineContext) {
    super(context, { mode: 'mux', protocol: 'http' }, {
      onData: (chunk) => this.scheduler.onUpstreamData(chunk),
      onUp: () => this.scheduler.onUpstreamUp(),
      onDown: () => this.scheduler.onUpstreamDown(),
    });
    const { config, metrics } = context;
    const mux = config.mux;
    if (mux.maxInflight !== 1) {
      this.log.warn({ maxInflight: mux.maxInflight }, 'MAX_INFLIGHT applies to PROTOCOL=modbus only; HTTP is one exchange at a time');
    }
    this.scheduler = new HttpScheduler({ config: mux, upstream: () => this.upstream, log: this.log, metrics });
  }

  protected statusFields() {
    return { protocol: 'http', queued: this.scheduler.queued, inflight: this.scheduler.inflight };
  }

  protected get queued(): number {
    return this.scheduler.queued;
  }

  protected get inflight(): number {
    return this.scheduler.inflight;
  }

  protected stopTakingRequests(): void {
    // No new requests (a body already being sent upstream may finish); what is queued or exchanged is answered in time.
    this.scheduler.draining = true;
    for (const client of this.clients) client.updateReading();
  }

  protected stopCore(): void {
    this.scheduler.stop();
  }

  protected accept(socket: Socket): void {
    const { config, metrics } = this.context;
    const scheduler = this.scheduler;
    const client: HttpClient = new HttpClient(
      socket,
      {
        get draining() {
          return scheduler.draining;
        },
        get uploadBlocked() {
          return scheduler.uploadBlocked;
        },
        submit: (request) => scheduler.submit(request),
        forward: (wire) => scheduler.forward(wire),
        received: (request) => scheduler.received(request),
        refuse: (request, status, detail) => scheduler.refuse(request, status, detail),
        batchUpstream: (fn) => scheduler.batchUpstream(fn),
        left: (gone, reason) => {
          if (this.clientRemoved(gone, reason)) this.scheduler.left(gone);
        },
      },
      {
        maxHeaderBytes: config.mux.maxHeaderBytes,
        clientQueue: config.mux.clientQueue,
        requestDeadlineMs: config.mux.requestDeadlineMs,
        log: this.log,
        metrics,
      },
    );
    this.clientJoined(client);
  }
}
