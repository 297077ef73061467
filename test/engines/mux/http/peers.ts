/**
 * Peers for the HTTP mux tests: a scripted upstream (a raw TCP server that frames requests with the project's framer and
 * answers with whatever bytes a test scripts, counting connections and recording what reached it) and a raw client that
 * writes any bytes and splits what comes back into responses. Both run on 127.0.0.1 and are closed by the test.
 */
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { Http1Decoder, type Http1RequestHead, type Http1ResponseHead } from '../../../../src/protocols/http1.js';
import { connectTcp, LOOPBACK, startApp, waitFor } from '../../../helpers.js';

export type App = Awaited<ReturnType<typeof startApp>>;

export interface UpstreamRequest {
  head: Http1RequestHead;
  body: Buffer;
  /** Every byte of the request as it arrived (head and body framing). */
  raw: Buffer;
  /** 0-based connection number it arrived on. */
  connection: number;
}

/**
 * What the upstream does with a complete request: write bytes (and optionally close). `hold` keeps the socket for the
 * test (a hung upstream). Called with the request, the socket and the request's index across the whole test.
 */
export type Script = (request: UpstreamRequest, socket: Socket, index: number) => void;

export class ScriptedUpstream {
  readonly requests: UpstreamRequest[] = [];
  /** Raw bytes received per connection. */
  readonly received: Buffer[][] = [];
  connections = 0;
  /** Called when a request head has arrived, before its body (an upstream that answers 100 Continue). */
  onHead: ((head: Http1RequestHead, socket: Socket) => void) | undefined;
  readonly sockets = new Set<Socket>();
  private constructor(
    private readonly server: Server,
    public script: Script,
  ) {}

  static async start(script: Script = ok()): Promise<ScriptedUpstream> {
    const server = createServer();
    const upstream = new ScriptedUpstream(server, script);
    server.on('connection', (socket) => upstream.accept(socket));
    server.listen(0, LOOPBACK);
    await once(server, 'listening');
    return upstream;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  get target(): string {
    return `${LOOPBACK}:${this.port}`;
  }

  /** Every byte that reached the upstream, on any connection. */
  get allBytes(): Buffer {
    return Buffer.concat(this.received.flat());
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private accept(socket: Socket): void {
    const connection = this.connections++;
    const chunks: Buffer[] = [];
    this.received.push(chunks);
    this.sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('error', () => {});
    socket.on('close', () => this.sockets.delete(socket));
    const decoder = new Http1Decoder('request');
    let head: Http1RequestHead | undefined;
    let body: Buffer[] = [];
    let raw: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      for (const event of decoder.push(chunk)) {
        if (event.type === 'error') {
          socket.destroy();
          return;
        }
        raw.push(event.wire);
        if (event.type === 'head') {
          head = event.head as Http1RequestHead;
          this.onHead?.(head, socket);
        }
        else if (event.type === 'body') body.push(event.data);
        else if (event.type === 'end') {
          const request: UpstreamRequest = { head: head!, body: Buffer.concat(body), raw: Buffer.concat(raw), connection };
          body = [];
          raw = [];
          this.requests.push(request);
          this.script(request, socket, this.requests.length - 1);
        }
      }
    });
  }
}

