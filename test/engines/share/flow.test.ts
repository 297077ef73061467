/**
 * share mode under load (DESIGN §3, §6): a stalled client under both SLOW_CLIENT policies while the others get every byte,
 * an upstream that stops reading pauses the writers instead of buffering, and 1,000 clients.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, describe, it } from 'node:test';
import { metric, readersReach, Recorder, waitFor } from '../../helpers.js';
import { Digest, MB, pattern, sha256, ShareFixture, waitForClients, type ShareApp } from './harness.js';

describe('share mode flow control', () => {
  const fixture = new ShareFixture();
  after(() => fixture.close());
  const setup = (env: Record<string, string> = {}) => fixture.setup(env);
  const connectClient = (app: ShareApp) => fixture.socket(app);

  for (const policy of ['disconnect', 'drop'] as const) {
    it(`SLOW_CLIENT=${policy}: a stalled client is dealt with while the others receive every byte`, async () => {
      // 4 MiB: far below what the stalled client is sent. The device stays within 1 MiB of the reading clients, so they can
      // never be 4 MiB behind anyone (unpaced, reading clients drift apart on a busy machine: see readersReach).
      const clientBuffer = 4 * MB;
      const { app, device } = await setup({ CLIENT_BUFFER_BYTES: String(clientBuffer), SLOW_CLIENT: policy });
      const stalled = new Recorder(await connectClient(app));
      stalled.socket.pause();
      const fast: Digest[] = [];
      for (let i = 0; i < 3; i++) fast.push(new Digest(await connectClient(app)));
      await waitForClients(app, 4);
      const total = 48 * MB;
      const stream = pattern(0, total);
      const piece = 256 * 1024;
      for (let at = 0; at < total; at += piece) {
        await readersReach(fast, at - MB);
        await device.send(stream.subarray(at, at + piece));
      }
      await waitFor(() => {
        assert.ok(!fast.some((d) => d.closed), 'a reading client was closed');
        return fast.every((d) => d.length >= total);
      }, 'the fast clients to get everything', 60_000);
      const expected = sha256(stream);
      for (const d of fast) {
        assert.equal(d.length, total);
        assert.equal(d.digest(), expected);
      }
      assert.equal(await metric(app, 'switchboard_slow_clients_total', { policy }), 1);
      if (policy === 'disconnect') {
        await waitForClients(app, 3);
        stalled.socket.resume();
        await waitFor(() => stalled.closed, 'the stalled client to be closed');
      } else {
        assert.equal(stalled.closed, false, 'drop keeps the client connected');
        assert.ok((await metric(app, 'switchboard_dropped_bytes_total', { reason: 'slow_client' })) > 0);
        // What it still gets is bounded: its queue never passed CLIENT_BUFFER_BYTES plus one chunk by much.
        const lag = (app.engine.status() as { clients: Array<{ queuedBytes: number }> }).clients.map((c) => c.queuedBytes);
        assert.ok(Math.max(...lag) <= clientBuffer + 64 * 1024 * 2, `queued ${Math.max(...lag)}`);
        stalled.socket.resume();
        await waitFor(() => stalled.length > 0, 'the stalled client reads what it was given');
      }
    });
  }

  it('an upstream that stops reading pauses the writing clients instead of buffering their bytes', async () => {
    const { app, device } = await setup();
    const upstream = await device.connected();
    upstream.pause();
    const writer = await connectClient(app);
    await waitForClients(app, 1);
    // Write until the writer's own socket backs up: switchboard stopped reading it.
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let written = 0;
    const limit = 256 * MB;
    while (written < limit) {
      written += chunk.length;
      if (!writer.write(chunk)) {
        const drained = await Promise.race([once(writer, 'drain').then(() => true), new Promise((r) => setTimeout(() => r(false), 500))]);
        if (!drained) break;
      }
    }
    assert.ok(written < limit, 'the writer was held back');
    const forwarded = await metric(app, 'switchboard_bytes_total', { direction: 'upstream_out' });
    const read = await metric(app, 'switchboard_bytes_total', { direction: 'in' });
    // What switchboard read but the upstream has not taken is bounded (socket buffers, not the whole stream).
    assert.ok(read - device.receivedLength < 64 * MB, `read ${read}, upstream got ${device.receivedLength}`);
    assert.equal(forwarded, read);
    upstream.resume();
    await waitFor(() => device.receivedLength === written, 'everything to arrive once the upstream reads', 60_000);
    assert.equal(await metric(app, 'switchboard_dropped_bytes_total', { reason: 'upstream_down' }), 0);
  });

  it('1,000 clients each receive the whole stream', async () => {
    const { app, device } = await setup({ MAX_CLIENTS: '1024' });
    const clients: Digest[] = [];
    for (let i = 0; i < 1000; i++) clients.push(new Digest(await connectClient(app)));
    await waitForClients(app, 1000, 20_000);
    const total = 256 * 1024;
    const stream = pattern(0, total);
    await device.send(stream, 16 * 1024);
    await waitFor(() => clients.every((c) => c.length >= total), 'every client to get 256 KiB', 60_000);
    const expected = sha256(stream);
    for (const c of clients) assert.equal(c.digest(), expected);
    assert.equal(await metric(app, 'switchboard_connections_active', { listener: 'rw' }), 1000);
    assert.equal(await metric(app, 'switchboard_bytes_total', { direction: 'out' }), 1000 * total);
    // Input from all of them reaches the upstream, from none of them another client.
    for (const c of clients) c.socket.write('x');
    await waitFor(() => device.receivedLength === 1000, '1,000 bytes at the upstream', 20_000);
    assert.ok(clients.every((c) => c.length === total));
  });
});
