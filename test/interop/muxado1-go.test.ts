/**
 * Interop with code nobody here wrote: a tcp-relay style echo service built from Debian's muxado v1 sources
 * (test/interop/go/muxado-service) against a small relay made of our Muxado1Session, over 127.0.0.1.
 *
 * The relay here does what tcp-relay's relay.go does: accept the service's connection, answer its first stream with
 * `localhost:<public port>`, then open one stream per visitor of the public port and pipe the two together.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { type AddressInfo, type Server, type Socket, createServer } from 'node:net';
import { type TestContext, before, describe, it } from 'node:test';
import {
  type Muxado1CloseInfo,
  Muxado1Session,
  type Muxado1SessionOptions,
  serveTcpRelayHandshake,
  tcpRelayAddress,
} from '../../src/engines/relay/muxado1/session.js';
import { ErrorCodes } from '../../src/errors.js';
import type { Muxado1Stream } from '../../src/engines/relay/muxado1/stream.js';
import {
  DEFAULT_WINDOW,
  HEARTBEAT_PRIORITY,
  HEARTBEAT_STREAM_TYPE,
  MAX_FRAME_BODY,
  Muxado1Decoder,
  type Muxado1Frame,
  ResetCode,
  encodeData,
  encodeDataHeader,
  encodeSyn,
  encodeWndInc,
} from '../../src/protocols/muxado1.js';
import { LOOPBACK, connectTcp, sleep, waitFor } from '../helpers.js';
import { type GoBuild, buildGoPeer, skipOrFail } from './go-build.js';

const MUXADO_PACKAGES = ['github.com/inconshreveable/muxado/proto', 'github.com/inconshreveable/muxado/proto/ext'];
/** Heartbeats fast enough that several intervals fit in a short test. */
const FAST_HEARTBEAT = ['-heartbeat', '100ms', '-tolerance', '150ms'];

let build: GoBuild;
before(async () => {
  build = await buildGoPeer('muxado-service', MUXADO_PACKAGES);
});

/** The Go service as a child process whose stdout lines we can wait for. Killed by PID after the test. */
class Service {
  readonly lines: string[] = [];
  exited = false;
  private partial = '';
  constructor(readonly child: ChildProcess) {
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (text: string) => {
      const parts = (this.partial + text).split('\n');
      this.partial = parts.pop() ?? '';
      this.lines.push(...parts);
    });
    child.stderr?.on('data', () => {});
    child.once('exit', () => (this.exited = true));
  }

  async line(pattern: RegExp, what: string, timeoutMs = 5_000): Promise<RegExpMatchArray> {
    let match: RegExpMatchArray | undefined;
    await waitFor(() => {
      for (const line of this.lines) {
        const m = line.match(pattern);
        if (m) {
          match = m;
          return true;
        }
      }
      return false;
    }, `${what} (service printed: ${JSON.stringify(this.lines)})`, timeoutMs);
    return match as RegExpMatchArray;
  }

  async kill(): Promise<void> {
    if (this.exited || this.child.pid === undefined) return;
    process.kill(this.child.pid, 'SIGKILL');
    await waitFor(() => this.exited, 'the service to exit', 2_000);
  }
}

