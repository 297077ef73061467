/**
 * relay bounds and failure paths over loopback (DESIGN §7): visitors waiting for an absent agent are closed after
 * VISITOR_WAIT_MS, and beyond MAX_WAITING_VISITORS at once; malformed yamux frames close only the session that sent them;
 * a relay process given SIGTERM sends GoAway and lets an open visitor stream finish; bytes that never open a muxado v1
 * stream hold no public port.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { MAX_WAITING_VISITORS } from '../../../src/engines/relay/public-port.js';
import { Muxado1Session } from '../../../src/engines/relay/muxado1/session.js';
import { PREAMBLE } from '../../../src/engines/relay/control/messages.js';
import { encodeWindowUpdate, Flag, GoAwayCode, HEADER_SIZE, INITIAL_STREAM_WINDOW } from '../../../src/protocols/yamux.js';
import { LOOPBACK, metric, sleep, waitFor } from '../../helpers.js';
import { echo, fileCleanups, freePort, RawAgent, SECRET, startAgent, startRelay, startService, waitBound, type TestApp } from './relay-helpers.js';

const ROOT = new URL('../../..', import.meta.url).pathname;
const { cleanups, track } = fileCleanups();

type Tunnels = { tunnels: Array<{ publicPort: number; state: string; waitingVisitors: number; protocol: string }> };
const tunnelsOf = (relay: TestApp): Tunnels['tunnels'] => (relay.engine.status() as Tunnels).tunnels;

/** A visitor socket that records when it was closed. */
async function visit(port: number): Promise<{ socket: Socket; closedAt: () => number | undefined }> {
  const socket = connect({ port, host: LOOPBACK });
  socket.on('error', () => {});
  let closedAt: number | undefined;
  socket.once('close', () => (closedAt = Date.now()));
  socket.resume();
  await once(socket, 'connect');
  return { socket, closedAt: () => closedAt };
}

/** An agent bound on the relay that then leaves: its port is leased and visitors wait. Returns the port. */
async function leaseWithAgentAway(relay: TestApp): Promise<number> {
  const raw = await RawAgent.connect(relay);
  const bound = await raw.bind(SECRET);
  assert.equal(bound.type, 'bound');
  raw.close();
  await waitFor(() => tunnelsOf(relay)[0]?.state === 'away', 'relay sees the agent away');
  return bound.type === 'bound' ? bound.port : 0;
}

/** GoAway codes in what the relay wrote on a raw agent connection (data frames skipped by their length). */
function goAwayCodes(bytes: Buffer): number[] {
  const codes: number[] = [];
  for (let offset = 0; offset + HEADER_SIZE <= bytes.length; ) {
    const type = bytes[offset + 1]!;
    const length = bytes.readUInt32BE(offset + 8);
    if (type === 3) codes.push(length);
    offset += HEADER_SIZE + (type === 0 ? length : 0);
  }
  return codes;
}

/** A yamux header written byte by byte (version, type, flags, stream id, length), so it can be wrong on purpose. */
function rawHeader(version: number, type: number, flags: number, streamId: number, length: number): Buffer {
  const header = Buffer.alloc(HEADER_SIZE);
  header[0] = version;
  header[1] = type;
  header.writeUInt16BE(flags, 2);
  header.writeUInt32BE(streamId, 4);
  header.writeUInt32BE(length, 8);
  return header;
}

