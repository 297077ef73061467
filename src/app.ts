/**
 * One switchboard instance: engine and sidecar wired to a logger, a metrics registry and a buffer budget of their own.
 * main.ts runs one per process; tests run several side by side on OS-chosen ports.
 */
import type { LoadedConfig } from './config/load.js';
import type { Engine } from './engines/engine.js';
import { createEngine } from './engines/index.js';
import type { Logger } from './log.js';
import { Metrics } from './metrics.js';
import { BufferBudget } from './net/flow.js';
import { Sidecar, type Phase } from './sidecar/server.js';

/** Part of SHUTDOWN_GRACE_MS kept for closing the sidecar and exiting after the engine's drain, so the exit lands inside. */
const EXIT_RESERVE_MS = 250;

export class App {
  readonly metrics: Metrics;
  readonly budget: BufferBudget;
  readonly engine: Engine;
  readonly sidecar: Sidecar | undefined;
  private currentPhase: Phase = 'starting';

  constructor(
    readonly loaded: LoadedConfig,
    readonly log: Logger,
  ) {
    const { config } = loaded;
    this.metrics = new Metrics(config.mode);
    this.budget = new BufferBudget(config.maxBufferedBytes);
    this.engine = createEngine({ config, log, metrics: this.metrics, budget: this.budget });
    this.sidecar =
      config.httpPort === null
        ? undefined
        : new Sidecar({
            host: config.httpHost,
            port: config.httpPort,
            mode: config.mode,
            log,
            metrics: this.metrics,
            engine: this.engine,
            phase: () => this.currentPhase,
            statusExtras: () => ({ profile: loaded.profile }),
          });
  }

  get phase(): Phase {
    return this.currentPhase;
  }

  /** The sidecar first, so that probes answer (503) while the engine binds and connects. */
  async start(): Promise<void> {
    await this.sidecar?.start();
    await this.engine.start();
    this.currentPhase = 'ready';
    this.log.info({ listeners: this.sidecar?.listeners() ?? this.engine.listeners() }, 'ready');
  }

  /** Readiness goes 503 at once; then the engine drains within the grace period and the sidecar closes. */
  async drain(): Promise<void> {
    this.currentPhase = 'draining';
    const grace = this.loaded.config.shutdownGraceMs;
    await this.engine.drain(Math.max(0, grace - Math.min(EXIT_RESERVE_MS, grace / 2)));
    await this.sidecar?.close();
  }

  /** Port of a listener by name (`tcp`, `udp`, `http`, …), as bound: tests and logs need it when a port was 0. */
  port(listener: string): number {
    const all = this.sidecar?.listeners() ?? this.engine.listeners();
    const found = all.find((l) => l.name === listener);
    if (!found) throw new Error(`no listener named ${listener}`);
    return found.port;
  }
}