function startService(t: TestContext, binary: string, relayPort: number, args: string[] = []): Service {
  const child = spawn(binary, [...args, `${LOOPBACK}:${relayPort}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  const service = new Service(child);
  t.after(() => service.kill());
  return service;
}

interface Tunnel {
  session: Muxado1Session;
  publicPort: number;
  closed: Muxado1CloseInfo | undefined;
  visitors: Set<Socket>;
}

/** A one-service-at-a-time tcp-relay, built from our session. */
class TestRelay {
  readonly tunnels: Tunnel[] = [];
  private readonly servers: Server[] = [];
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(private readonly sessionOptions: Partial<Muxado1SessionOptions>) {}

  async start(): Promise<void> {
    const server = createServer((socket) => void this.onService(socket));
    this.track(server);
    server.listen(0, LOOPBACK);
    await once(server, 'listening');
    this.port = (server.address() as AddressInfo).port;
  }

  private onService(socket: Socket): void {
    this.watch(socket);
    // Without it, Nagle holds back our small WNDINC frames behind delayed ACKs and a bulk transfer crawls.
    socket.setNoDelay(true);
    const session = new Muxado1Session(socket, { role: 'server', ...this.sessionOptions });
    // Visitors keep their write side open after their FIN arrives, so half-close can be carried through the tunnel.
    const visitors = createServer({ allowHalfOpen: true }, (visitor) => this.onVisitor(tunnel, visitor));
    this.track(visitors);
    const tunnel: Tunnel = { session, publicPort: 0, closed: undefined, visitors: new Set() };
    const listening = new Promise<string>((resolve) => {
      visitors.listen(0, LOOPBACK, () => {
        tunnel.publicPort = (visitors.address() as AddressInfo).port;
        this.tunnels.push(tunnel);
        resolve(tcpRelayAddress(tunnel.publicPort));
      });
    });
    session.once('close', (info) => {
      tunnel.closed = info;
      visitors.close();
      for (const visitor of tunnel.visitors) visitor.destroy();
    });
    // In the same tick as the session: the service's first SYN must find the handshake listening.
    void serveTcpRelayHandshake(session, listening, 2_000).then((failure) => {
      if (failure) session.close();
    });
  }

  private onVisitor(tunnel: Tunnel, visitor: Socket): void {
    this.watch(visitor);
    tunnel.visitors.add(visitor);
    visitor.once('close', () => tunnel.visitors.delete(visitor));
    const stream = tunnel.session.openStream();
    if (stream instanceof Error) {
      visitor.destroy();
      return;
    }
    visitor.pipe(stream);
    stream.pipe(visitor);
    visitor.on('error', () => stream.destroy());
    stream.on('error', () => visitor.destroy());
  }

  private watch(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('error', () => {});
    socket.once('close', () => this.sockets.delete(socket));
  }

  private track(server: Server): void {
    this.servers.push(server);
  }

  close(): void {
    for (const tunnel of this.tunnels) tunnel.session.destroy();
    for (const socket of this.sockets) socket.destroy();
    for (const server of this.servers) server.close();
  }
}

async function setup(
  t: TestContext,
  options: { serviceArgs?: string[]; session?: Partial<Muxado1SessionOptions> } = {},
): Promise<{ relay: TestRelay; service: Service; binary: string } | undefined> {
  if (build.skipReason !== undefined) {
    skipOrFail(t, build.skipReason);
    return undefined;
  }
  const relay = new TestRelay(options.session ?? {});
  await relay.start();
  t.after(() => relay.close());
  const service = startService(t, build.binary, relay.port, options.serviceArgs);
  return { relay, service, binary: build.binary };
}

/** Sends `payload` as a visitor, half-closes, and returns everything received until the tunnel's FIN. */
async function echoThrough(publicPort: number, payload: Buffer, timeoutMs = 5_000): Promise<Buffer> {
  const visitor = await connectTcp(publicPort);
  const received: Buffer[] = [];
  visitor.on('data', (chunk: Buffer) => received.push(chunk));
  const ended = once(visitor, 'end');
  visitor.end(payload);
  const timer = setTimeout(() => visitor.destroy(new Error(`no FIN within ${timeoutMs} ms`)), timeoutMs);
  try {
    await ended;
  } finally {
    clearTimeout(timer);
    visitor.destroy();
  }
  return Buffer.concat(received);
}

describe('tcp-relay echo service (Go, muxado v1) through our muxado session', () => {
  it('the service reads localhost:<public port> from the first stream it opens', async (t) => {
    const ready = await setup(t);
    if (!ready) return;
    const match = await ready.service.line(/^address (.*)$/, 'the address line');
    await waitFor(() => ready.relay.tunnels.length === 1, 'the tunnel');
    assert.equal(match[1], `localhost:${ready.relay.tunnels[0]?.publicPort}`);
  });

  it('several visitors at once each get their own bytes back', async (t) => {
    const ready = await setup(t);
    if (!ready) return;
    await ready.service.line(/^address /, 'the address line');
    const publicPort = (ready.relay.tunnels[0] as Tunnel).publicPort;
    const payloads = Array.from({ length: 8 }, (_, i) => randomBytes(1_000 + i * 7_919));
    const echoes = await Promise.all(payloads.map((payload) => echoThrough(publicPort, payload)));
    echoes.forEach((echo, i) => assert.ok(echo.equals(payloads[i] as Buffer), `visitor ${i} got its bytes back`));
  });

  it('a transfer far larger than the 64 KiB window comes back intact (flow control both ways)', async (t) => {
    const ready = await setup(t);
    if (!ready) return;
    await ready.service.line(/^address /, 'the address line');
    const publicPort = (ready.relay.tunnels[0] as Tunnel).publicPort;
    const payload = randomBytes(2 * 1024 * 1024);
    const echo = await echoThrough(publicPort, payload, 8_000);
    assert.equal(echo.length, payload.length);
    assert.ok(echo.equals(payload));
  });

  it("half-close: the visitor's FIN reaches the service, which still answers before closing its side", async (t) => {
    const ready = await setup(t);
    if (!ready) return;
    await ready.service.line(/^address /, 'the address line');
    const publicPort = (ready.relay.tunnels[0] as Tunnel).publicPort;
    const visitor = await connectTcp(publicPort);
    t.after(() => visitor.destroy());
    const received: Buffer[] = [];
    visitor.on('data', (chunk: Buffer) => received.push(chunk));
    visitor.write('first ');
    await waitFor(() => Buffer.concat(received).toString() === 'first ', 'the first echo');
    // After our FIN the service has only the bytes in flight to echo, and then its own FIN comes back.
    const ended = once(visitor, 'end');
    visitor.end('last');
    await Promise.race([ended, sleep(3_000).then(() => assert.fail('no FIN back from the service'))]);
    assert.equal(Buffer.concat(received).toString(), 'first last');
    // Both FINs seen: the stream is gone from the session without a reset.
    await waitFor(() => ready.relay.tunnels[0]?.session.streamCount === 0, 'the stream to be forgotten');
  });

  it('heartbeats keep the session alive for many intervals, in both directions', async (t) => {
    const ready = await setup(t, {
      serviceArgs: FAST_HEARTBEAT,
      session: { heartbeatIntervalMs: 100, heartbeatToleranceMs: 150 },
    });
    if (!ready) return;
    await ready.service.line(/^address /, 'the address line');
    const tunnel = ready.relay.tunnels[0] as Tunnel;
    // 1.2 s is twelve intervals and nearly five times interval + tolerance: without echoes either side would close.
    await sleep(1_200);
    assert.equal(ready.service.exited, false, `service still running (printed ${JSON.stringify(ready.service.lines)})`);
    assert.equal(tunnel.closed, undefined);
    assert.ok(tunnel.session.stats.heartbeatsEchoed >= 5, `echoed ${tunnel.session.stats.heartbeatsEchoed} heartbeats`);
    assert.ok(tunnel.session.stats.heartbeatsAnswered >= 5, `service answered ${tunnel.session.stats.heartbeatsAnswered}`);
    const echo = await echoThrough(tunnel.publicPort, Buffer.from('still here'));
    assert.equal(echo.toString(), 'still here');
  });

  it('control: a relay that never echoes heartbeats is dropped by the service after interval + tolerance', async (t) => {
    if (build.skipReason !== undefined) return skipOrFail(t, build.skipReason);
    // A bare relay built from the codec alone: it answers the first stream and ignores everything else.
    const server = createServer((socket) => {
      socket.on('error', () => {});
      const decoder = new Muxado1Decoder();
      let answered = false;
      socket.on('data', (chunk: Buffer) => {
        for (const frame of decoder.push(chunk).frames) {
          if (frame.kind === 'syn' && frame.streamType === 0 && !answered) {
            answered = true;
            socket.write(encodeData(frame.streamId, Buffer.from('localhost:1')));
            socket.write(encodeDataHeader(frame.streamId, 0, true));
          }
        }
      });
    });
    t.after(() => server.close());
    server.listen(0, LOOPBACK);
    await once(server, 'listening');
    const service = startService(t, build.binary, (server.address() as AddressInfo).port, FAST_HEARTBEAT);
    await service.line(/^address localhost:1$/, 'the address line');
    await service.line(/^closed /, 'the service to close the session', 2_000);
    await waitFor(() => service.exited, 'the service to exit', 2_000);
  });

  it('a service that dies ends the session and its visitors; a new service gets a new tunnel that works', async (t) => {
    const ready = await setup(t);
    if (!ready) return;
    await ready.service.line(/^address /, 'the address line');
    const tunnel = ready.relay.tunnels[0] as Tunnel;
    const visitor = await connectTcp(tunnel.publicPort);
    t.after(() => visitor.destroy());
    visitor.on('error', () => {});
    // Read what comes back, or the socket never gets to its 'end'.
    visitor.resume();
    visitor.write('ping');
    await ready.service.line(/^accepted \d+$/, 'the visitor stream');
    const visitorClosed = once(visitor, 'close');

    await ready.service.kill();
    await waitFor(() => tunnel.closed !== undefined, 'the session to close');
    assert.equal(tunnel.closed?.reason, 'transport_closed');
    await Promise.race([visitorClosed, sleep(2_000).then(() => assert.fail('visitor not closed'))]);

    const again = startService(t, ready.binary, ready.relay.port);
    await again.line(/^address /, 'the second address line');
    await waitFor(() => ready.relay.tunnels.length === 2, 'the second tunnel');
    const second = ready.relay.tunnels[1] as Tunnel;
    assert.notEqual(second.publicPort, tunnel.publicPort);
    assert.equal((await echoThrough(second.publicPort, Buffer.from('back again'))).toString(), 'back again');
  });
});

/** The far end of a session as hand-written frames: what a misbehaving (or minimal) muxado client would send. */
class RawPeer {
  readonly frames: Muxado1Frame[] = [];
  ended = false;
  private readonly decoder = new Muxado1Decoder();
  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.frames.push(...this.decoder.push(chunk).frames));
    socket.on('end', () => (this.ended = true));
    socket.on('error', () => {});
  }

  async frame<K extends Muxado1Frame['kind']>(
    kind: K,
    match: (frame: Extract<Muxado1Frame, { kind: K }>) => boolean,
    what: string,
  ): Promise<Extract<Muxado1Frame, { kind: K }>> {
    let found: Extract<Muxado1Frame, { kind: K }> | undefined;
    await waitFor(() => {
      found = this.frames.find((f): f is Extract<Muxado1Frame, { kind: K }> => f.kind === kind && match(f as never));
      return found !== undefined;
    }, what, 2_000);
    return found as Extract<Muxado1Frame, { kind: K }>;
  }
}

/** Our session (relay side) on one end of a loopback connection, a RawPeer on the other. */
async function rawPair(
  t: TestContext,
  options: Partial<Muxado1SessionOptions> = {},
): Promise<{ session: Muxado1Session; peer: RawPeer; closed: () => Muxado1CloseInfo | undefined }> {
  const server = createServer();
  server.listen(0, LOOPBACK);
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = await connectTcp((server.address() as AddressInfo).port);
  const [socket] = await accepted;
  socket.on('error', () => {});
  const session = new Muxado1Session(socket, { role: 'server', heartbeatIntervalMs: 0, ...options });
  let info: Muxado1CloseInfo | undefined;
  session.once('close', (i) => (info = i));
  t.after(() => {
    session.destroy();
    client.destroy();
    server.close();
  });
  return { session, peer: new RawPeer(client), closed: () => info };
}

describe('our muxado v1 session against hand-written frames', () => {
  it('bytes that are not muxado (an HTTP request) close the session at once with SWB_ERR_FRAME and a GOAWAY', async (t) => {
    const { peer, closed } = await rawPair(t);
    peer.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => closed() !== undefined, 'the session to close', 1_000);
    assert.equal(closed()?.reason, 'protocol');
    assert.equal(closed()?.error?.code, ErrorCodes.FRAME);
    await peer.frame('goaway', (f) => f.errorCode === ResetCode.PROTOCOL_ERROR, 'GOAWAY PROTOCOL_ERROR');
    await waitFor(() => peer.ended, 'the connection to end', 2_000);
  });

  it('a SYN with the relay parity, or an id going backwards, closes the session with SWB_ERR_PROTOCOL', async (t) => {
    const even = await rawPair(t);
    even.peer.socket.write(encodeSyn(2));
    await waitFor(() => even.closed() !== undefined, 'the session to close', 1_000);
    assert.equal(even.closed()?.error?.code, ErrorCodes.PROTOCOL);

    const backwards = await rawPair(t);
    backwards.session.on('stream', (stream) => stream.on('error', () => {}).resume());
    backwards.peer.socket.write(Buffer.concat([encodeSyn(5), encodeSyn(3)]));
    await waitFor(() => backwards.closed() !== undefined, 'the session to close', 1_000);
    assert.equal(backwards.closed()?.reason, 'protocol');
  });

  it('the peer heartbeat is echoed byte for byte; other extension streams get RST STREAM_CLOSED', async (t) => {
    const { session, peer } = await rawPair(t);
    peer.socket.write(encodeSyn(3, { priority: HEARTBEAT_PRIORITY, streamType: HEARTBEAT_STREAM_TYPE }));
    peer.socket.write(encodeData(3, Buffer.from([0, 0, 0, 7, 0, 0])));
    peer.socket.write(encodeData(3, Buffer.from([0, 9])));
    const echoes = Buffer.concat(
      await Promise.all([
        peer.frame('data', (f) => f.streamId === 3 && f.payload.readUInt32BE(0) === 7, 'echo of 7'),
        peer.frame('data', (f) => f.streamId === 3 && f.payload.readUInt32BE(0) === 9, 'echo of 9'),
      ]).then((frames) => frames.map((f) => f.payload)),
    );
    assert.deepEqual([...echoes], [0, 0, 0, 7, 0, 0, 0, 9]);
    assert.equal(session.stats.heartbeatsEchoed, 2);

    peer.socket.write(encodeSyn(5, { streamType: HEARTBEAT_STREAM_TYPE + 1 }));
    await peer.frame('rst', (f) => f.streamId === 5 && f.errorCode === ResetCode.STREAM_CLOSED, 'RST of extension stream');
  });

  it('data beyond the 64 KiB window resets that stream only (FLOW_CONTROL_ERROR); others go on', async (t) => {
    const { session, peer, closed } = await rawPair(t);
    const streams: Muxado1Stream[] = [];
    session.on('stream', (stream) => {
      streams.push(stream);
      stream.on('error', () => {});
    });
    // Stream 3 is never read: the window is all the peer may send.
    peer.socket.write(encodeSyn(3));
    const frame = Buffer.alloc(MAX_FRAME_BODY);
    for (let sent = 0; sent <= DEFAULT_WINDOW; sent += MAX_FRAME_BODY) peer.socket.write(encodeData(3, frame));
    await peer.frame('rst', (f) => f.streamId === 3 && f.errorCode === ResetCode.FLOW_CONTROL_ERROR, 'RST FLOW_CONTROL_ERROR');

    // Stream 5 still works both ways.
    peer.socket.write(encodeSyn(5));
    await waitFor(() => streams.length === 2, 'stream 5');
    (streams[1] as Muxado1Stream).end('pong');
    await peer.frame('data', (f) => f.streamId === 5 && f.payload.toString() === 'pong', 'pong on stream 5');
    await peer.frame('data', (f) => f.streamId === 5 && f.fin, 'FIN on stream 5');
    assert.equal(closed(), undefined);
  });

  it('a consumer that reads returns credit in WNDINC frames; a larger receiveWindowBytes is granted at open', async (t) => {
    const { session, peer } = await rawPair(t, { receiveWindowBytes: 256 * 1024 });
    session.on('stream', (stream) => stream.on('error', () => {}).resume());
    peer.socket.write(encodeSyn(3));
    await peer.frame('wndinc', (f) => f.streamId === 3 && f.increment === 256 * 1024 - DEFAULT_WINDOW, 'the extra window');
    const frame = Buffer.alloc(MAX_FRAME_BODY);
    // 200 KiB is more than muxado's 64 KiB but within what we granted: no reset, and credit comes back.
    for (let sent = 0; sent < 200 * 1024; sent += MAX_FRAME_BODY) peer.socket.write(encodeData(3, frame));
    await peer.frame('wndinc', (f) => f.streamId === 3 && f.increment >= 128 * 1024, 'credit for what was read');
    assert.equal(peer.frames.some((f) => f.kind === 'rst'), false);
  });

  it('our writes stop at the 64 KiB window until WNDINC arrives, and resume after it', async (t) => {
    const { session, peer } = await rawPair(t);
    const stream = session.openStream();
    assert.ok(!(stream instanceof Error));
    stream.on('error', () => {});
    const payload = randomBytes(100_000);
    stream.write(payload);
    const sentBytes = (): number =>
      peer.frames.reduce((n, f) => n + (f.kind === 'data' && f.streamId === stream.id ? f.payload.length : 0), 0);
    await waitFor(() => sentBytes() === DEFAULT_WINDOW, 'a full window');
    await sleep(50);
    assert.equal(sentBytes(), DEFAULT_WINDOW);
    assert.ok(peer.frames.every((f) => f.kind !== 'data' || f.payload.length <= MAX_FRAME_BODY));
    peer.socket.write(encodeWndInc(stream.id, DEFAULT_WINDOW));
    await waitFor(() => sentBytes() === payload.length, 'the rest after WNDINC');
    const received = Buffer.concat(peer.frames.flatMap((f) => (f.kind === 'data' && f.streamId === stream.id ? [f.payload] : [])));
    assert.ok(received.equals(payload));
  });

  it('after goAway() new streams from the peer are refused, open ones keep working', async (t) => {
    const { session, peer } = await rawPair(t);
    const streams: Muxado1Stream[] = [];
    session.on('stream', (stream) => streams.push(stream.on('error', () => {})));
    peer.socket.write(encodeSyn(3));
    await waitFor(() => streams.length === 1, 'stream 3');
    session.goAway();
    await peer.frame('goaway', (f) => f.lastStreamId === 3 && f.errorCode === ResetCode.NO_ERROR, 'GOAWAY last id 3');
    peer.socket.write(encodeSyn(5));
    await peer.frame('rst', (f) => f.streamId === 5 && f.errorCode === ResetCode.REFUSED_STREAM, 'RST REFUSED_STREAM');
    (streams[0] as Muxado1Stream).write('still open');
    await peer.frame('data', (f) => f.streamId === 3 && f.payload.toString() === 'still open', 'data on stream 3');
  });

  it('bytes already read from the transport (head) are decoded before the rest', async (t) => {
    const syn = encodeSyn(3);
    const { session, peer } = await rawPair(t, { head: syn.subarray(0, 5) });
    const streams: Muxado1Stream[] = [];
    session.on('stream', (stream) => streams.push(stream.on('error', () => {})));
    peer.socket.write(Buffer.concat([syn.subarray(5), encodeData(3, Buffer.from('hi'), true)]));
    await waitFor(() => streams.length === 1, 'stream 3 from head + rest');
    const [received] = (await once(streams[0] as Muxado1Stream, 'data')) as [Buffer];
    assert.equal(received.toString(), 'hi');
  });

  it('a service that never opens its first stream gets handshake_timeout', async (t) => {
    const { session } = await rawPair(t);
    const failure = await serveTcpRelayHandshake(session, 'localhost:1', 100);
    assert.equal(failure?.reason, 'handshake_timeout');
  });

  it('without echoes of our heartbeats the session closes after interval + tolerance', async (t) => {
    const { peer, closed } = await rawPair(t, { heartbeatIntervalMs: 50, heartbeatToleranceMs: 100 });
    const syn = await peer.frame('syn', (f) => f.streamType === HEARTBEAT_STREAM_TYPE, 'our heartbeat stream');
    assert.equal(syn.priority, HEARTBEAT_PRIORITY);
    assert.equal(syn.streamId, 2, "a server's first stream id");
    await waitFor(() => closed() !== undefined, 'the heartbeat timeout', 1_000);
    assert.equal(closed()?.reason, 'heartbeat_timeout');
  });
});
