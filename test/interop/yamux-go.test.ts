/**
 * Our yamux session against hashicorp/yamux (Debian's golang-github-hashicorp-yamux-dev, a version that predates some
 * upstream fixes: its Read returns EOF after its own Close, so the Go side never reads after half-closing).
 * The peer is test/interop/go/yamux-peer, built offline by go-build.ts; see there for skip/fail rules.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { YamuxSession, type YamuxStream } from '../../src/engines/relay/yamux/session.js';
import { INITIAL_STREAM_WINDOW } from '../../src/protocols/yamux.js';
import { buildGoPeer, skipOrFail, type GoBuild } from './go-build.js';

const WAIT_MS = 10_000;
const children: ChildProcess[] = [];
const closers: Array<() => void> = [];

after(() => {
  for (const close of closers) close();
  for (const child of children) killChild(child);
});

function killChild(child: ChildProcess): void {
  if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

function within<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function until(condition: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Same pattern as main.go: byte i of stream k is (i*7 + k) & 0xff. */
function pattern(k: number, size: number): Buffer {
  const bytes = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 7 + k) & 0xff;
  return bytes;
}

interface Peer {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

function startPeer(binary: string, args: string[]): Peer {
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = once(child, 'close').then(([code]) => code as number | null);
  return { child, stdout: () => out, stderr: () => err, exited };
}

function readAll(stream: YamuxStream, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return within(
    new Promise<Buffer>((resolve, reject) => {
      stream.once('end', () => resolve(Buffer.concat(chunks)));
      stream.once('error', reject);
    }),
    what,
  );
}

describe('yamux interop with hashicorp/yamux (Go)', () => {
  let build: GoBuild;
  before(async () => {
    build = await buildGoPeer('yamux-peer', ['github.com/hashicorp/yamux']);
  });

  it('our client against the Go server: echoes beyond the window, half-close, streams Go opens, pings', async (t) => {
    if (build.skipReason !== undefined) return skipOrFail(t, build.skipReason);
    const serverOpens = 3;
    const serverBytes = 300_000;
    const peer = startPeer(build.binary, [
      'server',
      '127.0.0.1:0',
      ...['-open', String(serverOpens), '-bytes', String(serverBytes), '-keepalive', '100ms'],
    ]);
    try {
      await until(() => /LISTENING (\S+)\n/.test(peer.stdout()), `Go server to listen (stderr: ${peer.stderr()})`);
      const address = /LISTENING (\S+):(\d+)\n/.exec(peer.stdout()) as RegExpExecArray;
      const socket = net.connect(Number(address[2]), address[1]);
      closers.push(() => socket.destroy());
      await within(once(socket, 'connect'), 'connect to the Go server');
      const session = new YamuxSession(socket, 'client', { keepAliveIntervalMs: 0 });
      closers.push(() => session.destroy());

      // Streams the Go server opens towards us (even ids): its pattern, then FIN; we half-close back.
      const fromGo: Array<Promise<void>> = [];
      session.on('stream', (stream) => {
        assert.equal(stream.id % 2, 0, 'server-opened ids are even');
        const k = stream.id / 2 - 1; // the Go side opens them in order: ids 2, 4, 6 carry patterns 0, 1, 2
        fromGo.push(
          readAll(stream, `Go stream ${stream.id}`).then((data) => {
            assert.ok(data.equals(pattern(k, serverBytes)), `Go stream ${stream.id} carried the pattern`);
            stream.end();
          }),
        );
      });

      // Our streams: 1 MiB each (four windows), then FIN; the Go side echoes until EOF and answers with its own FIN.
      const size = 4 * INITIAL_STREAM_WINDOW + 17;
      const echoes = Array.from({ length: 8 }, (_, k) => {
        const stream = session.openStream();
        const sent = pattern(100 + k, size);
        const echoed = readAll(stream, `echo of stream ${stream.id}`);
        stream.end(sent);
        return echoed.then((got) => assert.ok(got.equals(sent), `stream ${stream.id} echo is intact`));
      });
      await within(Promise.all(echoes), 'all echoes');
      await until(() => fromGo.length === serverOpens, 'the Go server opened its streams');
      await within(Promise.all(fromGo), 'streams opened by Go');

      const rtt = await within(session.ping(), 'ping answered by Go');
      assert.ok(rtt >= 0);
      await until(() => session.stats.pingsReceived >= 2, 'Go keepalive pings answered');
      await until(() => session.numStreams === 0, 'every stream finished both ways');

      session.close();
      assert.equal(await within(peer.exited, 'Go server exit after our GoAway and close'), 0);
      assert.match(peer.stdout(), /SESSION-END/);
    } finally {
      killChild(peer.child);
    }
  });

  it('the Go client against our server: echoes beyond the window, half-close, pings both ways', async (t) => {
    if (build.skipReason !== undefined) return skipOrFail(t, build.skipReason);
    const server = net.createServer();
    closers.push(() => server.close());
    const sessions: YamuxSession[] = [];
    const ourPings: Array<Promise<number>> = [];
    server.on('connection', (socket) => {
      // A window larger than yamux's default, as STREAM_WINDOW_BYTES allows: announced with each ACK.
      const session = new YamuxSession(socket, 'server', { streamWindowBytes: 1024 * 1024 });
      socket.on('error', () => {});
      closers.push(() => session.destroy());
      sessions.push(session);
      ourPings.push(session.ping());
      session.on('stream', (stream) => {
        stream.on('error', () => {});
        stream.pipe(stream); // echo; the Go client's FIN ends it, and our FIN follows
      });
    });
    server.listen(0, '127.0.0.1');
    await within(once(server, 'listening'), 'listen');
    const { port } = server.address() as net.AddressInfo;

    const size = 3 * INITIAL_STREAM_WINDOW + 5;
    const address = `127.0.0.1:${port}`;
    const peer = startPeer(build.binary, ['client', address, '-streams', '16', '-bytes', String(size), '-ping']);
    try {
      const code = await within(peer.exited, 'Go client to finish');
      assert.equal(code, 0, `Go client: ${peer.stdout()} ${peer.stderr()}`);
      assert.match(peer.stdout(), /^OK streams=16 /m);
      const session = sessions[0] as YamuxSession;
      assert.equal(session.stats.streamsAccepted, 16);
      assert.ok(session.stats.pingsReceived >= 1, 'the Go client pinged us');
      assert.ok((await within(ourPings[0] as Promise<number>, 'our ping answered by Go')) >= 0);
      await until(() => session.closed, 'session closed when the Go client left');
    } finally {
      killChild(peer.child);
    }
  });
});
