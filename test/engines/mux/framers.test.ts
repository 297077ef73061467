/**
 * mux mode with tcp-multiplexer's framers (echo, iso8583, mpu, modbus-serial, modbus-rtu) over loopback: one exchange at a
 * time, replies in order, a late reply after a timeout never reaches the next client, pipelined client bytes never lost,
 * malformed framing closes that client only.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FrameDecoder, RawFrame } from '../../../src/protocols/framing.js';
import { encodeIso8583, Iso8583Decoder, type Iso8583Frame } from '../../../src/protocols/iso8583.js';
import { encodeLine, LineDecoder, type LineFrame } from '../../../src/protocols/lines.js';
import { encodeMbapCrc, MbapCrcDecoder, type MbapCrcFrame } from '../../../src/protocols/mbap-crc.js';
import { encodeRtu, RtuRequestDecoder, type RtuFrame } from '../../../src/protocols/modbus-rtu.js';
import { encodeMpu, MpuDecoder, type MpuFrame } from '../../../src/protocols/mpu.js';
import { connectTcp, metric, Recorder, sleep, startApp, waitFor } from '../../helpers.js';
import { FramedDevice, readPdu, replyPdu } from './devices.js';

interface Case<F extends RawFrame> {
  protocol: string;
  deviceDecoder: () => FrameDecoder<F>;
  /** A request carrying `n`. */
  request(n: number): Buffer;
  /** The device's reply to a request frame. */
  reply(frame: F): Buffer;
  /** The reply the client must see for request n. */
  expected(n: number): Buffer;
  /** Bytes that break the client-side framing. */
  bad: Buffer;
  /** Whether a failure is answered (Modbus exception) rather than closing the client. */
  answersFailures: boolean;
}

const text = (s: string) => Buffer.from(s, 'latin1');

const echo: Case<LineFrame> = {
  protocol: 'echo',
  deviceDecoder: () => new LineDecoder(),
  request: (n) => encodeLine(text(`ping ${n}`)),
  reply: (f) => encodeLine(Buffer.concat([text('pong '), f.payload.subarray(5)])),
  expected: (n) => encodeLine(text(`pong ${n}`)),
  bad: Buffer.alloc(70_000, 0x41), // a line longer than the 64 KiB bound
  answersFailures: false,
};

const iso8583: Case<Iso8583Frame> = {
  protocol: 'iso8583',
  deviceDecoder: () => new Iso8583Decoder(),
  request: (n) => encodeIso8583(text(`0200req${n}`)),
  reply: (f) => encodeIso8583(Buffer.concat([text('0210'), f.payload.subarray(4)])),
  expected: (n) => encodeIso8583(text(`0210req${n}`)),
  bad: Buffer.from([]), // every 2-byte length is valid framing; see the lying-length test below
  answersFailures: false,
};

const mpu: Case<MpuFrame> = {
  protocol: 'mpu',
  deviceDecoder: () => new MpuDecoder(),
  request: (n) => encodeMpu(text(`REQ${n}`)),
  reply: (f) => encodeMpu(Buffer.concat([text('ANS'), f.payload.subarray(3)])),
  expected: (n) => encodeMpu(text(`ANS${n}`)),
  bad: text('-012abc'), // tcp-multiplexer's Atoi takes "-012" and panics on the negative length
  answersFailures: false,
};

const modbusSerial: Case<RtuFrame> = {
  protocol: 'modbus-serial',
  deviceDecoder: () => new RtuRequestDecoder(),
  request: (n) => encodeRtu(1, readPdu(3, n, 1)),
  reply: (f) => encodeRtu(f.unitId, replyPdu(f.unitId, f.pdu)),
  expected: (n) => encodeRtu(1, replyPdu(1, readPdu(3, n, 1))),
  bad: encodeRtu(1, Buffer.from([0x03, 0, 1, 0, 1])).fill(0xff, 6), // CRC mismatch
  answersFailures: true,
};

const modbusRtu: Case<MbapCrcFrame> = {
  protocol: 'modbus-rtu',
  deviceDecoder: () => new MbapCrcDecoder(),
  request: (n) => encodeMbapCrc(n, 1, readPdu(3, n, 1)),
  reply: (f) => encodeMbapCrc(f.transactionId, f.unitId, replyPdu(f.unitId, f.pdu)),
  expected: (n) => encodeMbapCrc(n, 1, replyPdu(1, readPdu(3, n, 1))),
  bad: Buffer.from([0, 1, 0, 0, 1, 1, 1, 3]), // MBAP length 257 is past the bound (256 with the CRC)
  answersFailures: true,
};

const CASES = [echo, iso8583, mpu, modbusSerial, modbusRtu] as Array<Case<RawFrame>>;

