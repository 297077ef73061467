/**
 * Flow control (DESIGN §3) through a real groups instance: the sender is paused at the pace of the fastest receiver, a
 * receiver that stops reading gets SLOW_CLIENT, MAX_BUFFERED_BYTES acts on the furthest-behind receiver. Assertions are on
 * bytes and counters, never on timing.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { Digest, joinGroup, metric, readersReach, Recorder, startApp, waitFor, waitForMembers } from '../helpers.js';

const MB = 1024 * 1024;

/**
 * Writes `total` bytes of a deterministic pattern, honouring write() backpressure; resolves with the pattern's hash. With
 * `pace`, never more than `pace.window` bytes ahead of the slowest of `pace.readers` (see readersReach).
 */
async function sendPattern(socket: Socket, total: number, pace?: { readers: Digest[]; window: number }): Promise<string> {
  const chunkSize = 64 * 1024;
  const hash = createHash('sha256');
  let sent = 0;
  let counter = 0;
  while (sent < total) {
    const size = Math.min(chunkSize, total - sent);
    const chunk = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4) chunk.writeUInt32LE(counter++ >>> 0, i);
    hash.update(chunk);
    if (pace) await readersReach(pace.readers, sent - pace.window);
    sent += size;
    if (!socket.write(chunk)) await new Promise((resolve) => socket.once('drain', resolve));
  }
  return hash.digest('hex');
}

describe('flow control', () => {
  const apps: Array<{ stop(): Promise<void> }> = [];
  const sockets: Socket[] = [];
  after(async () => {
    for (const s of sockets) s.destroy();
    await Promise.all(apps.map((a) => a.stop()));
  });
  async function setup(env: Record<string, string>, receivers: number) {
    const sw = await startApp({ UDP_PORT: 'off', ...env });
    apps.push(sw);
    const port = sw.port('tcp');
    const sender = await joinGroup(port, 'flow');
    const others: Recorder[] = [];
    for (let i = 0; i < receivers; i++) others.push(await joinGroup(port, 'flow'));
    sockets.push(sender.socket, ...others.map((o) => o.socket));
    await waitForMembers(sw, 'flow', receivers + 1);
    // Recorders keep chunks; the bulk tests hash instead.
    for (const o of others) o.socket.removeAllListeners('data');
    return { sw, sender, others };
  }

  it('carries a 100 MB 1-to-1 transfer complete: the sender is paused, the receiver is never dropped', async () => {
    const { sw, sender, others } = await setup({ CLIENT_BUFFER_BYTES: '65536' }, 1);
    const receiver = new Digest(others[0]!.socket);
    const total = 100 * MB;
    const sentHash = await sendPattern(sender.socket, total);
    await waitFor(() => receiver.length >= total, '100 MB to arrive', 60_000);
    assert.equal(receiver.length, total);
    assert.equal(receiver.digest(), sentHash);
    assert.equal(await metric(sw, 'switchboard_slow_clients_total', { policy: 'disconnect' }), 0);
    assert.equal(await metric(sw, 'switchboard_bytes_total', { direction: 'out' }), total);
  });

  for (const policy of ['disconnect', 'drop'] as const) {
    it(`applies SLOW_CLIENT=${policy} to a member that stops reading while the others receive every byte`, async () => {
      // 16 MiB, not the 256 KiB default: lag is measured on what switchboard holds, and the stalled member's kernel buffers
      // (several MB on loopback) fill first. The sender stays within 4 MiB of the reading members, so they can never be
      // 16 MiB behind anyone; the stalled member falls ~50 MB behind.
      const { sw, sender, others } = await setup({ CLIENT_BUFFER_BYTES: String(16 * MB), SLOW_CLIENT: policy }, 3);
      const [stalled, ...fast] = others;
      stalled!.socket.pause();
      const fastDigests = fast.map((f) => new Digest(f.socket));
      const total = 64 * MB;
      const sentHash = await sendPattern(sender.socket, total, { readers: fastDigests, window: 4 * MB });
      await waitFor(() => fastDigests.every((d) => d.length >= total), 'the fast members to get everything', 60_000);
      for (const d of fastDigests) {
        assert.equal(d.length, total);
        assert.equal(d.digest(), sentHash);
      }
      assert.equal(await metric(sw, 'switchboard_slow_clients_total', { policy }), 1);
      if (policy === 'disconnect') {
        await waitForMembers(sw, 'flow', 3);
        // A paused socket does not see its EOF; reading again shows switchboard closed it.
        stalled!.socket.resume();
        await waitFor(() => stalled!.closed, 'the stalled member to be closed');
      } else {
        assert.equal(stalled!.closed, false, 'drop keeps the member connected');
        assert.ok((await metric(sw, 'switchboard_dropped_bytes_total', { reason: 'slow_client' })) > 0);
      }
    });
  }

  it('past MAX_BUFFERED_BYTES, SLOW_CLIENT hits the receiver furthest behind and nobody else', async () => {
    // CLIENT_BUFFER_BYTES is out of reach here, so only the process-wide budget can act.
    const { sw, sender, others } = await setup({ CLIENT_BUFFER_BYTES: String(1024 * MB), MAX_BUFFERED_BYTES: String(2 * MB) }, 2);
    const [stalled, fast] = others;
    stalled!.socket.pause();
    const fastDigest = new Digest(fast!.socket);
    const total = 32 * MB;
    // Paced within 512 KiB of the reading member, so that it can never hold more than the stalled one when the 2 MiB are
    // passed.
    const sentHash = await sendPattern(sender.socket, total, { readers: [fastDigest], window: 512 * 1024 });
    await waitFor(() => fastDigest.length >= total, 'the fast member to get everything', 60_000);
    assert.equal(fastDigest.digest(), sentHash);
    await waitForMembers(sw, 'flow', 2);
    stalled!.socket.resume();
    await waitFor(() => stalled!.closed, 'the furthest-behind member to be closed');
    assert.equal(fastDigest.closed, false);
    assert.equal(await metric(sw, 'switchboard_slow_clients_total', { policy: 'disconnect' }), 1);
  });
});
