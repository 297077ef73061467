/**
 * CACHE_TTL_MS (DESIGN §5) through switchboard: repeated reads are answered from the device's answer while it is at most
 * CACHE_TTL_MS old (outcome `cached`, each client its own ids), a write invalidates its unit, a read that a write overtook
 * is not stored, and /status shows the cache.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { metric, sleep, waitFor } from '../../helpers.js';
import { exceptionOf, expectedRegisters, registersOf } from './devices.js';
import { withModbusSetup, withSamplingSetup, writeRegisterPdu } from './modbus/setup.js';

const requests = (app: Parameters<typeof metric>[0], outcome: string) =>
  metric(app, 'switchboard_requests_total', { protocol: 'modbus', outcome });

interface CacheStatus {
  cache: { entries: number; oldestAgeMs: number | null } | null;
}

describe('mux mode, CACHE_TTL_MS', () => {
  it('a repeated read within the TTL is answered from the cache with its own ids; after the TTL it reaches the device again', async () => {
    await withModbusSetup({}, { CACHE_TTL_MS: '400' }, async ({ app, client, device, status }) => {
      const [a, b] = await Promise.all([client(), client()]);
      assert.deepEqual(registersOf(await a.read(1, 100, 5)), expectedRegisters(1, 100, 5));
      const cached = await b.read(1, 100, 5, { transactionId: 4321 });
      assert.equal(cached.transactionId, 4321);
      assert.equal(cached.unitId, 1);
      assert.deepEqual(registersOf(cached), expectedRegisters(1, 100, 5));
      assert.equal(device.requests.length, 1);
      assert.equal(await requests(app, 'cached'), 1);
      const { cache } = status() as unknown as CacheStatus;
      assert.equal(cache?.entries, 1);
      assert.ok(cache.oldestAgeMs !== null && cache.oldestAgeMs >= 0 && cache.oldestAgeMs < 400);

      await sleep(500);
      assert.deepEqual((status() as unknown as CacheStatus).cache, { entries: 0, oldestAgeMs: null });
      assert.deepEqual(registersOf(await a.read(1, 100, 5)), expectedRegisters(1, 100, 5));
      assert.equal(device.requests.length, 2, 'a read after the TTL reaches the device');
      assert.equal(await requests(app, 'cached'), 1);
    });
  });

  it("a write clears its unit's entries (the next read reaches the device and sees the write); other units stay cached", async () => {
    await withModbusSetup({}, { CACHE_TTL_MS: '60000' }, async ({ app, client, device }) => {
      const [writer, reader] = await Promise.all([client(), client()]);
      await reader.read(1, 10, 2);
      await reader.read(2, 10, 2);
      await reader.read(1, 10, 2);
      await reader.read(2, 10, 2);
      assert.equal(await requests(app, 'cached'), 2);
      assert.equal(exceptionOf(await writer.request(1, writeRegisterPdu(11, 999))), undefined);
      assert.deepEqual(registersOf(await reader.read(1, 10, 2)), [expectedRegisters(1, 10, 1)[0], 999], 'another client sees the write');
      assert.deepEqual(registersOf(await writer.read(1, 10, 2)), [expectedRegisters(1, 10, 1)[0], 999], 'the writer sees its write');
      assert.deepEqual(registersOf(await reader.read(2, 10, 2)), expectedRegisters(2, 10, 2));
      // unit 1: read, write, read (then cached); unit 2: one read only
      assert.deepEqual(
        device.requests.map((r) => `${r.unitId}:${r.functionCode}`),
        ['1:3', '2:3', '1:6', '1:3'],
      );
      assert.equal(await requests(app, 'cached'), 4);
    });
  });

  it('a read answered after a write to its unit was sent is not stored (MAX_INFLIGHT=4, the read sampled before the write)', async () => {
    await withSamplingSetup(
      (frame, index) => (index === 0 ? 400 : 0), // the first read is slow and carries the value from before the write
      { CACHE_TTL_MS: '60000', MAX_INFLIGHT: '4' },
      async ({ app, client, device }) => {
        const [slow, writer, later] = await Promise.all([client(), client(), client()]);
        const stale = slow.read(1, 20, 1);
        await waitFor(() => device.requests.length === 1, 'the slow read at the device');
        assert.equal(exceptionOf(await writer.request(1, writeRegisterPdu(20, 5555))), undefined);
        assert.deepEqual(registersOf(await writer.read(1, 20, 1)), [5555]);
        assert.deepEqual(registersOf(await stale), expectedRegisters(1, 20, 1));
        // The slow read's old answer must not have replaced the fresh one.
        assert.deepEqual(registersOf(await later.read(1, 20, 1)), [5555]);
        assert.equal(await requests(app, 'cached'), 1);
      },
    );
  });

  it('exceptions are not cached; a cache hit takes no queue slot while the device is busy', async () => {
    await withModbusSetup(
      { action: (frame) => (frame.pdu.readUInt16BE(1) === 300 ? { kind: 'answer', delayMs: 300 } : { kind: 'answer' }) },
      { CACHE_TTL_MS: '60000' },
      async ({ app, client, device }) => {
        const c = await client();
        // quantity 0 is illegal: the device answers 0x03
        assert.equal(exceptionOf(await c.read(1, 0, 0)), 0x03);
        assert.equal(exceptionOf(await c.read(1, 0, 0)), 0x03);
        assert.equal(device.requests.length, 2);
        await c.read(1, 50, 1);
        const other = await client();
        const busy = other.read(1, 300, 1);
        await waitFor(() => device.requests.length === 4, 'the slow read at the device');
        const started = Date.now();
        assert.deepEqual(registersOf(await c.read(1, 50, 1)), expectedRegisters(1, 50, 1));
        assert.ok(Date.now() - started < 250, 'answered without waiting for the device');
        await busy;
        assert.equal(await requests(app, 'cached'), 1);
      },
    );
  });

  it('/status cache is null when CACHE_TTL_MS=0, and nothing is cached', async () => {
    await withModbusSetup({}, {}, async ({ app, client, device, status }) => {
      const c = await client();
      await c.read(1, 0, 1);
      await c.read(1, 0, 1);
      assert.equal(device.requests.length, 2);
      assert.equal((status() as unknown as CacheStatus).cache, null);
      assert.equal(await requests(app, 'cached'), 0);
    });
  });
});