async function setup<F extends RawFrame>(c: Case<F>, device: FramedDevice<F>, env: Record<string, string> = {}) {
  const app = await startApp({ TARGET: device.target, PROTOCOL: c.protocol, LISTEN_PORT: '0', ...env });
  await waitFor(() => (app.engine.status() as { upstream: { state: string } }).upstream.state === 'up', 'upstream up');
  return app;
}

/** Waits until the recorder holds exactly `bytes`. */
async function expectBytes(recorder: Recorder, bytes: Buffer, what: string): Promise<void> {
  await waitFor(() => recorder.length >= bytes.length, what, 3000);
  assert.deepEqual(recorder.bytes, bytes, what);
}

for (const c of CASES) {
  describe(`mux mode, PROTOCOL=${c.protocol}`, () => {
    it('pipelined requests from several clients are answered in order, each to its own client; one upstream connection', async () => {
      const device = await FramedDevice.start({ decoder: c.deviceDecoder, reply: c.reply });
      const app = await setup(c, device);
      const clients = await Promise.all([0, 1, 2].map(async () => new Recorder(await connectTcp(app.port('tcp')))));
      try {
        // Each client writes all its requests in one chunk: tcp-multiplexer lost everything after the first.
        clients.forEach((r, k) => r.socket.write(Buffer.concat([0, 1, 2, 3].map((i) => c.request(k * 10 + i)))));
        for (const [k, r] of clients.entries()) {
          await expectBytes(r, Buffer.concat([0, 1, 2, 3].map((i) => c.expected(k * 10 + i))), `client ${k}`);
        }
        assert.equal(device.connections, 1);
        assert.equal(device.requests.length, 12);
        assert.equal(await metric(app, 'switchboard_requests_total', { protocol: c.protocol, outcome: 'ok' }), 12);
      } finally {
        for (const r of clients) r.socket.destroy();
        await app.stop();
        await device.stop();
      }
    });

    it('a late reply after a timeout never reaches the next client (the upstream is redialled)', async () => {
      const device = await FramedDevice.start({ decoder: c.deviceDecoder, reply: c.reply, delayMs: (i) => (i === 0 ? 500 : 0) });
      const app = await setup(c, device, { UPSTREAM_TIMEOUT_MS: '200', REQUEST_DEADLINE_MS: '2000' });
      const first = new Recorder(await connectTcp(app.port('tcp')));
      const second = new Recorder(await connectTcp(app.port('tcp')));
      try {
        first.socket.write(c.request(1));
        await sleep(50);
        second.socket.write(c.request(2));
        await expectBytes(second, c.expected(2), 'the second client gets its own reply');
        if (c.answersFailures) {
          await waitFor(() => first.length > 0, 'an exception for the first client');
          assert.notDeepEqual(first.bytes, c.expected(1));
          assert.equal(first.bytes[c.protocol === 'modbus-rtu' ? 8 : 2], 0x0b, 'exception 0x0B');
        } else {
          await waitFor(() => first.closed, 'the first client is closed: its protocol cannot say "timeout"');
        }
        await sleep(600); // the late reply has been written to the old connection by now
        assert.deepEqual(second.bytes, c.expected(2));
        if (c.answersFailures) assert.equal(first.bytes.includes(c.expected(1)), false);
        else assert.equal(first.length, 0);
        assert.equal(device.connections, 2);
        assert.equal(await metric(app, 'switchboard_requests_total', { protocol: c.protocol, outcome: 'timeout' }), 1);
      } finally {
        first.socket.destroy();
        second.socket.destroy();
        await app.stop();
        await device.stop();
      }
    });

    it('an unsolicited reply is dropped and counted, and the upstream is redialled', async () => {
      const device = await FramedDevice.start({
        decoder: c.deviceDecoder,
        // The first request gets its reply twice: the copy answers nothing and must never reach the next client.
        reply: (f, i) => (i === 0 ? Buffer.concat([c.reply(f), c.reply(f)]) : c.reply(f)),
      });
      const app = await setup(c, device);
      const a = new Recorder(await connectTcp(app.port('tcp')));
      const b = new Recorder(await connectTcp(app.port('tcp')));
      try {
        a.socket.write(c.request(1));
        await expectBytes(a, c.expected(1), 'first answer');
        b.socket.write(c.request(2));
        await expectBytes(b, c.expected(2), 'second answer, not the duplicate');
        assert.equal(await metric(app, 'switchboard_stray_replies_total'), 1);
      } finally {
        a.socket.destroy();
        b.socket.destroy();
        await app.stop();
        await device.stop();
      }
    });

    if (c.bad.length > 0) {
      it('malformed framing closes that client only', async () => {
        const device = await FramedDevice.start({ decoder: c.deviceDecoder, reply: c.reply });
        const app = await setup(c, device);
        const bad = new Recorder(await connectTcp(app.port('tcp')));
        const good = new Recorder(await connectTcp(app.port('tcp')));
        try {
          bad.socket.write(c.bad);
          await waitFor(() => bad.closed, 'bad client closed');
          good.socket.write(c.request(5));
          await expectBytes(good, c.expected(5), 'the other client is served');
          assert.equal(device.requests.length, 1);
        } finally {
          bad.socket.destroy();
          good.socket.destroy();
          await app.stop();
          await device.stop();
        }
      });
    }

    it(`a device that cannot be reached: ${c.answersFailures ? 'exception 0x0A' : 'the client is closed'}`, async () => {
      const device = await FramedDevice.start({ decoder: c.deviceDecoder, reply: c.reply });
      const target = device.target;
      await device.stop();
      const app = await startApp({ TARGET: target, PROTOCOL: c.protocol, LISTEN_PORT: '0', RECONNECT_MIN_MS: '5000', RECONNECT_MAX_MS: '5000' });
      const client = new Recorder(await connectTcp(app.port('tcp')));
      try {
        await waitFor(() => (app.engine.status() as { upstream: { state: string } }).upstream.state === 'backoff', 'backoff');
        client.socket.write(c.request(3));
        if (c.answersFailures) {
          await waitFor(() => client.length > 0, 'exception');
          assert.equal(client.bytes[c.protocol === 'modbus-rtu' ? 8 : 2], 0x0a);
          assert.equal(client.closed, false);
        } else {
          await waitFor(() => client.closed, 'closed');
        }
      } finally {
        client.socket.destroy();
        await app.stop();
      }
    });
  });
}

