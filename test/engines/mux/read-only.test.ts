/**
 * READ_ONLY and WRITE_ALLOW through switchboard (DESIGN §5): refused requests get exception 0x01 at once, in the client's
 * order, are counted as outcome `rejected`, and never reach the device; allow-listed writes do.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { metric } from '../../helpers.js';
import { hex } from '../../protocols/codec-harness.js';
import { exceptionOf, expectedRegisters, registersOf } from './devices.js';
import { withModbusSetup, writeRegisterPdu, writeRegistersPdu } from './modbus/setup.js';

const ENERGY_MANAGER = { READ_ONLY: 'true', WRITE_ALLOW: '1:40000-40010' };

/** Every non-read request the issue names, and then some. */
const REFUSED_PDUS: Array<[string, string]> = [
  ['FC 5', '05 0001 FF00'],
  ['FC 6', '06 0001 0003'],
  ['FC 8 diagnostics', '08 0001 0000'],
  ['FC 15', '0F 0013 000A 02 CD01'],
  ['FC 16', '10 0001 0002 04 000A 0102'],
  ['FC 21', '15 0D 06 0004 0007 0003 06AF 04BE 100D'],
  ['FC 22', '16 0004 00F2 0025'],
  ['FC 23', '17 0003 0006 000E 0003 06 00FF 00FF 00FF'],
  ['FC 43/13', '2B 0D 00'],
  ['vendor 0x41', '41 0102'],
];

describe('mux mode, READ_ONLY and WRITE_ALLOW', () => {
  it('every non-read function code is answered 0x01, counted as rejected, and never reaches the device', async () => {
    await withModbusSetup({}, ENERGY_MANAGER, async ({ app, client, device }) => {
      const c = await client();
      // Pipelined together with reads: the answers come in order, the reads are served.
      const answers = await Promise.all([
        c.read(1, 0, 2),
        ...REFUSED_PDUS.map(([, pdu]) => c.request(1, hex(pdu))),
        c.read(1, 100, 3),
      ]);
      assert.deepEqual(registersOf(answers[0]!), expectedRegisters(1, 0, 2));
      assert.deepEqual(registersOf(answers.at(-1)!), expectedRegisters(1, 100, 3));
      REFUSED_PDUS.forEach(([name, pdu], i) => {
        const answer = answers[i + 1]!;
        assert.equal(exceptionOf(answer), 0x01, name);
        assert.equal(answer.functionCode, hex(pdu)[0]! | 0x80, name);
        assert.equal(answer.unitId, 1, name);
      });
      assert.deepEqual(
        device.requests.map((r) => r.functionCode),
        [3, 3],
        'only the reads reached the device',
      );
      assert.equal(await metric(app, 'switchboard_requests_total', { protocol: 'modbus', outcome: 'rejected' }), REFUSED_PDUS.length);
      assert.equal(await metric(app, 'switchboard_requests_total', { protocol: 'modbus', outcome: 'ok' }), 2);
    });
  });

  it('other reads pass: FC 1, 2, 4, 7, 17 and 43/14 reach the device', async () => {
    await withModbusSetup({}, ENERGY_MANAGER, async ({ app, client, device }) => {
      const c = await client();
      for (const pdu of ['01 0000 0008', '02 0000 0008', '04 0000 0001', '07', '11', '2B 0E 01 00']) await c.request(1, hex(pdu));
      assert.deepEqual(device.requests.map((r) => r.functionCode), [1, 2, 4, 7, 0x11, 0x2b]);
      assert.equal(await metric(app, 'switchboard_requests_total', { protocol: 'modbus', outcome: 'rejected' }), 0);
    });
  });

  it('allow-listed writes pass (FC 6 and 16 inside 40000-40010 of unit 1) and the device applies them', async () => {
    await withModbusSetup({}, ENERGY_MANAGER, async ({ client, device }) => {
      const c = await client();
      const single = await c.request(1, writeRegisterPdu(40000, 1234));
      assert.equal(exceptionOf(single), undefined);
      const multiple = await c.request(1, writeRegistersPdu(40008, [7, 8, 9]));
      assert.equal(exceptionOf(multiple), undefined);
      assert.deepEqual(registersOf(await c.read(1, 40008, 3)), [7, 8, 9]);
      assert.equal(device.written.get('1:r:40000'), 1234);
      assert.deepEqual(device.requests.map((r) => r.functionCode), [6, 16, 3]);
    });
  });

  it('a write reaching outside the allowed range is refused whole (FC 16 over 40009-40012); so is one to another unit or a malformed one', async () => {
    await withModbusSetup({}, ENERGY_MANAGER, async ({ app, client, device }) => {
      const c = await client();
      const outside = await c.request(1, writeRegistersPdu(40009, [1, 2, 3, 4]));
      assert.equal(exceptionOf(outside), 0x01);
      const otherUnit = await c.request(2, writeRegisterPdu(40000, 1));
      assert.equal(exceptionOf(otherUnit), 0x01);
      // byte count 3 for a quantity of 2: its reach cannot be told
      const malformed = await c.request(1, hex('10 9C40 0002 03 0001 00'));
      assert.equal(exceptionOf(malformed), 0x01);
      assert.equal(device.requests.length, 0, 'nothing refused reached the device');
      assert.equal(device.written.size, 0);
      assert.equal(await metric(app, 'switchboard_requests_total', { protocol: 'modbus', outcome: 'rejected' }), 3);
    });
  });

  it('refusals come before CLIENT_QUEUE: 0x01 (not 0x06) while the queue is full, answered in order after the read', async () => {
    await withModbusSetup({ latencyMs: 200 }, { ...ENERGY_MANAGER, CLIENT_QUEUE: '1' }, async ({ client, device }) => {
      const c = await client();
      const read = c.read(1, 0, 1);
      const refused = Promise.all([1, 2, 3].map(() => c.request(1, hex('08 0001 0000'))));
      const readAnswer = await read;
      for (const frame of await refused) assert.equal(exceptionOf(frame), 0x01);
      assert.deepEqual(registersOf(readAnswer), expectedRegisters(1, 0, 1));
      // In the client's order: the read's answer first, then the refusals.
      assert.deepEqual(c.received.map((frame) => frame.functionCode), [0x03, 0x88, 0x88, 0x88]);
      assert.equal(device.requests.length, 1);
    });
  });

  it('without READ_ONLY every function reaches the device and the device answers it', async () => {
    await withModbusSetup({}, {}, async ({ app, client, device }) => {
      const c = await client();
      const answer = await c.request(1, hex('41 0102'));
      assert.equal(exceptionOf(answer), 0x01); // the simulator's own answer to an unknown function
      assert.equal(device.requests.length, 1);
      assert.equal(await metric(app, 'switchboard_requests_total', { protocol: 'modbus', outcome: 'rejected' }), 0);
      assert.equal(await metric(app, 'switchboard_requests_total', { protocol: 'modbus', outcome: 'exception' }), 1);
    });
  });
});
