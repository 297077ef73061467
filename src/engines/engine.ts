/**
 * The small interface every mode implements. main.ts drives it: start() binds and connects, `ready` feeds /readyz,
 * status() and listeners() feed /status, drain() runs on SIGTERM within SHUTDOWN_GRACE_MS.
 */
import type { Config } from '../config/load.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { BufferBudget } from '../net/flow.js';
import type { ListenerInfo } from '../net/listen.js';

export interface EngineContext {
  config: Config;
  log: Logger;
  metrics: Metrics;
  /** The process-wide MAX_BUFFERED_BYTES account every receiver belongs to. */
  budget: BufferBudget;
}

export interface Engine {
  /** Binds listeners and starts outgoing connections; resolves once the mode can serve. Rejects if a listener cannot bind. */
  start(): Promise<void>;
  /** True once every listener is bound and the mode can serve; false again once draining. */
  readonly ready: boolean;
  listeners(): ListenerInfo[];
  /** Mode-specific /status fields (DESIGN §2): groups, udpPeers, clients, upstream, cache, tunnels. */
  status(): Record<string, unknown>;
  /**
   * Stops accepting, lets in-flight work finish and queued bytes flush for at most `graceMs`, then closes every connection.
   * Never rejects.
   */
  drain(graceMs: number): Promise<void>;
}

/** /status lists at most this many clients (10,000 idle members would make a 1 MB answer); `clientCount` has the total. */
export const STATUS_MAX_CLIENTS = 1000;
