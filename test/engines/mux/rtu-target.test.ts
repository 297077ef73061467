/**
 * mux mode with TARGET=rtu:host:port (DESIGN §5): Modbus TCP clients, a target speaking Modbus RTU over TCP (an RS-485
 * gateway in transparent mode). The device here is a FramedDevice that frames RTU requests (CRC checked by the decoder)
 * and answers from the simulator's register values, so faults can be injected per request; the interop test
 * (test/interop/modbus-rtu-pymodbus.test.ts) puts pymodbus's RTU framer behind switchboard instead.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeRtu, RtuRequestDecoder, type RtuFrame } from '../../../src/protocols/modbus-rtu.js';
import { ExceptionCode } from '../../../src/protocols/modbus-tcp.js';
import { RTU_BROADCAST_TURNAROUND_MS, rtuQuietGapMs } from '../../../src/engines/mux/rtu-framer.js';
import { metric, sleep, startApp, waitFor } from '../../helpers.js';
import { exceptionOf, expectedRegisters, FramedDevice, ModbusClient, registersOf, replyPdu } from './devices.js';

type App = Awaited<ReturnType<typeof startApp>>;

interface Setup {
  device: FramedDevice<RtuFrame>;
  app: App;
  client: ModbusClient;
}

/** An RTU device answering every request from the simulator's values unless `reply` says otherwise. */
async function withRtuTarget(
  options: {
    reply?: (frame: RtuFrame, index: number) => Buffer | undefined;
    delayMs?: (index: number) => number;
    env?: Record<string, string>;
  },
  body: (setup: Setup) => Promise<void>,
): Promise<void> {
  const device = await FramedDevice.start<RtuFrame>({
    decoder: () => new RtuRequestDecoder(),
    reply: options.reply ?? ((frame) => encodeRtu(frame.unitId, replyPdu(frame.unitId, frame.pdu))),
    ...(options.delayMs ? { delayMs: options.delayMs } : {}),
  });
  const app = await startApp({
    TARGET: `rtu:${device.target}`,
    PROTOCOL: 'modbus',
    LISTEN_PORT: '0',
    RECONNECT_MIN_MS: '100',
    RECONNECT_MAX_MS: '200',
    ...options.env,
  });
  let client: ModbusClient | undefined;
  try {
    await waitFor(() => (app.engine.status() as { upstream: { state: string } }).upstream.state === 'up', 'upstream up');
    client = await ModbusClient.connect(app.port('tcp'));
    await body({ device, app, client });
  } finally {
    client?.close();
    await app.stop();
    await device.stop();
  }
}

