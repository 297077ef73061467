import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import {
  YamuxError,
  YamuxSession,
  defaultYamuxOptions,
  type YamuxCloseReason,
  type YamuxSessionOptions,
  type YamuxStream,
} from '../../../src/engines/relay/yamux/session.js';
import {
  Flag,
  FrameType,
  GoAwayCode,
  HEADER_SIZE,
  INITIAL_STREAM_WINDOW,
  YamuxDecoder,
  encodeDataFrame,
  encodePing,
  encodeWindowUpdate,
  type YamuxFrame,
} from '../../../src/protocols/yamux.js';

const WAIT_MS = 5_000;
const opened: Array<{ destroy(): void }> = [];
after(() => {
  for (const thing of opened) thing.destroy();
});

function within<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await delay(5);
  }
}

/** Two connected TCP sockets on 127.0.0.1 with an OS-chosen port. */
async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await within(once(server, 'listening'), 'listen');
  const { port } = server.address() as net.AddressInfo;
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const client = net.connect(port, '127.0.0.1');
  const [[serverSide]] = await within(Promise.all([accepted, once(client, 'connect')]), 'connect');
  server.close();
  opened.push(client, serverSide);
  return [client, serverSide];
}

async function sessionPair(
  options: Partial<YamuxSessionOptions> = {},
): Promise<{ client: YamuxSession; server: YamuxSession }> {
  const [a, b] = await socketPair();
  const client = new YamuxSession(a, 'client', options);
  const server = new YamuxSession(b, 'server', options);
  opened.push(client, server);
  return { client, server };
}

/** A raw peer: a socket whose frames we decode ourselves, to send what a well-behaved session never would. */
async function rawPeer(role: 'client' | 'server', options: Partial<YamuxSessionOptions> = {}) {
  const [raw, other] = await socketPair();
  const session = new YamuxSession(other, role, options);
  opened.push(session);
  const decoder = new YamuxDecoder();
  const frames: YamuxFrame[] = [];
  raw.on('data', (chunk: Buffer) => frames.push(...decoder.push(chunk).frames));
  raw.on('error', () => {});
  return { raw, session, frames, transport: other };
}

function pattern(seed: number, size: number): Buffer {
  const bytes = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 7 + seed) & 0xff;
  return bytes;
}

