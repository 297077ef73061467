/**
 * agent mode (DESIGN §7): dials RELAY, sends the preamble, runs yamux as the client, authenticates and binds on the control
 * stream, then proxies every stream the relay opens to SERVICE. Reconnects with jittered backoff and re-binds with its
 * lease id, so the public port survives blips (and restarts, with LEASE_FILE). Ready (/readyz) while bound.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import type { AgentModeConfig } from '../../config/load.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import { formatHostPort } from '../../net/address.js';
import { Backoff } from '../../net/backoff.js';
import { tuneSocket, type ListenerInfo } from '../../net/listen.js';
import type { Engine, EngineContext } from '../engine.js';
import { agentHandshake } from './control/agent-side.js';
import { HANDSHAKE_TIMEOUT_MS, PREAMBLE, type BindMessage } from './control/messages.js';
import { splice } from './splice.js';
import { YamuxSession, type YamuxStream } from './yamux/session.js';

/** Pings towards the relay: a dead relay or path is found within interval + timeout, then we reconnect. */
export const RELAY_PING_INTERVAL_MS = 15_000;
export const RELAY_PING_TIMEOUT_MS = 10_000;
/** Connecting to SERVICE for one visitor may take this long before the visitor's stream is reset. */
export const SERVICE_CONNECT_TIMEOUT_MS = 10_000;

type AgentState = 'connecting' | 'handshaking' | 'bound' | 'waiting' | 'stopped';

export class AgentEngine implements Engine {
  private readonly config: AgentModeConfig;
  private readonly log: Logger;
  private readonly metrics: Metrics;
  private readonly backoff: Backoff;
  private session: YamuxSession | undefined;
  private socket: Socket | undefined;
  private state: AgentState = 'connecting';
  private since = Date.now();
  private lastError: string | null = null;
  private publicPort: number | null = null;
  private leaseId: string | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private draining = false;
  private streams = 0;
  private readonly services = new Set<Socket>();
  private readonly relayText: string;
  private readonly serviceText: string;

  constructor(context: EngineContext & { config: AgentModeConfig }) {
    this.config = context.config;
    this.metrics = context.metrics;
    const { agent } = this.config;
    this.relayText = formatHostPort(agent.relay.host, agent.relay.port);
    this.serviceText = formatHostPort(agent.service.host, agent.service.port);
    this.log = context.log.child({ component: 'agent', relay: this.relayText });
    this.backoff = new Backoff(this.config.reconnectMinMs, this.config.reconnectMaxMs);
    this.leaseId = this.readLeaseFile();
  }

  get ready(): boolean {
    return this.state === 'bound' && !this.draining;
  }

  /** Starts dialling and returns: readiness follows the relay (DESIGN §2, an agent is ready once bound). */
  async start(): Promise<void> {
    this.log.info({ service: this.serviceText, requestPort: this.config.agent.requestPort || undefined }, 'agent starting');
    this.connect();
  }

  listeners(): ListenerInfo[] {
    return [];
  }

