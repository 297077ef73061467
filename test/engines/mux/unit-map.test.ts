/**
 * UNIT_MAP (DESIGN §5) through switchboard: the device sees the mapped unit, the client always gets its own unit id back,
 * replies are matched on the mapped unit, and coalescing keys on the device unit.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { metric, waitFor } from '../../helpers.js';
import { exceptionOf, expectedRegisters, registersOf, type DeviceAction } from './devices.js';
import { withModbusSetup, writeRegisterPdu } from './modbus/setup.js';

describe('mux mode, UNIT_MAP', () => {
  it('round trip: client unit 1 reaches the device as unit 0 and gets unit 1 back; unmapped units pass unchanged', async () => {
    await withModbusSetup({}, { UNIT_MAP: '1=0' }, async ({ client, device }) => {
      const c = await client();
      const mapped = await c.read(1, 30, 4, { transactionId: 77 });
      assert.equal(mapped.unitId, 1);
      assert.equal(mapped.transactionId, 77);
      assert.deepEqual(registersOf(mapped), expectedRegisters(0, 30, 4), "unit 0's registers");
      const unmapped = await c.read(2, 30, 4);
      assert.equal(unmapped.unitId, 2);
      assert.deepEqual(registersOf(unmapped), expectedRegisters(2, 30, 4));
      assert.deepEqual(device.requests.map((r) => r.unitId), [0, 2]);
    });
  });

  it('a reply from the client unit id (not the mapped one) is not accepted: 0x0B', async () => {
    // wrong-unit answers with unit + 1: the device was asked as 0 and answers as 1, the client's own unit id.
    await withModbusSetup(
      { action: (_f, i): DeviceAction => (i === 0 ? { kind: 'wrong-unit' } : { kind: 'answer' }) },
      { UNIT_MAP: '1=0', UPSTREAM_TIMEOUT_MS: '300' },
      async ({ app, client }) => {
        const c = await client();
        assert.equal(exceptionOf(await c.read(1, 0, 1)), 0x0b);
        assert.equal(await metric(app, 'switchboard_stray_replies_total'), 1);
        assert.deepEqual(registersOf(await c.read(1, 0, 1)), expectedRegisters(0, 0, 1));
      },
    );
  });

  it('coalescing keys on the device unit: unit 1 (mapped to 0) and unit 0 share one read, each gets its own unit id', async () => {
    await withModbusSetup({ latencyMs: 200 }, { UNIT_MAP: '1=0' }, async ({ app, client, device }) => {
      const [a, b] = await Promise.all([client(), client()]);
      const first = a.read(1, 5, 2);
      await waitFor(() => device.requests.length === 1, 'the first read at the device');
      const second = await b.read(0, 5, 2);
      assert.equal(second.unitId, 0);
      assert.equal((await first).unitId, 1);
      assert.deepEqual(registersOf(second), expectedRegisters(0, 5, 2));
      assert.deepEqual(registersOf(await first), expectedRegisters(0, 5, 2));
      assert.equal(device.requests.length, 1);
      assert.equal(await metric(app, 'switchboard_requests_total', { protocol: 'modbus', outcome: 'coalesced' }), 1);
    });
  });

  it('WRITE_ALLOW names the client unit: UNIT_MAP=1=0 WRITE_ALLOW=1:100-110 lets unit 1 write, and the device gets unit 0', async () => {
    await withModbusSetup({}, { UNIT_MAP: '1=0', READ_ONLY: 'true', WRITE_ALLOW: '1:100-110' }, async ({ client, device }) => {
      const c = await client();
      const written = await c.request(1, writeRegisterPdu(105, 31));
      assert.equal(exceptionOf(written), undefined);
      assert.equal(written.unitId, 1);
      assert.equal(device.written.get('0:r:105'), 31);
      assert.equal(exceptionOf(await c.request(0, writeRegisterPdu(105, 32))), 0x01, 'unit 0 is not unit 1 to WRITE_ALLOW');
      assert.deepEqual(device.requests.map((r) => `${r.unitId}:${r.functionCode}`), ['0:6']);
    });
  });
});
