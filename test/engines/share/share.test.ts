/**
 * share mode over loopback (DESIGN §6): what every client receives, where client bytes go, read-only clients, replay, and
 * the status/metrics that show it. A fake device plays the upstream. Assertions are on bytes and counters, never on timing.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { metric, Recorder, waitFor } from '../../helpers.js';
import { Digest, MB, pattern, sha256, ShareFixture, waitForClients, type ShareApp } from './harness.js';

describe('share mode', () => {
  const fixture = new ShareFixture();
  after(() => fixture.close());
  const setup = (env: Record<string, string> = {}) => fixture.setup(env);
  const client = (app: ShareApp, listener = 'rw') => fixture.client(app, listener);

  it('every client receives every upstream byte, in order, identical to what the device sent', async () => {
    // This test is about order and equality, not SLOW_CLIENT: loopback kernel buffers differ per socket by megabytes, so
    // under load a reading client can sit more than the 256 KiB default behind another (see README, flow control).
    const { app, device } = await setup({ CLIENT_BUFFER_BYTES: String(32 * MB) });
    const clients: Digest[] = [];
    for (let i = 0; i < 5; i++) clients.push(new Digest((await client(app)).socket));
    await waitForClients(app, 5);
    const total = 8 * MB;
    const stream = pattern(0, total);
    await device.send(stream);
    await waitFor(() => clients.every((c) => c.length >= total), 'every client to get 8 MB', 30_000);
    const expected = sha256(stream);
    for (const c of clients) {
      assert.equal(c.length, total);
      assert.equal(c.digest(), expected);
    }
    assert.equal(await metric(app, 'switchboard_bytes_total', { direction: 'upstream_in' }), total);
    assert.equal(await metric(app, 'switchboard_bytes_total', { direction: 'out' }), 5 * total);
  });

  it('client bytes reach the upstream, never another client and never the sender', async () => {
    const { app, device } = await setup();
    const a = await client(app);
    const b = await client(app);
    await waitForClients(app, 2);
    a.socket.write('from-a;');
    b.socket.write('from-b;');
    await waitFor(() => device.receivedLength === 14, 'both inputs at the upstream');
    assert.ok(device.text.includes('from-a;') && device.text.includes('from-b;'));
    // A marker from the device, sent after the inputs arrived: anything echoed to a client would come before it.
    device.socket!.write('MARK');
    await waitFor(() => a.length >= 4 && b.length >= 4, 'the marker at both clients');
    assert.equal(a.text, 'MARK');
    assert.equal(b.text, 'MARK');
    assert.equal(await metric(app, 'switchboard_bytes_total', { direction: 'upstream_out' }), 14);
    assert.equal(await metric(app, 'switchboard_bytes_total', { direction: 'in' }), 14);
  });

  it('a read-only client receives the stream; what it sends is discarded and counted', async () => {
    const { app, device } = await setup({ LISTEN_PORT_RO: '0' });
    const observer = await client(app, 'ro');
    const writer = await client(app, 'rw');
    await waitForClients(app, 2);
    observer.socket.write('observer-typed');
    await waitFor(async () => (await metric(app, 'switchboard_dropped_bytes_total', { reason: 'read_only' })) === 14, 'read-only drop counted');
    writer.socket.write('rw');
    await waitFor(() => device.receivedLength >= 2, 'rw input at the upstream');
    device.socket!.write('output');
    await waitFor(() => observer.length >= 6 && writer.length >= 6, 'output at both');
    assert.equal(device.text, 'rw');
    assert.equal(observer.text, 'output');
    assert.equal(writer.text, 'output');
    assert.equal(await metric(app, 'switchboard_connections_active', { listener: 'ro' }), 1);
    assert.equal(await metric(app, 'switchboard_connections_active', { listener: 'rw' }), 1);
    const status = app.engine.status() as { clients: Array<{ role: string }> };
    assert.deepEqual(status.clients.map((c) => c.role).sort(), ['ro', 'rw']);
  });

  describe('replay', () => {
    it('a joining client first gets exactly the last REPLAY_BYTES of output, then the live stream', async () => {
      const { app, device } = await setup({ REPLAY_BYTES: '100' });
      const first = await client(app);
      await waitForClients(app, 1);
      await device.send(pattern(0, 250));
      await waitFor(() => first.length === 250, 'the first client to get 250 bytes');
      const late = await client(app);
      await waitFor(() => late.length === 100, 'the replay');
      assert.deepEqual(late.bytes, pattern(150, 100));
      await device.send(pattern(250, 50));
      await waitFor(() => late.length === 150 && first.length === 300, 'the live bytes');
      assert.deepEqual(late.bytes, pattern(150, 150));
      assert.deepEqual(first.bytes, pattern(0, 300));
    });

    it('replays everything when less than REPLAY_BYTES has been sent, and nothing with REPLAY_BYTES=0', async () => {
      const withReplay = await setup({ REPLAY_BYTES: '4096' });
      const none = await setup();
      for (const { app } of [withReplay, none]) {
        const watcher = await client(app);
        await waitForClients(app, 1);
        void watcher;
      }
      await withReplay.device.send(pattern(0, 30));
      await none.device.send(pattern(0, 30));
      await waitFor(async () => (await metric(withReplay.app, 'switchboard_bytes_total', { direction: 'upstream_in' })) === 30, 'output read');
      await waitFor(async () => (await metric(none.app, 'switchboard_bytes_total', { direction: 'upstream_in' })) === 30, 'output read');
      const late = await client(withReplay.app);
      const lateNone = await client(none.app);
      await waitFor(() => late.length === 30, 'the whole short replay');
      assert.deepEqual(late.bytes, pattern(0, 30));
      none.device.socket!.write('x');
      await waitFor(() => lateNone.length === 1, 'the next live byte');
      assert.equal(lateNone.text, 'x', 'no replay with REPLAY_BYTES=0');
    });

    it('the replay and the live stream join without gap or overlap while the upstream streams', async () => {
      // A generous CLIENT_BUFFER_BYTES: this test is about the join boundary, and on a busy machine one of eight joiners read
      // by this one process can trail the others by more than the default.
      const { app, device } = await setup({ REPLAY_BYTES: '65536', CLIENT_BUFFER_BYTES: String(32 * MB) });
      const total = 4 * MB;
      const joiners: Recorder[] = [];
      // Join while the device is sending: each joiner's bytes must be one contiguous tail of the stream.
      const stream = pattern(0, total);
      const sending = device.send(stream, 16 * 1024);
      for (let i = 0; i < 8; i++) {
        joiners.push(await client(app));
        await waitFor(async () => (await metric(app, 'switchboard_bytes_total', { direction: 'upstream_in' })) >= (i + 1) * (total / 10), 'progress', 30_000);
      }
      await sending;
      const isTail = (bytes: Buffer) => bytes.length > 0 && bytes.equals(stream.subarray(total - bytes.length));
      await waitFor(() => {
        assert.ok(!joiners.some((j) => j.closed), 'a joiner was closed');
        return joiners.every((j) => j.length > 0 && isTail(j.bytes));
      }, 'every joiner to hold a contiguous tail of the stream', 30_000);
      // Joiners after the first came once more than REPLAY_BYTES had been read: each got the whole replay, then the rest.
      for (const joiner of joiners.slice(1)) assert.ok(joiner.length >= 65536, `a joiner got ${joiner.length} bytes`);
    });
  });

  it('/status shows clients and the upstream; upstream_up is 1', async () => {
    const { app } = await setup();
    await client(app);
    await waitForClients(app, 1);
    const status = app.engine.status() as {
      clients: Array<{ address: string; connectedAt: string; bytesIn: number; bytesOut: number }>;
      upstream: { target: string; state: string; since: string; lastError: string | null };
    };
    assert.equal(status.clients.length, 1);
    assert.match(status.clients[0]!.address, /^127\.0\.0\.1:\d+$/);
    assert.match(status.upstream.target, /^tcp:127\.0\.0\.1:\d+$/);
    assert.equal(status.upstream.state, 'up');
    assert.equal(status.upstream.lastError, null);
    assert.equal(await metric(app, 'switchboard_upstream_up'), 1);
  });
});
