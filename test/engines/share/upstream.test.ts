/**
 * share mode upstream kinds (tcp, unix, listen, fifo) and what happens when the upstream goes away and comes back, under
 * both UPSTREAM_LOSS policies.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, constants as fs, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { connect, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { connectTcp, LOOPBACK, metric, Recorder, startApp, waitFor } from '../../helpers.js';
import { FakeUpstream, shareEnv, upstreamState, waitForClients, type ShareApp } from './harness.js';

describe('share mode upstreams', () => {
  const apps: ShareApp[] = [];
  const devices: FakeUpstream[] = [];
  const sockets: Socket[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'swb-share-'));
  after(async () => {
    for (const s of sockets) s.destroy();
    await Promise.all(apps.map((a) => a.stop()));
    await Promise.all(devices.map((d) => d.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(upstream: string, env: Record<string, string> = {}) {
    const app = await startApp(shareEnv(upstream, env));
    apps.push(app);
    return app;
  }

  async function client(app: ShareApp): Promise<Recorder> {
    const socket = await connectTcp(app.port('rw'));
    sockets.push(socket);
    return new Recorder(socket);
  }

  it('unix:/path: dials a unix socket', async () => {
    const device = new FakeUpstream();
    devices.push(device);
    const path = join(dir, 'device.sock');
    await device.listenUnix(path);
    const app = await start(`unix:${path}`);
    const upstream = await device.connected();
    const c = await client(app);
    await waitForClients(app, 1);
    c.socket.write('ping');
    await waitFor(() => device.text === 'ping', 'input at the unix upstream');
    upstream.write('pong');
    await waitFor(() => c.text === 'pong', 'output at the client');
  });

  it('listen:port: the upstream dials in; a second dial-in replaces the first', async () => {
    const app = await start('listen:0');
    assert.equal(upstreamState(app), 'listening');
    const c = await client(app);
    await waitForClients(app, 1);
    c.socket.write('lost'); // nobody to send it to yet: dropped and counted
    await waitFor(async () => (await metric(app, 'switchboard_dropped_bytes_total', { reason: 'upstream_down' })) === 4, 'drop counted');

    const first = new Recorder(await connectTcp(app.port('upstream')));
    sockets.push(first.socket);
    await waitFor(() => upstreamState(app) === 'up', 'first dial-in up');
    first.socket.write('one;');
    await waitFor(() => c.text === 'one;', 'first upstream output at the client');
    c.socket.write('to-first');
    await waitFor(() => first.text === 'to-first', 'input at the first upstream');

    const second = new Recorder(await connectTcp(app.port('upstream')));
    sockets.push(second.socket);
    await waitFor(() => first.closed, 'the first dial-in to be closed');
    assert.equal(upstreamState(app), 'up');
    second.socket.write('two;');
    await waitFor(() => c.text === 'one;two;', 'second upstream output at the client');
    c.socket.write('to-second');
    await waitFor(() => second.text === 'to-second', 'input at the second upstream');
    assert.equal(first.text, 'to-first');
    assert.equal(await metric(app, 'switchboard_upstream_reconnects_total'), 1);
    assert.ok(app.engine.listeners().some((l) => l.name === 'upstream'));

    second.socket.destroy();
    await waitFor(() => upstreamState(app) === 'listening', 'back to listening after the dial-in left');
    assert.equal(await metric(app, 'switchboard_upstream_up'), 0);
    assert.equal(c.closed, false, 'UPSTREAM_LOSS=keep keeps the client');
  });

  it('fifo:/path/up,/path/down: reads down, writes up, reopens down at EOF', async () => {
    const up = join(dir, 'up');
    const down = join(dir, 'down');
    execFileSync('mkfifo', [up, down]);
    const app = await start(`fifo:${up},${down}`);
    const c = await client(app);
    await waitForClients(app, 1);
    // The device: reads `up`, writes `down`. Opening `up` for reading lets switchboard open it for writing.
    const deviceIn = new Socket({ fd: openSync(up, fs.O_RDONLY | fs.O_NONBLOCK), readable: true, writable: false });
    const deviceInput: Buffer[] = [];
    deviceIn.on('data', (chunk: Buffer) => deviceInput.push(chunk));
    deviceIn.on('error', () => {});
    sockets.push(deviceIn);
    await waitFor(() => upstreamState(app) === 'up', 'the up FIFO opened');
    c.socket.write('typed');
    await waitFor(() => Buffer.concat(deviceInput).toString() === 'typed', 'input through the up FIFO');

    for (const round of ['first', 'second']) {
      // Each writer opens `down`, writes and closes: switchboard sees EOF and reopens for the next one.
      const fd = openSync(down, fs.O_WRONLY | fs.O_NONBLOCK);
      const deviceOut = new Socket({ fd, readable: false, writable: true });
      deviceOut.end(`${round};`);
      await once(deviceOut, 'close');
      await waitFor(() => c.text.includes(`${round};`), `${round} writer's output at the client`);
      // Wait for switchboard to reopen `down` before the next writer (ENXIO otherwise).
      await waitFor(() => {
        try {
          closeSync(openSync(down, fs.O_WRONLY | fs.O_NONBLOCK));
          return true;
        } catch {
          return false;
        }
      }, 'down reopened');
    }
    assert.equal(c.text, 'first;second;');
  });

  it('fifo: paths that do not exist yet (or are not FIFOs) are retried until they work', async () => {
    const up = join(dir, 'late-up');
    const down = join(dir, 'late-down');
    writeFileSync(down, 'a regular file, not a FIFO');
    const app = await start(`fifo:${up},${down}`);
    await waitFor(() => /ENOENT/.test((app.engine.status() as { upstream: { lastError: string | null } }).upstream.lastError ?? ''), 'ENOENT in lastError');
    assert.notEqual(upstreamState(app), 'up');
    rmSync(down);
    execFileSync('mkfifo', [up, down]);
    const deviceIn = new Socket({ fd: openSync(up, fs.O_RDONLY | fs.O_NONBLOCK), readable: true, writable: false });
    deviceIn.on('error', () => {});
    sockets.push(deviceIn);
    await waitFor(() => upstreamState(app) === 'up', 'up once the FIFO exists and has a reader');
    const c = await client(app);
    await waitForClients(app, 1);
    await waitFor(() => {
      try {
        const out = new Socket({ fd: openSync(down, fs.O_WRONLY | fs.O_NONBLOCK), readable: false, writable: true });
        out.end('hello');
        return true;
      } catch {
        return false; // switchboard has not reopened `down` as a FIFO yet
      }
    }, 'down opened as a FIFO');
    await waitFor(() => c.text === 'hello', 'output through the late FIFO');
  });

  for (const policy of ['keep', 'disconnect'] as const) {
    it(`the upstream goes away and comes back (UPSTREAM_LOSS=${policy})`, async () => {
      const device = new FakeUpstream();
      devices.push(device);
      const port = await device.listenTcp();
      const app = await start(`tcp:127.0.0.1:${port}`, { UPSTREAM_LOSS: policy });
      await device.connected();
      await waitFor(() => upstreamState(app) === 'up', 'upstream up');
      const c = await client(app);
      await waitForClients(app, 1);
      device.socket!.write('before;');
      await waitFor(() => c.text === 'before;', 'output before the loss');

      await device.goAway();
      await waitFor(async () => (await metric(app, 'switchboard_upstream_up')) === 0, 'upstream_up 0');
      assert.notEqual(upstreamState(app), 'up');
      if (policy === 'keep') {
        c.socket.write('during');
        await waitFor(async () => (await metric(app, 'switchboard_dropped_bytes_total', { reason: 'upstream_down' })) === 6, 'outage input dropped and counted');
        assert.equal(c.closed, false);
      } else {
        await waitFor(() => c.closed, 'the client to be disconnected');
        const refused = new Recorder(await connectTcp(app.port('rw')));
        sockets.push(refused.socket);
        await waitFor(() => refused.closed, 'a new client closed at once while the upstream is away');
        assert.equal(await metric(app, 'switchboard_connections_rejected_total', { reason: 'upstream_down' }), 1);
      }
      await waitFor(() => /ECONNREFUSED/.test((app.engine.status() as { upstream: { lastError: string | null } }).upstream.lastError ?? ''), 'the refused redial in lastError');

      // The device comes back on the same port; switchboard redials with backoff.
      device.server.listen({ host: LOOPBACK, port });
      await once(device.server, 'listening');
      await device.connected(2);
      await waitFor(() => upstreamState(app) === 'up', 'upstream up again');
      const after = policy === 'keep' ? c : await client(app);
      await waitForClients(app, 1);
      device.socket!.write('after;');
      await waitFor(() => after.text.endsWith('after;'), 'the stream resumes');
      assert.equal(after.text, policy === 'keep' ? 'before;after;' : 'after;');
      after.socket.write('back');
      await waitFor(() => device.text === 'back', 'input reaches the new link; outage input is not replayed');
      assert.ok((await metric(app, 'switchboard_upstream_reconnects_total')) >= 1);
    });
  }

  it('the upstream dialled before it exists: /readyz-ready at once, up when it appears', async () => {
    const device = new FakeUpstream();
    devices.push(device);
    const port = await device.listenTcp();
    await device.close();
    const app = await start(`tcp:127.0.0.1:${port}`);
    assert.equal(app.engine.ready, true, 'ready while the upstream is unreachable (DESIGN §2)');
    await waitFor(() => upstreamState(app) === 'backoff', 'backoff after a refused dial');
    const http = `http://127.0.0.1:${app.port('http')}`;
    assert.equal((await fetch(`${http}/readyz`)).status, 200);
    const status = (await (await fetch(`${http}/status`)).json()) as { mode: string; upstream: { target: string; state: string; since: string } };
    assert.equal(status.mode, 'share');
    assert.equal(status.upstream.target, `tcp:127.0.0.1:${port}`);
    assert.ok(['backoff', 'connecting'].includes(status.upstream.state));
    assert.ok(!Number.isNaN(Date.parse(status.upstream.since)));
    const lastError = (app.engine.status() as { upstream: { lastError: string } }).upstream.lastError;
    assert.match(lastError, /ECONNREFUSED/);
    device.server.listen({ host: LOOPBACK, port });
    await once(device.server, 'listening');
    await device.connected();
    await waitFor(() => upstreamState(app) === 'up', 'up once the device listens');
  });

  it('a client that half-closes or resets never disturbs the upstream link', async () => {
    const device = new FakeUpstream();
    devices.push(device);
    const port = await device.listenTcp();
    const app = await start(`tcp:127.0.0.1:${port}`);
    await device.connected();
    const s = connect({ host: LOOPBACK, port: app.port('rw') });
    await once(s, 'connect');
    s.resetAndDestroy();
    await waitForClients(app, 0);
    // Half-close (what `nc` does when its stdin ends): the client is disconnected (README), the upstream stays.
    const halfClosed = new Recorder(await connectTcp(app.port('rw')));
    sockets.push(halfClosed.socket);
    await waitForClients(app, 1);
    halfClosed.socket.end('last words');
    await waitFor(() => halfClosed.closed, 'the half-closed client to be closed');
    await waitForClients(app, 0);
    await waitFor(() => device.text === 'last words', 'its last bytes still reach the upstream');
    assert.equal(upstreamState(app), 'up');
    assert.equal(device.connections, 1);
  });
});