describe('mux mode, rtu: target', () => {
  it('translates Modbus TCP to RTU and back: the device gets RTU frames with a valid CRC, the client its own ids', async () => {
    await withRtuTarget({}, async ({ device, client }) => {
      const answers = await Promise.all([
        client.read(1, 100, 10, { transactionId: 0x1234 }),
        client.read(2, 7, 3, { transactionId: 0xfffe }),
        client.read(3, 0, 2, { fc: 4, transactionId: 9 }),
      ]);
      assert.deepEqual(
        answers.map((a) => [a.transactionId, a.unitId, registersOf(a)]),
        [
          [0x1234, 1, expectedRegisters(1, 100, 10)],
          [0xfffe, 2, expectedRegisters(2, 7, 3)],
          [9, 3, expectedRegisters(3, 0, 2)],
        ],
      );
      // The RTU decoder drops frames with a bad CRC, so three framed requests mean three valid CRCs.
      assert.equal(device.requests.length, 3);
      assert.deepEqual(device.requests[0]!.raw.subarray(0, 6), Buffer.from([1, 3, 0, 100, 0, 10]));
      assert.equal(device.connections, 1);
    });
  });

  it('passes device exceptions through and writes reach the device', async () => {
    await withRtuTarget({}, async ({ device, client }) => {
      const write = await client.request(1, Buffer.from([6, 0, 5, 0x12, 0x34]));
      assert.deepEqual(write.pdu, Buffer.from([6, 0, 5, 0x12, 0x34]));
      const bad = await client.read(1, 0, 200); // quantity above 125: the device answers 0x03
      assert.equal(exceptionOf(bad), ExceptionCode.ILLEGAL_DATA_VALUE);
      assert.equal(device.requests.length, 2);
    });
  });

  it('a reply with a bad CRC is never delivered: 0x0B, the connection is redialled, the next request works', async () => {
    await withRtuTarget(
      {
        reply: (frame, index) => {
          const reply = encodeRtu(frame.unitId, replyPdu(frame.unitId, frame.pdu));
          if (index === 0) reply[reply.length - 1]! ^= 0xff;
          return reply;
        },
      },
      async ({ app, device, client }) => {
        assert.equal(exceptionOf(await client.read(1, 0, 4)), ExceptionCode.GATEWAY_TARGET_FAILED_TO_RESPOND);
        const next = await client.read(1, 0, 4);
        assert.deepEqual(registersOf(next), expectedRegisters(1, 0, 4));
        assert.equal(device.connections, 2);
        assert.ok((await metric(app, 'switchboard_stray_replies_total')) >= 1);
      },
    );
  });

  it('a reply from the wrong unit is dropped and the client gets 0x0B', async () => {
    await withRtuTarget(
      {
        reply: (frame, index) => encodeRtu(index === 0 ? frame.unitId + 1 : frame.unitId, replyPdu(frame.unitId, frame.pdu)),
        env: { UPSTREAM_TIMEOUT_MS: '400' },
      },
      async ({ client }) => {
        assert.equal(exceptionOf(await client.read(1, 0, 4)), ExceptionCode.GATEWAY_TARGET_FAILED_TO_RESPOND);
        assert.deepEqual(registersOf(await client.read(1, 0, 4)), expectedRegisters(1, 0, 4));
      },
    );
  });

  it('after a timeout, a late reply falls into the quiet gap and cannot answer the next request', async () => {
    const timeoutMs = 400;
    const gapMs = rtuQuietGapMs(timeoutMs);
    await withRtuTarget(
      {
        // Request 0 is answered after the timeout but inside the quiet gap; the rest at once.
        delayMs: (index) => (index === 0 ? timeoutMs + gapMs / 2 : 0),
        env: { UPSTREAM_TIMEOUT_MS: String(timeoutMs), REQUEST_DEADLINE_MS: '5000' },
      },
      async ({ app, device, client }) => {
        const first = client.read(1, 0, 4);
        await sleep(20);
        // Same function, unit and quantity: had the late reply been taken for it, the values would be address 0's.
        const second = client.read(1, 500, 4);
        assert.equal(exceptionOf(await first), ExceptionCode.GATEWAY_TARGET_FAILED_TO_RESPOND);
        assert.deepEqual(registersOf(await second), expectedRegisters(1, 500, 4));
        assert.equal(device.connections, 1, 'a timeout keeps the gateway connection');
        assert.ok((await metric(app, 'switchboard_stray_replies_total')) >= 1, 'the late reply is counted');
      },
    );
  });

  it('unit 0 is a broadcast: writes are sent and answered locally, reads get 0x0B at once and are not sent', async () => {
    await withRtuTarget(
      {
        // A real bus never answers a broadcast; a device that did would be a fault (and would be discarded).
        reply: (frame) => (frame.unitId === 0 ? undefined : encodeRtu(frame.unitId, replyPdu(frame.unitId, frame.pdu))),
        env: { UPSTREAM_TIMEOUT_MS: '3000' },
      },
      async ({ device, client }) => {
        const started = performance.now();
        const single = await client.request(0, Buffer.from([6, 0, 10, 0, 5]), { transactionId: 77 });
        assert.equal(single.transactionId, 77);
        assert.equal(single.unitId, 0);
        assert.deepEqual(single.pdu, Buffer.from([6, 0, 10, 0, 5]));
        const multiple = await client.request(0, Buffer.from([16, 0, 20, 0, 2, 4, 0, 1, 0, 2]));
        assert.deepEqual(multiple.pdu, Buffer.from([16, 0, 20, 0, 2]));
        const read = await client.read(0, 0, 2);
        assert.equal(exceptionOf(read), ExceptionCode.GATEWAY_TARGET_FAILED_TO_RESPOND);
        assert.ok(performance.now() - started < 2000, 'no answer waited for the upstream timeout');
        await waitFor(() => device.requests.length === 2, 'both writes on the bus', 3000);
        assert.deepEqual(
          device.requests.map((r) => [r.unitId, r.functionCode]),
          [
            [0, 6],
            [0, 16],
          ],
        );
        // The bus is usable afterwards, after the turnaround delay that lets every device process the broadcast.
        const writeSentAt = performance.now();
        await client.request(0, Buffer.from([6, 0, 11, 0, 6]));
        const after = client.read(1, 3, 2);
        await waitFor(() => device.requests.length === 4, 'the read reaches the bus');
        const gap = performance.now() - writeSentAt;
        assert.ok(gap >= RTU_BROADCAST_TURNAROUND_MS - 5, `the read followed the broadcast after ${gap.toFixed(0)} ms`);
        assert.deepEqual(registersOf(await after), expectedRegisters(1, 3, 2));
      },
    );
  });

  it('requests whose RTU reply length cannot be derived get 0x01 and are never sent (43/13, user-defined codes)', async () => {
    await withRtuTarget({}, async ({ app, device, client }) => {
      assert.equal(exceptionOf(await client.request(1, Buffer.from([43, 13, 0, 0]))), ExceptionCode.ILLEGAL_FUNCTION);
      assert.equal(exceptionOf(await client.request(1, Buffer.from([0x41, 1, 2]))), ExceptionCode.ILLEGAL_FUNCTION);
      assert.equal(device.requests.length, 0);
      assert.equal(await metric(app, 'switchboard_requests_total', { protocol: 'modbus', outcome: 'rejected' }), 2);
      // 43/14 (device identification) has a derivable length and is sent.
      const identification = client.request(1, Buffer.from([43, 14, 1, 0]), { timeoutMs: 3000 }).catch(() => undefined);
      await waitFor(() => device.requests.length === 1, '43/14 sent');
      await identification;
    });
  });

  it('UNIT_MAP applies to rtu: targets: the bus sees the mapped address, the client its own', async () => {
    await withRtuTarget({ env: { UNIT_MAP: '1=5' } }, async ({ device, client }) => {
      const answer = await client.read(1, 10, 2);
      assert.equal(answer.unitId, 1);
      assert.deepEqual(registersOf(answer), expectedRegisters(5, 10, 2));
      assert.equal(device.requests[0]!.unitId, 5);
    });
  });

  it('one exchange at a time on the bus, whatever MAX_INFLIGHT says', async () => {
    let outstanding = 0;
    let most = 0;
    await withRtuTarget(
      {
        reply: (frame) => {
          outstanding++;
          most = Math.max(most, outstanding);
          setTimeout(() => outstanding--, 15);
          return encodeRtu(frame.unitId, replyPdu(frame.unitId, frame.pdu));
        },
        delayMs: () => 15,
        env: { MAX_INFLIGHT: '8' },
      },
      async ({ client }) => {
        const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => client.read(1, i * 10, 2)));
        answers.forEach((a, i) => assert.deepEqual(registersOf(a), expectedRegisters(1, i * 10, 2)));
        assert.equal(most, 1);
      },
    );
  });
});
