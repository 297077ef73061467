/**
 * COALESCE (DESIGN §5) through switchboard: identical reads (same device unit, function, address, quantity) that meet in
 * the queue or in flight go upstream once and each client gets its own answer with its own ids; read-your-writes holds;
 * followers are never lost when their leader leaves, and fail with a leader that fails. Device latencies of 200-400 ms
 * make "at once" robust on a loaded machine without tight timing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { metric, sleep, waitFor } from '../../helpers.js';
import { exceptionOf, expectedRegisters, readPdu, registersOf, type DeviceAction } from './devices.js';
import { withModbusSetup, withSamplingSetup, writeRegisterPdu } from './modbus/setup.js';

const requests = (app: Parameters<typeof metric>[0], outcome: string) =>
  metric(app, 'switchboard_requests_total', { protocol: 'modbus', outcome });

describe('mux mode, COALESCE', () => {
  it('N clients reading the same range at once: one upstream request per round, each client its own ids and the right values', async () => {
    const CLIENTS = 6;
    const ROUNDS = 3;
    await withModbusSetup({ latencyMs: 200 }, { MAX_INFLIGHT: '1' }, async ({ app, client, device }) => {
      const clients = await Promise.all(Array.from({ length: CLIENTS }, () => client()));
      for (let round = 0; round < ROUNDS; round++) {
        const answers = await Promise.all(clients.map((c, n) => c.read(1, 40000, 40, { transactionId: 1000 * n + round })));
        answers.forEach((frame, n) => {
          assert.equal(frame.transactionId, 1000 * n + round);
          assert.equal(frame.unitId, 1);
          assert.deepEqual(registersOf(frame), expectedRegisters(1, 40000, 40));
        });
        assert.equal(device.requests.length, round + 1, `round ${round}: one upstream request`);
      }
      assert.equal(await requests(app, 'coalesced'), ROUNDS * (CLIENTS - 1));
      assert.equal(await requests(app, 'ok'), ROUNDS);
    });
  });

  it('different ranges, functions or units are not merged', async () => {
    await withModbusSetup({ latencyMs: 100 }, { MAX_INFLIGHT: '1' }, async ({ app, client, device }) => {
      const reads: Array<[unit: number, fc: number, address: number, quantity: number]> = [
        [1, 3, 0, 2],
        [1, 3, 0, 3], // quantity
        [1, 3, 1, 2], // address
        [1, 4, 0, 2], // function
        [2, 3, 0, 2], // unit
        [1, 3, 0, 2], // the first again: joins it
      ];
      const clients = await Promise.all(reads.map(() => client()));
      const answers = await Promise.all(reads.map(([unit, fc, address, quantity], i) => clients[i]!.request(unit, readPdu(fc, address, quantity))));
      answers.forEach((frame, i) => {
        const [unit, fc, address, quantity] = reads[i]!;
        assert.equal(frame.functionCode, fc);
        assert.equal(frame.unitId, unit);
        assert.deepEqual(registersOf(frame), expectedRegisters(unit, address, quantity));
      });
      assert.equal(device.requests.length, 5);
      assert.equal(await requests(app, 'coalesced'), 1);
    });
  });

  it('a read joins an identical one in flight that was sent after its last write was answered', async () => {
    await withSamplingSetup((frame) => (frame.functionCode === 3 ? 400 : 0), { MAX_INFLIGHT: '4' }, async ({ app, client, device }) => {
      const writer = await client();
      const other = await client();
      assert.equal(exceptionOf(await writer.request(1, writeRegisterPdu(10, 777))), undefined);
      const first = other.read(1, 10, 1);
      await waitForReads(device, 1);
      const joined = await writer.read(1, 10, 1);
      assert.deepEqual(registersOf(joined), [777]);
      assert.deepEqual(registersOf(await first), [777]);
      assert.equal(device.reads(1, 10, 1), 1);
      assert.equal(await requests(app, 'coalesced'), 1);
    });
  });

  for (const maxInflight of ['1', '4']) {
    it(`read-your-writes with MAX_INFLIGHT=${maxInflight}: a writer's read never joins an identical read sent before its write was answered`, async () => {
      // Reads are sampled on arrival and answered 400 ms later, so an in-flight read carries the value from before the write.
      await withSamplingSetup((frame) => (frame.functionCode === 3 ? 400 : 0), { MAX_INFLIGHT: maxInflight }, async ({ app, client, device }) => {
        const writer = await client();
        const other = await client();
        const stale = other.read(1, 10, 1);
        await waitForReads(device, 1);
        // With MAX_INFLIGHT=1 the write waits behind the read in flight, so the writer pipelines write and read (its read
        // arrives while its write is unanswered); with 4 the write overtakes the read and is answered before the writer
        // reads, like a client that waits for each answer.
        let fresh;
        if (maxInflight === '1') {
          const write = writer.request(1, writeRegisterPdu(10, 4242));
          fresh = writer.read(1, 10, 1);
          assert.equal(exceptionOf(await write), undefined);
        } else {
          assert.equal(exceptionOf(await writer.request(1, writeRegisterPdu(10, 4242))), undefined);
          fresh = writer.read(1, 10, 1);
        }
        assert.deepEqual(registersOf(await fresh), [4242], 'the writer reads its own write');
        assert.deepEqual(registersOf(await stale), expectedRegisters(1, 10, 1), 'the other read was sampled before the write');
        assert.equal(device.reads(1, 10, 1), 2);
        assert.equal(await requests(app, 'coalesced'), 0);
      });
    });
  }

  it('followers count against their own CLIENT_QUEUE: beyond it they get 0x06', async () => {
    await withModbusSetup({ latencyMs: 300 }, { CLIENT_QUEUE: '2' }, async ({ app, client, device }) => {
      const leader = await client();
      const follower = await client();
      const led = leader.read(1, 0, 4);
      await waitForRequests(device, 1);
      const answers = await Promise.all([1, 2, 3].map(() => follower.read(1, 0, 4)));
      assert.deepEqual(registersOf(answers[0]!), expectedRegisters(1, 0, 4));
      assert.deepEqual(registersOf(answers[1]!), expectedRegisters(1, 0, 4));
      assert.equal(exceptionOf(answers[2]!), 0x06);
      assert.deepEqual(registersOf(await led), expectedRegisters(1, 0, 4));
      assert.equal(device.requests.length, 1);
      assert.equal(await requests(app, 'coalesced'), 2);
      assert.equal(await requests(app, 'busy'), 1);
    });
  });

  it('a leader that times out fails its followers with the same exception (0x0B), each counted as timeout', async () => {
    await withModbusSetup(
      { action: (_f, i): DeviceAction => (i === 0 ? { kind: 'silent' } : { kind: 'answer' }) },
      { UPSTREAM_TIMEOUT_MS: '400' },
      async ({ app, client, device }) => {
        const clients = await Promise.all([client(), client(), client()]);
        const led = clients[0]!.read(1, 0, 2);
        await waitForRequests(device, 1);
        const followers = await Promise.all(clients.slice(1).map((c) => c.read(1, 0, 2)));
        assert.equal(exceptionOf(await led), 0x0b);
        for (const frame of followers) assert.equal(exceptionOf(frame), 0x0b);
        assert.equal(await requests(app, 'timeout'), 3);
        assert.equal(await requests(app, 'coalesced'), 0);
        // The next round goes upstream again and works.
        assert.deepEqual(registersOf(await clients[1]!.read(1, 0, 2)), expectedRegisters(1, 0, 2));
      },
    );
  });

  it("a queued leader whose client leaves hands over to a follower: the followers are answered and the device sees the read once", async () => {
    // REQUEST_GAP_MS holds the queue still after the first exchange, long enough to arrange who leads.
    await withModbusSetup({}, { REQUEST_GAP_MS: '600' }, async ({ app, client, device }) => {
      const [opener, leader, a, b] = await Promise.all([client(), client(), client(), client()]);
      assert.deepEqual(registersOf(await opener.read(1, 500, 1)), expectedRegisters(1, 500, 1));
      void leader.read(1, 0, 3).catch(() => {});
      await sleep(20);
      const followers = Promise.all([a.read(1, 0, 3), b.read(1, 0, 3)]);
      await sleep(20);
      leader.close();
      for (const frame of await followers) assert.deepEqual(registersOf(frame), expectedRegisters(1, 0, 3));
      assert.equal(device.requests.length, 2);
      assert.equal(await requests(app, 'client_gone'), 1);
      assert.equal(await requests(app, 'coalesced'), 1); // the promoted one is the new leader: ok
      assert.equal(await requests(app, 'ok'), 2);
    });
  });

  it('a queued leader whose deadline passes gets 0x0B alone: a later follower is promoted and answered', async () => {
    // The gap keeps the queue still for 1500 ms; the leader's deadline (1200 ms) passes in the queue, the follower's
    // (arriving 500 ms later) does not.
    await withModbusSetup({}, { REQUEST_GAP_MS: '1500', REQUEST_DEADLINE_MS: '1200' }, async ({ app, client, device }) => {
      const [opener, leader, follower] = await Promise.all([client(), client(), client()]);
      // The gap also runs from the connect: the opener must not wait in the queue longer than its own deadline.
      await sleep(1500);
      assert.deepEqual(registersOf(await opener.read(1, 500, 1)), expectedRegisters(1, 500, 1));
      const led = leader.read(1, 0, 3);
      await sleep(500);
      const followed = follower.read(1, 0, 3);
      assert.equal(exceptionOf(await led), 0x0b);
      assert.deepEqual(registersOf(await followed), expectedRegisters(1, 0, 3));
      assert.equal(device.requests.length, 2);
      assert.equal(await requests(app, 'timeout'), 1);
    });
  });

  it('COALESCE=false sends every read', async () => {
    await withModbusSetup({ latencyMs: 100 }, { COALESCE: 'false' }, async ({ app, client, device }) => {
      const clients = await Promise.all([client(), client(), client()]);
      await Promise.all(clients.map((c) => c.read(1, 0, 2)));
      assert.equal(device.requests.length, 3);
      assert.equal(await requests(app, 'coalesced'), 0);
    });
  });
});

async function waitForRequests(device: { requests: unknown[] }, count: number): Promise<void> {
  await waitFor(() => device.requests.length >= count, `${count} requests at the device`);
}

const waitForReads = waitForRequests;
