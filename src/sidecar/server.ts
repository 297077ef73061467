/**
 * The HTTP sidecar every mode has (DESIGN §2): /livez, /readyz, /metrics, /status. Bound to HTTP_HOST:HTTP_PORT, apart from
 * the data listeners, so a container healthcheck on 127.0.0.1 always works.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { AddressInfo } from 'node:net';
import type { Engine } from '../engines/engine.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { bindWithFallback, type ListenerInfo } from '../net/listen.js';
import { VERSION } from '../version.js';

/** /livez fails only when the event loop has not turned for this long: busy is fine, stuck is not. */
export const LIVENESS_MAX_LAG_MS = 10_000;
const HEARTBEAT_INTERVAL_MS = 500;

export type Phase = 'starting' | 'ready' | 'draining';

export interface SidecarOptions {
  host: string;
  port: number;
  mode: string;
  log: Logger;
  metrics: Metrics;
  engine: Engine;
  /** Lifecycle phase owned by main.ts: /readyz is 503 unless it is 'ready' and the engine is ready. */
  phase: () => Phase;
  /** Extra top-level /status fields (the config summary, the profile). */
  statusExtras?: () => Record<string, unknown>;
}

export class Sidecar {
  readonly app: FastifyInstance;
  private readonly startedAt = Date.now();
  private lastHeartbeat = Date.now();
  private readonly heartbeat: NodeJS.Timeout;
  private boundHost = '';

  constructor(private readonly options: SidecarOptions) {
    const { log, metrics, engine, phase } = options;
    this.heartbeat = setInterval(() => (this.lastHeartbeat = Date.now()), HEARTBEAT_INTERVAL_MS);
    this.heartbeat.unref();
    // Probes and scrapes arrive every few seconds: fastify's per-request info lines would drown the lifecycle log, so its
    // logger only passes warnings. Fastify types the instance by its logger; the routes only need the default shape.
    const httpLog = log.child({ component: 'http' }, { level: 'warn' });
    this.app = Fastify({ loggerInstance: httpLog }) as unknown as FastifyInstance;

    this.app.get('/livez', async (_request, reply) => {
      const lagMs = Date.now() - this.lastHeartbeat;
      if (lagMs > LIVENESS_MAX_LAG_MS) return reply.code(503).send({ live: false, eventLoopLagMs: lagMs });
      return { live: true };
    });

    this.app.get('/readyz', async (_request, reply) => {
      const current = phase();
      const ready = current === 'ready' && engine.ready;
      return reply.code(ready ? 200 : 503).send({ ready, phase: current });
    });

    this.app.get('/metrics', async (_request, reply) => {
      const body = await metrics.registry.metrics();
      return reply.type(metrics.registry.contentType).send(body);
    });

    this.app.get('/status', async () => ({
      mode: options.mode,
      version: VERSION,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      ready: phase() === 'ready' && engine.ready,
      listeners: this.listeners(),
      ...options.statusExtras?.(),
      ...engine.status(),
    }));
  }

  async start(): Promise<void> {
    const { host, port, log } = this.options;
    this.boundHost = await bindWithFallback(host, async (bindHost) => {
      await this.app.listen({ host: bindHost, port });
    }, log);
    log.info({ listener: 'http', protocol: 'tcp', host: this.boundHost, port: this.port }, 'listening');
  }

  get port(): number {
    return (this.app.server.address() as AddressInfo | null)?.port ?? this.options.port;
  }

  listeners(): ListenerInfo[] {
    return [...this.options.engine.listeners(), { name: 'http', protocol: 'tcp', host: this.boundHost, port: this.port }];
  }

  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    await this.app.close();
  }
}