describe('mux mode, bad lengths', () => {
  it('an MPU length that is not 4 digits and an ISO 8583 length that lies close their client; nothing crashes', async () => {
    const device = await FramedDevice.start({ decoder: () => new MpuDecoder(), reply: mpu.reply });
    const app = await setup(mpu, device);
    const plus = new Recorder(await connectTcp(app.port('tcp')));
    const good = new Recorder(await connectTcp(app.port('tcp')));
    try {
      plus.socket.write(text('+012abcdefghijkl'));
      await waitFor(() => plus.closed, '"+012" refused');
      good.socket.write(mpu.request(9));
      await expectBytes(good, mpu.expected(9), 'served');
    } finally {
      plus.socket.destroy();
      good.socket.destroy();
      await app.stop();
      await device.stop();
    }

    // ISO 8583: a header announcing more than is sent is a frame that never completes; the client alone waits.
    const isoDevice = await FramedDevice.start({ decoder: () => new Iso8583Decoder(), reply: iso8583.reply });
    const isoApp = await setup(iso8583, isoDevice);
    const liar = new Recorder(await connectTcp(isoApp.port('tcp')));
    const other = new Recorder(await connectTcp(isoApp.port('tcp')));
    try {
      liar.socket.write(Buffer.concat([Buffer.from([0xff, 0xff]), text('short')]));
      other.socket.write(iso8583.request(4));
      await expectBytes(other, iso8583.expected(4), 'served');
      assert.equal(isoDevice.requests.length, 1);
    } finally {
      liar.socket.destroy();
      other.socket.destroy();
      await isoApp.stop();
      await isoDevice.stop();
    }
  });

  it('a client flooding past CLIENT_QUEUE with a protocol that has no exception is closed; others are served', async () => {
    const device = await FramedDevice.start({ decoder: () => new LineDecoder(), reply: echo.reply, delayMs: () => 20 });
    const app = await setup(echo, device, { CLIENT_QUEUE: '2' });
    const flooder = new Recorder(await connectTcp(app.port('tcp')));
    const good = new Recorder(await connectTcp(app.port('tcp')));
    try {
      flooder.socket.write(Buffer.concat([1, 2, 3, 4, 5].map((n) => echo.request(n))));
      await waitFor(() => flooder.closed, 'flooder closed');
      // It still got the answers to the requests it was allowed, in order, before the close.
      assert.deepEqual(flooder.bytes, Buffer.concat([echo.expected(1), echo.expected(2)]));
      good.socket.write(echo.request(7));
      await expectBytes(good, echo.expected(7), 'served');
      assert.equal(await metric(app, 'switchboard_requests_total', { protocol: 'echo', outcome: 'busy' }), 3);
    } finally {
      flooder.socket.destroy();
      good.socket.destroy();
      await app.stop();
      await device.stop();
    }
  });
});