function readAll(stream: Duplex, what = 'stream end'): Promise<Buffer> {
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

function echo(stream: YamuxStream): void {
  stream.on('error', () => {});
  stream.pipe(stream);
}

function closeOf(session: YamuxSession): Promise<[YamuxCloseReason, Error | undefined]> {
  return within(once(session, 'close') as Promise<[YamuxCloseReason, Error | undefined]>, 'session close');
}

describe('yamux session', () => {
  it('defaultYamuxOptions matches yamux DefaultConfig where they overlap', () => {
    const options = defaultYamuxOptions();
    assert.equal(options.streamWindowBytes, 262144);
    assert.equal(options.acceptBacklog, 256);
    assert.equal(options.keepAliveIntervalMs, 30_000);
    assert.throws(() => new YamuxSession(new net.Socket(), 'client', { streamWindowBytes: 1000 }), {
      code: 'SWB_ERR_CONFIG',
    });
  });

  it('many concurrent streams with transfers larger than the window arrive intact, both ways', async () => {
    const { client, server } = await sessionPair();
    server.on('stream', echo);
    client.on('stream', echo);
    const size = 1024 * 1024 + 123;
    const transfers: Array<Promise<void>> = [];
    const ids: number[] = [];
    for (let k = 0; k < 16; k++) {
      const opener = k % 4 === 3 ? server : client;
      const stream = opener.openStream();
      ids.push(stream.id);
      const sent = pattern(k, size);
      const received = readAll(stream, `echo of stream ${stream.id}`);
      stream.end(sent);
      transfers.push(received.then((got) => assert.ok(got.equals(sent), `stream ${stream.id} echo differs`)));
    }
    await within(Promise.all(transfers), 'all transfers');
    assert.ok(ids.filter((_, k) => k % 4 !== 3).every((id) => id % 2 === 1), 'client ids are odd');
    assert.ok(ids.filter((_, k) => k % 4 === 3).every((id) => id % 2 === 0), 'server ids are even');
    await until(() => client.numStreams === 0 && server.numStreams === 0, 'streams forgotten after both FINs');
    assert.ok(client.stats.bytesOut > 12 * size, 'transport bytes are counted');
    assert.equal(server.stats.bytesIn, client.stats.bytesOut);
  });

  it('a stream whose reader stops blocks neither other streams nor grows the sender beyond the window', async () => {
    const { client, server } = await sessionPair();
    const accepted: YamuxStream[] = [];
    server.on('stream', (stream) => {
      stream.on('error', () => {});
      accepted.push(stream);
    });
    const stalled = client.openStream();
    const flowing = client.openStream();
    stalled.on('error', () => {});

    // Keep offering the stalled stream data for as long as it takes: write() must say "stop" and stay that way.
    const stalledSent = pattern(1, 4 * INITIAL_STREAM_WINDOW);
    let offered = 0;
    const offer = (): void => {
      while (offered < stalledSent.length) {
        const chunk = stalledSent.subarray(offered, offered + 16 * 1024);
        offered += chunk.length;
        if (!stalled.write(chunk)) return;
      }
      stalled.end();
    };
    stalled.on('drain', offer);
    offer();

    await until(() => accepted.length === 2, 'both streams accepted');
    const [stalledPeer, flowingPeer] = accepted as [YamuxStream, YamuxStream];
    const flowingSize = 8 * 1024 * 1024;
    const flowingReceived = readAll(flowingPeer, 'flowing stream');
    flowing.end(pattern(2, flowingSize));
    const got = await flowingReceived;
    assert.equal(got.length, flowingSize, 'the other stream finished while one reader was stopped');

    // The stalled stream stopped at the window: the peer holds it, nobody granted more, the sender holds one chunk.
    assert.equal(stalled.bytesOut, INITIAL_STREAM_WINDOW);
    assert.equal(stalled.sendWindow, 0, 'no window update while the consumer does not read');
    assert.equal(stalledPeer.receiveQueued, INITIAL_STREAM_WINDOW);
    const buffered = stalled.writableLength;
    assert.ok(buffered <= stalled.writableHighWaterMark + 16 * 1024, `sender buffered ${buffered}`);
    assert.ok(offered < stalledSent.length, 'write() kept saying stop');

    // Reading resumes: window updates flow as the consumer drains and every byte arrives in order.
    const stalledReceived = await readAll(stalledPeer, 'stalled stream after resume');
    assert.ok(stalledReceived.equals(stalledSent));
  });

  it('serves streams round-robin: a small message is not queued behind a large transfer', async () => {
    const { client, server } = await sessionPair({ streamWindowBytes: 16 * 1024 * 1024 });
    const order: string[] = [];
    server.on('stream', (stream) => {
      void readAll(stream).then((data) => order.push(data.length > 100 ? 'large' : 'small'));
    });
    const large = client.openStream();
    large.end(Buffer.alloc(16 * 1024 * 1024, 1));
    await delay(1);
    const small = client.openStream();
    small.end(Buffer.from('ping?'));
    await until(() => order.length === 2, 'both streams read');
    assert.deepEqual(order, ['small', 'large']);
  });

  it('half-close works both ways: each side can keep sending after the other sent FIN', async () => {
    const { client, server } = await sessionPair();
    // Server answers only after the client's FIN, then half-closes itself.
    server.on('stream', (stream) => {
      void readAll(stream).then((request) => {
        stream.write('answer to ');
        stream.end(request);
      });
    });
    const asking = client.openStream();
    const answer = readAll(asking);
    asking.end('question');
    assert.equal((await answer).toString(), 'answer to question');

    // Server half-closes first; the client keeps sending after seeing 'end'.
    server.removeAllListeners('stream');
    const fromClient = new Promise<string>((resolve) => {
      server.once('stream', (stream) => {
        stream.end('bye');
        void readAll(stream).then((data) => resolve(data.toString()));
      });
    });
    const late = client.openStream();
    late.write('hello');
    const told = await readAll(late);
    assert.equal(told.toString(), 'bye');
    late.end(' after your FIN');
    assert.equal(await within(fromClient, 'server reads after its own FIN'), 'hello after your FIN');
    await until(() => client.numStreams === 0 && server.numStreams === 0, 'streams forgotten');
  });

  it('destroy() sends RST: the peer stream errors with stream_reset and the session lives on', async () => {
    const { client, server } = await sessionPair();
    const peerError = new Promise<Error>((resolve) => {
      server.once('stream', (stream) => {
        stream.resume();
        stream.once('error', resolve);
      });
    });
    const stream = client.openStream();
    stream.write('some');
    await delay(20);
    stream.destroy();
    const error = await within(peerError, 'RST at the peer');
    assert.ok(error instanceof YamuxError);
    assert.equal(error.reason, 'stream_reset');
    assert.equal(error.code, 'SWB_ERR_PROTOCOL');
    await until(() => server.numStreams === 0 && client.numStreams === 0, 'reset stream forgotten');
    assert.equal(client.closed || server.closed, false);
  });

  it('refuses streams beyond the accept backlog and beyond maxStreams with RST', async () => {
    const { client, server } = await sessionPair({ acceptBacklog: 2, maxStreams: 3 });
    const results = await Promise.all(
      [0, 1, 2].map((k) => {
        const stream = client.openStream();
        stream.write(`stream ${k}`);
        return new Promise<string>((resolve) => {
          stream.once('error', (error: YamuxError) => resolve(error.reason));
          setTimeout(() => resolve('open'), 300);
        });
      }),
    );
    assert.deepEqual(results, ['open', 'open', 'stream_reset']);
    assert.equal(server.stats.streamsRefused, 1);
    const first = await server.accept();
    assert.equal(first.id, 1);
    // Backlog has room again, but maxStreams (3 open incl. the one we hold, one forgotten) still bounds the total.
    server.on('stream', (stream) => stream.resume());
    const fourth = client.openStream();
    fourth.on('error', () => {});
    await delay(100);
    assert.equal(server.numStreams, 3);
    assert.throws(() => client.openStream(), { reason: 'too_many_streams' });
  });

  it('GoAway: no new streams, existing ones continue; close() sends GoAway and ends the transport', async () => {
    const { client, server } = await sessionPair();
    server.on('stream', echo);
    const before = client.openStream();
    before.write('opened ');
    await until(() => server.numStreams === 1, 'stream accepted before the GoAway');
    const goaway = within(once(client, 'goaway'), 'goaway');
    server.goAway();
    assert.deepEqual(await goaway, [GoAwayCode.Normal]);
    assert.throws(() => client.openStream(), { reason: 'remote_go_away' });
    const echoed = readAll(before);
    before.end('still served');
    assert.equal((await echoed).toString(), 'opened still served');

    const serverClosed = closeOf(server);
    const clientClosed = closeOf(client);
    client.close();
    assert.deepEqual(await clientClosed, ['local', undefined]);
    assert.equal((await serverClosed)[0], 'transport_end');
    assert.equal(server.remoteGoAway, true, 'the GoAway of close() arrived before the end');
  });

  it('a stream opened while GoAway is in flight is refused with RST', async () => {
    const { client, server } = await sessionPair();
    server.goAway();
    const stream = client.openStream(); // the GoAway has not arrived yet
    const error = await within(once(stream, 'error') as Promise<[YamuxError]>, 'RST');
    assert.equal(error[0].reason, 'stream_reset');
  });

  it('drain() waits for open streams to finish, then closes', async () => {
    const { client, server } = await sessionPair();
    const accepted: YamuxStream[] = [];
    server.on('stream', (stream) => accepted.push(stream));
    const stream = client.openStream();
    stream.write('x');
    await until(() => accepted.length === 1, 'accepted');
    let drained = false;
    const draining = server.drain(WAIT_MS).then(() => (drained = true));
    await delay(50);
    assert.equal(drained, false, 'drain waits for the open stream');
    const peer = accepted[0] as YamuxStream;
    peer.resume();
    peer.end();
    stream.resume();
    stream.end();
    await within(draining, 'drain');
    assert.equal(server.closeReason, 'local');
  });

  it('answers pings, measures RTT, and keeps an answered session alive', async () => {
    const { client, server } = await sessionPair({ keepAliveIntervalMs: 20 });
    const rtt = await within(client.ping(), 'ping');
    assert.ok(rtt >= 0 && rtt < 1000);
    await delay(150);
    assert.ok(server.stats.pingsAnswered >= 3, `keepalive pings answered: ${server.stats.pingsAnswered}`);
    assert.equal(client.closed || server.closed, false);
  });

  it('closes a session whose peer does not answer keepalive pings', async () => {
    const { raw, session, frames } = await rawPeer('client', { keepAliveIntervalMs: 30, pingTimeoutMs: 100 });
    const [reason, error] = await closeOf(session);
    assert.equal(reason, 'keepalive_timeout');
    assert.equal((error as YamuxError).reason, 'ping_timeout');
    assert.ok(frames.some((f) => f.header.type === FrameType.Ping && f.header.flags === Flag.SYN));
    raw.destroy();
  });

  it('answers a raw ping with ACK and the same opaque value', async () => {
    const { raw, frames } = await rawPeer('server');
    raw.write(encodePing(Flag.SYN, 0xcafe));
    await until(() => frames.length > 0, 'ping reply');
    const reply = { version: 0, type: FrameType.Ping, flags: Flag.ACK, streamId: 0, length: 0xcafe };
    assert.deepEqual(frames[0]?.header, reply);
  });

  it('a peer exceeding the window gets GoAway(protocol error) and the session closes', async () => {
    const { raw, session, frames } = await rawPeer('server');
    const streams: YamuxStream[] = [];
    session.on('stream', (stream) => {
      stream.on('error', () => {});
      streams.push(stream); // never read: the window is all the peer may send
    });
    const closed = closeOf(session);
    const ended = within(once(raw, 'end'), 'transport ended');
    raw.write(encodeDataFrame(1, Flag.SYN, Buffer.alloc(INITIAL_STREAM_WINDOW - 10)));
    raw.write(encodeDataFrame(1, 0, Buffer.alloc(11)));
    const [reason, error] = await closed;
    assert.equal(reason, 'protocol_error');
    assert.equal((error as YamuxError).reason, 'protocol');
    await until(() => frames.some((f) => f.header.type === FrameType.GoAway), 'GoAway frame');
    const ack = frames[0];
    assert.equal(ack?.header.flags, Flag.ACK, 'the stream was acknowledged at once');
    const goAway = frames.find((f) => f.header.type === FrameType.GoAway);
    assert.equal(goAway?.header.length, GoAwayCode.ProtocolError);
    await ended;
    assert.equal(streams[0]?.destroyed, true);
  });

  it('bad bytes and a SYN on the wrong parity are protocol errors', async () => {
    const bad = await rawPeer('server');
    const badClosed = closeOf(bad.session);
    bad.raw.write(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    assert.equal((await badClosed)[0], 'protocol_error');

    const parity = await rawPeer('server');
    const parityClosed = closeOf(parity.session);
    parity.raw.write(encodeWindowUpdate(2, Flag.SYN, 0)); // a client must use odd ids
    assert.equal((await parityClosed)[0], 'protocol_error');
  });

  it('bounds what it queues on a transport the peer stops reading, and closes it as stalled', async () => {
    const writeQueueBytes = 64 * 1024;
    const maxFrameBytes = 16 * 1024;
    const { raw, session, transport } = await rawPeer('server', { writeQueueBytes, maxFrameBytes, writeTimeoutMs: 300 });
    session.on('stream', (stream) => {
      stream.on('error', () => {});
      stream.write(Buffer.alloc(64 * 1024 * 1024, 7)); // far more than the kernel buffers of a loopback socket
    });
    // Open a stream, grant it a huge window, then stop reading.
    raw.write(encodeWindowUpdate(1, Flag.SYN, 0xffffffff - INITIAL_STREAM_WINDOW));
    raw.pause();
    let largest = 0;
    const sampler = setInterval(() => (largest = Math.max(largest, transport.writableLength)), 1);
    try {
      const [reason] = await closeOf(session);
      assert.equal(reason, 'write_stalled');
    } finally {
      clearInterval(sampler);
    }
    const bound = Math.max(writeQueueBytes, transport.writableHighWaterMark) + maxFrameBytes + HEADER_SIZE;
    assert.ok(largest > 0 && largest <= bound, `queued at most ${largest} bytes (bound ${bound})`);
  });

  it('ignores frames for streams it no longer knows, and counts transport bytes', async () => {
    const { raw, session } = await rawPeer('server');
    raw.write(encodeDataFrame(41, 0, Buffer.from('late')));
    raw.write(encodeWindowUpdate(43, Flag.FIN, 0));
    raw.write(encodePing(Flag.SYN, 1));
    await until(() => session.stats.framesIn === 3, 'frames read');
    assert.equal(session.closed, false);
    assert.equal(session.stats.bytesIn, 3 * HEADER_SIZE + 4);
    await until(() => session.stats.bytesOut === HEADER_SIZE, 'ping reply written');
  });

  it('closes when the transport ends and resets the streams it held', async () => {
    const { raw, session } = await rawPeer('server');
    const streamError = new Promise<YamuxError>((resolve) => session.once('stream', (s) => s.once('error', resolve)));
    raw.write(encodeWindowUpdate(1, Flag.SYN, 0));
    await delay(20);
    raw.end();
    assert.equal((await closeOf(session))[0], 'transport_end');
    assert.equal((await within(streamError, 'stream error')).reason, 'session_closed');
  });
});
