/**
 * Helpers for relay/agent tests: a relay and agents on loopback, local services, and a raw in-process agent that speaks the
 * control protocol step by step (for refusals an agent engine would just retry).
 */
import { once } from 'node:events';
import { after } from 'node:test';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import type { App } from '../../../src/app.js';
import { authTag, ControlLineDecoder, encodeControl, PREAMBLE, type ControlMessage } from '../../../src/engines/relay/control/messages.js';
import { YamuxSession, type YamuxStream } from '../../../src/engines/relay/yamux/session.js';
import { LOOPBACK, startApp, waitFor } from '../../helpers.js';

export const SECRET = 'test-secret-that-must-never-be-shown';

export type TestApp = App & { stop(): Promise<void> };

/**
 * One cleanup list per test file, run in reverse order after its tests: `cleanups.push(fn)` for anything opened,
 * `track(app)` for an App (returned as is).
 */
export function fileCleanups(): { cleanups: Array<() => unknown>; track: <T extends TestApp>(app: T) => T } {
  const cleanups: Array<() => unknown> = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });
  const track = <T extends TestApp>(app: T): T => {
    cleanups.push(() => app.stop());
    return app;
  };
  return { cleanups, track };
}

export async function startRelay(env: Record<string, string> = {}): Promise<TestApp> {
  return startApp({ MODE: 'relay', RELAY_PORT: '0', PUBLIC_PORTS: '0', AUTH_SECRET: SECRET, LEASE_TTL_MS: '5000', VISITOR_WAIT_MS: '5000', ...env });
}

export async function startAgent(relay: TestApp, service: number, env: Record<string, string> = {}): Promise<TestApp> {
  return startApp({
    RELAY: `${LOOPBACK}:${relay.port('relay')}`,
    SERVICE: `${LOOPBACK}:${service}`,
    AUTH_SECRET: SECRET,
    RECONNECT_MIN_MS: '20',
    RECONNECT_MAX_MS: '100',
    ...env,
  });
}

export function publicPortOf(agent: TestApp): number | null {
  return (agent.engine.status() as { publicPort: number | null }).publicPort;
}

export async function waitBound(agent: TestApp, what = 'agent bound'): Promise<number> {
  await waitFor(() => agent.engine.ready && publicPortOf(agent) !== null, what, 8000);
  return publicPortOf(agent)!;
}

/** A TCP server on loopback with allowHalfOpen; `onSocket` gets every connection. */
export async function startService(onSocket: (socket: Socket) => void): Promise<{ port: number; server: Server; close(): void }> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('close', () => sockets.delete(socket));
    onSocket(socket);
  });
  server.listen(0, LOOPBACK);
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    server,
    close() {
      server.close();
      for (const socket of sockets) socket.destroy();
    },
  };
}

/** Echo: every byte back, and FIN after the visitor's FIN. */
export const echo = (socket: Socket): void => {
  socket.pipe(socket);
};

export { freePort } from '../../helpers.js';

/** Sends `data`, half-closes, and collects everything until the far side's FIN. */
export async function roundTrip(port: number, data: Buffer, timeoutMs = 8000): Promise<Buffer> {
  const socket = connect({ port, host: LOOPBACK, allowHalfOpen: true });
  socket.setNoDelay(true);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  const done = new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`round trip to ${port} timed out after ${timeoutMs} ms (${Buffer.concat(chunks).length} bytes back)`));
    }, timeoutMs);
    socket.on('end', () => {
      clearTimeout(timer);
      socket.end();
      resolve(Buffer.concat(chunks));
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
  socket.end(data);
  return done;
}

/** A hand-driven agent: connect, preamble, yamux client, control stream; each step is explicit. */
export class RawAgent {
  readonly socket: Socket;
  readonly session: YamuxSession;
  readonly control: YamuxStream;
  private readonly decoder = new ControlLineDecoder();
  private readonly inbox: ControlMessage[] = [];
  private waiter: (() => void) | undefined;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.write(PREAMBLE);
    this.session = new YamuxSession(socket, 'client', { keepAliveIntervalMs: 0 });
    this.session.on('stream', (stream) => {
      stream.on('error', () => {});
      stream.pipe(stream);
    });
    this.control = this.session.openStream();
    this.control.on('error', () => {});
    this.control.on('data', (chunk: Buffer) => {
      const { messages } = this.decoder.push(chunk);
      this.inbox.push(...messages);
      this.waiter?.();
    });
  }

  static async connect(relay: TestApp): Promise<RawAgent> {
    const socket = connect({ port: relay.port('relay'), host: LOOPBACK });
    socket.on('error', () => {});
    await once(socket, 'connect');
    return new RawAgent(socket);
  }

  async next(timeoutMs = 3000): Promise<ControlMessage> {
    const deadline = Date.now() + timeoutMs;
    while (this.inbox.length === 0) {
      if (Date.now() > deadline) throw new Error('no control message in time');
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
        setTimeout(resolve, 20);
      });
    }
    return this.inbox.shift()!;
  }

  send(message: ControlMessage): void {
    this.control.write(encodeControl(message));
  }

  /** hello → auth (with `secret`) → bind; returns the relay's answer. */
  async bind(secret: string, bind: { port?: number; leaseId?: string } = {}): Promise<ControlMessage> {
    const hello = await this.next();
    if (hello.type !== 'hello') throw new Error(`expected hello, got ${hello.type}`);
    if (hello.auth === 'hmac-sha256') this.send({ type: 'auth', tag: authTag(secret, hello.nonce) });
    this.send({ type: 'bind', ...bind });
    return this.next();
  }

  close(): void {
    this.session.destroy();
    this.socket.destroy();
  }
}