describe('relay bounds and failure paths', { timeout: 60_000 }, () => {
  it('visitors waiting for an absent agent are closed after VISITOR_WAIT_MS when it does not come back', async () => {
    const relay = track(await startRelay({ LEASE_TTL_MS: '10000', VISITOR_WAIT_MS: '400' }));
    const port = await leaseWithAgentAway(relay);
    const arrived = Date.now();
    const visitors = await Promise.all([visit(port), visit(port), visit(port)]);
    await waitFor(() => tunnelsOf(relay)[0]?.waitingVisitors === 3, 'three visitors waiting');
    await sleep(200);
    assert.ok(visitors.every((v) => v.closedAt() === undefined), 'still waiting before VISITOR_WAIT_MS');
    await waitFor(() => visitors.every((v) => v.closedAt() !== undefined), 'waiting visitors closed', 3000);
    for (const v of visitors) assert.ok(v.closedAt()! - arrived >= 380, `closed after ${v.closedAt()! - arrived} ms, not before VISITOR_WAIT_MS`);
    assert.equal(tunnelsOf(relay)[0]!.waitingVisitors, 0);
    assert.equal(await metric(relay, 'switchboard_connections_rejected_total', { reason: 'visitor_wait_timeout' }), 3);
    assert.equal(tunnelsOf(relay)[0]!.state, 'away', 'the lease itself is still kept');
  });

  it(`at most MAX_WAITING_VISITORS (${MAX_WAITING_VISITORS}) visitors wait per port; the next one is closed at once`, async () => {
    const relay = track(await startRelay({ LEASE_TTL_MS: '20000', VISITOR_WAIT_MS: '15000', MAX_CLIENTS: '1000' }));
    const port = await leaseWithAgentAway(relay);
    const waiting: Array<Awaited<ReturnType<typeof visit>>> = [];
    for (let i = 0; i < MAX_WAITING_VISITORS; i++) waiting.push(await visit(port));
    cleanups.push(() => waiting.forEach((v) => v.socket.destroy()));
    await waitFor(() => tunnelsOf(relay)[0]?.waitingVisitors === MAX_WAITING_VISITORS, `${MAX_WAITING_VISITORS} visitors waiting`);
    const started = Date.now();
    const extra = await visit(port);
    await waitFor(() => extra.closedAt() !== undefined, 'the visitor beyond the bound is closed', 2000);
    assert.ok(extra.closedAt()! - started < 1000, `closed at once (${extra.closedAt()! - started} ms)`);
    assert.equal(await metric(relay, 'switchboard_connections_rejected_total', { reason: 'agent_away' }), 1);
    assert.equal(tunnelsOf(relay)[0]!.waitingVisitors, MAX_WAITING_VISITORS);
    assert.ok(waiting.every((v) => v.closedAt() === undefined), 'the waiting ones keep waiting');
  });

  it('malformed yamux frames close that session only, with GoAway(protocol error); another tunnel keeps working', async () => {
    const service = await startService(echo);
    cleanups.push(() => service.close());
    const relay = track(await startRelay());
    const agent = track(await startAgent(relay, service.port));
    const port = await waitBound(agent);
    // One visitor stream kept open across all the bad sessions.
    const visitor = connect({ port, host: LOOPBACK });
    visitor.on('error', () => {});
    await once(visitor, 'connect');
    let echoed = '';
    visitor.on('data', (chunk: Buffer) => (echoed += chunk.toString()));

    const cases: Array<{ name: string; bytes: Buffer }> = [
      { name: 'bad version', bytes: rawHeader(1, 1, Flag.SYN, 1, 0) },
      { name: 'unknown type', bytes: rawHeader(0, 7, 0, 0, 0) },
      // A data frame longer than the window the relay granted for the stream (STREAM_WINDOW_BYTES, 256 KiB here).
      { name: 'data beyond the stream window', bytes: rawHeader(0, 0, Flag.SYN, 1, INITIAL_STREAM_WINDOW + 1) },
      // The send window the agent grants the relay must stay below 2^32.
      { name: 'window update overflow', bytes: Buffer.concat([encodeWindowUpdate(1, Flag.SYN, 0), encodeWindowUpdate(1, 0, 0xffff_ffff)]) },
    ];
    for (const [index, bad] of cases.entries()) {
      const socket = connect({ port: relay.port('relay'), host: LOOPBACK });
      socket.on('error', () => {});
      const received: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => received.push(chunk));
      await once(socket, 'connect');
      socket.write(Buffer.concat([PREAMBLE, bad.bytes]));
      const closed = once(socket, 'close');
      await Promise.race([closed, sleep(3000).then(() => assert.fail(`${bad.name}: session not closed within 3 s`))]);
      assert.deepEqual(goAwayCodes(Buffer.concat(received)), [GoAwayCode.ProtocolError], `${bad.name}: GoAway(protocol error)`);

      const line = `still here ${index}\n`;
      const before = echoed.length;
      visitor.write(line);
      await waitFor(() => echoed.length === before + line.length, `${bad.name}: the other tunnel's open stream still echoes`);
      assert.ok(agent.engine.ready);
    }
    assert.equal(tunnelsOf(relay).length, 1);
    assert.equal(tunnelsOf(relay)[0]!.state, 'connected');
    visitor.destroy();
  });

  it('SIGTERM on a relay process: GoAway to the agent, the open visitor stream finishes, then exit 0', async () => {
    const service = await startService(echo);
    cleanups.push(() => service.close());
    const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/tmp',
        MODE: 'relay',
        HOST: LOOPBACK,
        HTTP_PORT: 'off',
        RELAY_PORT: '0',
        PUBLIC_PORTS: '0',
        AUTH_SECRET: SECRET,
        SHUTDOWN_GRACE_MS: '5000',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    cleanups.push(() => child.exitCode === null && child.kill('SIGKILL'));
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const logLines = (): Array<Record<string, unknown>> =>
      stderr
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    await waitFor(() => logLines().some((l) => l.msg === 'ready'), 'relay process ready', 20_000);
    const listeners = logLines().find((l) => l.msg === 'ready')!.listeners as Array<{ name: string; port: number }>;
    const relayPort = listeners.find((l) => l.name === 'relay')!.port;

    const raw = await RawAgent.connect({ port: () => relayPort } as unknown as TestApp);
    cleanups.push(() => raw.close());
    const bound = await raw.bind(SECRET);
    assert.equal(bound.type, 'bound');
    const publicPort = bound.type === 'bound' ? bound.port : 0;
    let goAwayAt: number | undefined;
    raw.session.once('goaway', () => (goAwayAt = Date.now()));

    const visitor = connect({ port: publicPort, host: LOOPBACK, allowHalfOpen: true });
    visitor.on('error', () => {});
    await once(visitor, 'connect');
    let got = '';
    visitor.on('data', (chunk: Buffer) => (got += chunk.toString()));
    visitor.write('before');
    await waitFor(() => got === 'before', 'first echo');

    let exitCode: number | null | undefined;
    child.once('exit', (code) => (exitCode = code));
    child.kill('SIGTERM');
    await waitFor(() => goAwayAt !== undefined, 'GoAway from the draining relay');
    assert.ok(raw.session.remoteGoAway);
    assert.equal(exitCode, undefined, 'the relay waits for the open stream');
    // No new visitors during the drain.
    const late = connect({ port: publicPort, host: LOOPBACK });
    const refused = await new Promise<boolean>((resolve) => {
      late.once('error', () => resolve(true));
      late.once('close', () => resolve(true));
      late.once('data', () => resolve(false));
      setTimeout(() => resolve(false), 2000);
    });
    late.destroy();
    assert.ok(refused, 'a visitor arriving during the drain is not served');
    // The open stream still carries bytes both ways and finishes with FIN.
    visitor.end('after');
    await once(visitor, 'end');
    assert.equal(got, 'beforeafter', 'the open stream finished during the drain');
    await waitFor(() => exitCode !== undefined, 'relay exits once the stream finished', 10_000);
    assert.equal(exitCode, 0);
    assert.ok(logLines().some((l) => l.msg === 'draining'));
  });

  it('legacy sessions take a pool port only once the service opens its first stream', async () => {
    const only = await freePort();
    // A short lease: the agent below leaves and its port must come back to the pool within the test's wait.
    const relay = track(
      await startRelay({ AUTH: 'none', AUTH_SECRET: '', PUBLIC_PORTS: `${only}-${only}`, RELAY_LEGACY: 'auto', LEASE_TTL_MS: '200' }),
    );
    // Not the preamble, so a legacy session; but half a muxado v1 header and then nothing: no stream, no port.
    const idle = connect({ port: relay.port('relay'), host: LOOPBACK });
    idle.on('error', () => {});
    await once(idle, 'connect');
    idle.write(Buffer.from([0x00, 0x00, 0x00]));
    await sleep(300);
    assert.deepEqual(tunnelsOf(relay), [], 'no port held for bytes that are not a stream');

    // The only port of the pool is still free for a switchboard agent…
    const agent = await RawAgent.connect(relay);
    const bound = await agent.bind('');
    assert.equal(bound.type === 'bound' && bound.port, only);
    agent.close();
    await waitFor(() => tunnelsOf(relay).length === 0, 'the agent left, port released');

    // …and a muxado v1 service that opens its first stream gets it, as from tcp-relay.
    const socket = connect({ port: relay.port('relay'), host: LOOPBACK });
    socket.on('error', () => {});
    await once(socket, 'connect');
    const service = new Muxado1Session(socket, { role: 'client', heartbeatIntervalMs: 0 });
    cleanups.push(() => service.close());
    const first = service.openStream();
    assert.ok(!(first instanceof Error));
    let address = '';
    first.on('data', (chunk: Buffer) => (address += chunk.toString('latin1')));
    first.end();
    await once(first, 'end');
    assert.equal(address, `localhost:${only}`);
    await waitFor(() => tunnelsOf(relay)[0]?.protocol === 'muxado1' && tunnelsOf(relay)[0]?.state === 'connected', 'legacy tunnel bound');
    idle.destroy();
  });
});