  status(): Record<string, unknown> {
    return {
      publicPort: this.publicPort,
      relay: this.relayText,
      service: this.serviceText,
      upstream: { target: this.relayText, state: this.state, since: new Date(this.since).toISOString(), lastError: this.lastError },
      streams: this.streams,
    };
  }

  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    clearTimeout(this.reconnectTimer);
    const session = this.session;
    if (session && !session.closed) await session.drain(graceMs);
    this.socket?.destroy();
    for (const socket of this.services) socket.destroy();
    this.setState('stopped');
  }

  private setState(state: AgentState, error?: string): void {
    this.state = state;
    this.since = Date.now();
    if (error !== undefined) this.lastError = error;
    this.metrics.upstreamUp.set(state === 'bound' ? 1 : 0);
  }

  private connect(): void {
    if (this.draining) return;
    const { relay } = this.config.agent;
    this.setState('connecting');
    const socket = connect({ host: relay.host, port: relay.port });
    this.socket = socket;
    let failed = false;
    const onFail = (why: string): void => {
      if (failed) return;
      failed = true;
      socket.destroy();
      this.retry(why);
    };
    const onConnectError = (error: Error): void => onFail(`cannot reach the relay: ${error.message}`);
    socket.once('error', onConnectError);
    socket.once('connect', () => {
      // Tuned once connected, as every dialled socket is: set before, Node applies the options again on connect.
      tuneSocket(socket);
      socket.off('error', onConnectError);
      // From here the session reports a lost transport ('close' below).
      socket.on('error', (error) => this.log.debug({ err: error }, 'relay socket error'));
      socket.write(PREAMBLE);
      const session = new YamuxSession(socket, 'client', {
        streamWindowBytes: this.config.agent.streamWindowBytes,
        keepAliveIntervalMs: RELAY_PING_INTERVAL_MS,
        pingTimeoutMs: RELAY_PING_TIMEOUT_MS,
      });
      this.session = session;
      // Streams the relay opens are visitors; they arrive only after bound.
      session.on('stream', (stream) => this.proxy(stream));
      session.once('close', (reason, error) => {
        if (this.session === session) this.session = undefined;
        const wasBound = this.state === 'bound';
        if (wasBound) this.log.warn({ reason, err: error?.message, publicPort: this.publicPort }, 'relay session lost; reconnecting');
        onFail(`relay session closed (${reason})`);
      });
      this.handshake(session).catch((error: Error) => {
        this.log.warn({ code: (error as { code?: string }).code, err: error.message }, 'handshake with the relay failed');
        this.lastError = error.message;
        session.close();
      });
    });
  }

  private async handshake(session: YamuxSession): Promise<void> {
    this.setState('handshaking');
    const control = session.openStream();
    control.on('error', () => {});
    const { requestPort, authSecret } = this.config.agent;
    const bind: BindMessage = { type: 'bind' };
    if (requestPort !== 0) bind.port = requestPort;
    if (this.leaseId !== undefined) bind.leaseId = this.leaseId;
    const answer = await agentHandshake(control, { authSecret, bind, timeoutMs: HANDSHAKE_TIMEOUT_MS });
    if (answer.type === 'error') {
      this.log.error({ code: answer.code, requestedPort: bind.port }, `relay refused the agent: ${answer.message}`);
      this.lastError = `${answer.code}: ${answer.message}`;
      session.close();
      return;
    }
    const reattached = this.leaseId !== undefined && this.publicPort === answer.port;
    this.leaseId = answer.leaseId;
    this.publicPort = answer.port;
    this.writeLeaseFile(answer.port);
    this.backoff.reset();
    this.setState('bound');
    this.lastError = null;
    this.log.info(
      { publicPort: answer.port, publicAddress: formatHostPort(this.config.agent.relay.host, answer.port), leaseTtlMs: answer.leaseTtlMs, reattached },
      `bound: visitors of ${formatHostPort(this.config.agent.relay.host, answer.port)} reach ${this.serviceText}`,
    );
  }

  private retry(why: string): void {
    if (this.draining) return;
    if (this.state !== 'waiting') this.metrics.upstreamReconnects.inc();
    const delay = this.backoff.next();
    this.setState('waiting', this.lastError && why.startsWith('relay session closed') ? this.lastError : why);
    this.log.info({ delayMs: delay, reason: why }, 'reconnecting to the relay');
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  /** One visitor: a fresh connection to SERVICE, spliced to the stream (half-close both ways). */
  private proxy(stream: YamuxStream): void {
    stream.on('error', (error) => this.log.debug({ err: error }, 'visitor stream error'));
    const { service } = this.config.agent;
    const socket = connect({ host: service.host, port: service.port, allowHalfOpen: true });
    this.services.add(socket);
    this.streams++;
    this.metrics.streamsActive.inc();
    const timer = setTimeout(() => socket.destroy(new Error('connect timeout')), SERVICE_CONNECT_TIMEOUT_MS);
    timer.unref();
    const hot = this.metrics.hot;
    let spliced = false;
    const done = (): void => {
      this.services.delete(socket);
      this.streams--;
      this.metrics.streamsActive.dec();
    };
    socket.once('error', (error) => {
      if (spliced) return;
      clearTimeout(timer);
      this.log.warn({ err: error.message, service: this.serviceText }, 'cannot reach SERVICE for a visitor; stream reset');
      stream.destroy();
      done();
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      tuneSocket(socket);
      spliced = true;
      socket.on('error', (error) => this.log.debug({ err: error }, 'service socket error'));
      splice(
        socket,
        stream,
        { fromSocket: (n) => (hot.bytesUpstreamIn += n), fromStream: (n) => (hot.bytesUpstreamOut += n) },
        done,
      );
    });
  }

  private readLeaseFile(): string | undefined {
    const file = this.config.agent.leaseFile;
    if (file === '') return undefined;
    try {
      const saved = JSON.parse(readFileSync(file, 'utf8')) as { leaseId?: unknown; relay?: unknown };
      // A lease belongs to one relay; a file written for another one is ignored.
      if (typeof saved.leaseId === 'string' && saved.relay === this.relayText) return saved.leaseId;
    } catch {
      // no file yet, or unreadable: start without a lease
    }
    return undefined;
  }

  private writeLeaseFile(port: number): void {
    const file = this.config.agent.leaseFile;
    if (file === '') return;
    try {
      writeFileSync(file, JSON.stringify({ relay: this.relayText, publicPort: port, leaseId: this.leaseId }) + '\n', { mode: 0o600 });
    } catch (error) {
      this.log.warn({ err: (error as Error).message, file }, 'cannot write LEASE_FILE; a restart will get a new port');
    }
  }
}