/** A response with Content-Length whose body echoes the request target (so every client can check it got its own). */
export function ok(extraHeaders = ''): Script {
  return (request, socket) => {
    const body = `you asked for ${request.head.target}${request.body.length ? ` with ${request.body.length} bytes` : ''}`;
    socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extraHeaders}\r\n${request.head.method === 'HEAD' ? '' : body}`);
  };
}

export interface Response {
  head: Http1ResponseHead;
  body: Buffer;
  raw: Buffer;
}

/** A client that writes raw bytes and splits the answers into responses (1xx included, in order). */
export class RawClient {
  readonly responses: Response[] = [];
  closed = false;
  /** Every byte received. */
  readonly chunks: Buffer[] = [];
  private readonly decoder = new Http1Decoder('response');
  private current: { head: Http1ResponseHead; body: Buffer[]; raw: Buffer[] } | undefined;
  error: string | undefined;

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.consume(this.decoder.push(chunk));
    });
    socket.on('end', () => this.consume(this.decoder.end()));
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => {});
  }

  static async connect(port: number): Promise<RawClient> {
    return new RawClient(await connectTcp(port));
  }

  /** Writes `bytes`; `methods` are the methods of the requests inside, in order (they decide response framing). */
  send(bytes: string | Buffer, ...methods: string[]): void {
    for (const method of methods) this.decoder.expectResponseTo(method);
    this.socket.write(bytes);
  }

  get text(): string {
    return Buffer.concat(this.chunks).toString('latin1');
  }

  /** Final responses only. */
  get finals(): Response[] {
    return this.responses.filter((r) => !r.head.interim);
  }

  async waitFinals(count: number, timeoutMs = 5000): Promise<Response[]> {
    await waitFor(() => this.finals.length >= count || this.error !== undefined, `${count} responses`, timeoutMs);
    if (this.finals.length < count) throw new Error(`client got ${this.finals.length} responses, then a framing error: ${this.error}; received ${JSON.stringify(this.text)}`);
    return this.finals;
  }

  async waitClosed(timeoutMs = 5000): Promise<void> {
    await waitFor(() => this.closed, 'the client connection to close', timeoutMs);
  }

  close(): void {
    this.socket.destroy();
  }

  private consume(events: ReturnType<Http1Decoder['push']>): void {
    for (const event of events) {
      if (event.type === 'error') {
        this.error = event.error.reason;
        return;
      }
      if (event.type === 'head') this.current = { head: event.head as Http1ResponseHead, body: [], raw: [event.wire] };
      else if (this.current) {
        this.current.raw.push(event.wire);
        if (event.type === 'body') this.current.body.push(event.data);
        if (event.type === 'end') {
          this.responses.push({ head: this.current.head, body: Buffer.concat(this.current.body), raw: Buffer.concat(this.current.raw) });
          this.current = undefined;
        }
      }
    }
  }
}

/** switchboard in mux mode with PROTOCOL=http in front of `target`, with the upstream up (unless `waitUp` is false). */
export async function httpMux(target: string, env: Record<string, string> = {}, waitUp = true): Promise<App> {
  const app = await startApp({
    TARGET: target,
    PROTOCOL: 'http',
    LISTEN_PORT: '0',
    RECONNECT_MIN_MS: '100',
    RECONNECT_MAX_MS: '200',
    ...env,
  });
  if (waitUp) await waitFor(() => upstreamState(app) === 'up', 'upstream up');
  return app;
}

export function upstreamState(app: App): string {
  return (app.engine.status() as { upstream: { state: string } }).upstream.state;
}

/** `GET <path>` with Host, as one string. */
export function get(path: string, extra = '', method = 'GET'): string {
  return `${method} ${path} HTTP/1.1\r\nHost: device\r\n${extra}\r\n`;
}

/** Runs `body` with a scripted upstream and switchboard in front of it, closing everything afterwards. */
export async function withMux(
  script: Script,
  env: Record<string, string>,
  body: (ctx: { upstream: ScriptedUpstream; app: App; client(): Promise<RawClient> }) => Promise<void>,
): Promise<void> {
  const upstream = await ScriptedUpstream.start(script);
  const app = await httpMux(upstream.target, env);
  const clients: RawClient[] = [];
  try {
    await body({
      upstream,
      app,
      client: async () => {
        const c = await RawClient.connect(app.port('tcp'));
        clients.push(c);
        return c;
      },
    });
  } finally {
    for (const c of clients) c.close();
    await app.stop();
    await upstream.stop();
  }
}

/**
 * Answers like `ok()`, except that the request for `path` is answered only when the test calls `release()` (a device
 * busy with one exchange while others queue).
 */
export function held(path: string): { script: Script; release(): void; readonly holding: boolean } {
  let pending: (() => void) | undefined;
  return {
    script: (request, socket, index) => {
      if (request.head.target === path) pending = () => ok()(request, socket, index);
      else ok()(request, socket, index);
    },
    release: () => pending!(),
    get holding() {
      return pending !== undefined;
    },
  };
}
