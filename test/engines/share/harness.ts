/**
 * Plumbing for the share tests: a fake upstream device on loopback (TCP or unix socket) that records what it receives and
 * writes on demand, a deterministic byte pattern, and a receiver that hashes instead of keeping bytes.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { connectTcp, LOOPBACK, Recorder, startApp, waitFor } from '../../helpers.js';

export const MB = 1024 * 1024;

/** Settings every share test uses: OS-chosen ports, fast reconnects. */
export function shareEnv(upstream: string, env: Record<string, string> = {}): Record<string, string> {
  return { UPSTREAM: upstream, LISTEN_PORT: '0', RECONNECT_MIN_MS: '20', RECONNECT_MAX_MS: '100', ...env };
}

export type ShareApp = Awaited<ReturnType<typeof startApp>>;

/** `length` bytes of a counter pattern starting at byte `offset` of an endless stream (so any slice can be recomputed). */
export function pattern(offset: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = ((offset + i) * 7 + ((offset + i) >>> 8)) & 0xff;
  return out;
}

/** The device switchboard dials (`tcp:` or `unix:`): one connection at a time, the newest kept. */
export class FakeUpstream {
  readonly server: Server;
  socket: Socket | undefined;
  received: Buffer[] = [];
  receivedLength = 0;
  connections = 0;

  constructor() {
    this.server = createServer((socket) => {
      this.connections++;
      this.socket = socket;
      socket.setNoDelay(true);
      socket.on('error', () => {});
      socket.on('data', (chunk: Buffer) => {
        this.received.push(chunk);
        this.receivedLength += chunk.length;
      });
      socket.on('close', () => {
        if (this.socket === socket) this.socket = undefined;
      });
    });
  }

  async listenTcp(port = 0): Promise<number> {
    this.server.listen({ host: LOOPBACK, port });
    await once(this.server, 'listening');
    return (this.server.address() as { port: number }).port;
  }

  async listenUnix(path: string): Promise<void> {
    this.server.listen(path);
    await once(this.server, 'listening');
  }

  get text(): string {
    return Buffer.concat(this.received).toString('latin1');
  }

  async connected(count = 1): Promise<Socket> {
    await waitFor(() => this.connections >= count && this.socket !== undefined, `upstream connection #${count}`);
    return this.socket!;
  }

  /** Writes honouring backpressure. */
  async send(data: Buffer, chunkSize = 64 * 1024): Promise<void> {
    for (let at = 0; at < data.length; at += chunkSize) {
      if (!this.socket!.write(data.subarray(at, at + chunkSize))) await once(this.socket!, 'drain');
    }
  }

  /** Stops listening (so redials fail) and drops the live connection. */
  async goAway(): Promise<void> {
    this.socket?.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  async close(): Promise<void> {
    this.socket?.destroy();
    if (this.server.listening) await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export { Digest } from '../../helpers.js';

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Waits until the engine lists `count` clients. */
export async function waitForClients(app: ShareApp, count: number, timeoutMs = 5000): Promise<void> {
  await waitFor(() => (app.engine.status() as { clientCount: number }).clientCount === count, `${count} share clients`, timeoutMs);
}

export function upstreamState(app: ShareApp): string {
  return (app.engine.status() as { upstream: { state: string } }).upstream.state;
}

/** What one test file opens: share instances with a fake device each, and clients; `close()` in `after`. */
export class ShareFixture {
  readonly apps: ShareApp[] = [];
  readonly devices: FakeUpstream[] = [];
  readonly sockets: Socket[] = [];

  /** A share instance dialling a fresh fake device over TCP, with the upstream up. */
  async setup(env: Record<string, string> = {}): Promise<{ app: ShareApp; device: FakeUpstream }> {
    const device = new FakeUpstream();
    this.devices.push(device);
    const port = await device.listenTcp();
    const app = await startApp(shareEnv(`tcp:127.0.0.1:${port}`, env));
    this.apps.push(app);
    await device.connected();
    await waitFor(() => upstreamState(app) === 'up', 'upstream up');
    return { app, device };
  }

  async socket(app: ShareApp, listener = 'rw'): Promise<Socket> {
    const socket = await connectTcp(app.port(listener));
    this.sockets.push(socket);
    return socket;
  }

  async client(app: ShareApp, listener = 'rw'): Promise<Recorder> {
    return new Recorder(await this.socket(app, listener));
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await Promise.all(this.apps.map((a) => a.stop()));
    await Promise.all(this.devices.map((d) => d.close()));
  }
}
