/**
 * Issue 6's Modbus rules seen by real client libraries (jsmodbus, modbus-serial: devDependencies written by nobody here):
 * coalesced and cached answers, UNIT_MAP and READ_ONLY refusals must look to them exactly like a device's own answers.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import { describe, it } from 'node:test';
import { metric } from '../../helpers.js';
import { expectedRegisters } from './devices.js';
import { withModbusSetup } from './modbus/setup.js';

const require = createRequire(import.meta.url);
const jsmodbus = require('jsmodbus') as typeof import('jsmodbus');
type ModbusRTU = import('modbus-serial').default;
const ModbusRTU = require('modbus-serial') as { new (): ModbusRTU };

async function jsmodbusClient(port: number, unitId: number) {
  const socket = new Socket();
  const client = new jsmodbus.client.TCP(socket, unitId, 5000);
  socket.connect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  return { client, socket };
}

async function modbusSerialClient(port: number, unitId: number): Promise<ModbusRTU> {
  const client = new ModbusRTU();
  await client.connectTCP('127.0.0.1', { port });
  client.setTimeout(5000);
  client.setID(unitId);
  return client;
}

describe('issue 6 rules with jsmodbus and modbus-serial clients', () => {
  it('coalesced and cached answers reach jsmodbus and modbus-serial clients as ordinary answers (UNIT_MAP=1=0)', async () => {
    await withModbusSetup({ latencyMs: 200 }, { UNIT_MAP: '1=0', CACHE_TTL_MS: '60000' }, async ({ app, device }) => {
      const port = app.port('tcp');
      const js = await Promise.all([1, 1, 0].map((unit) => jsmodbusClient(port, unit)));
      const ms = await Promise.all([1, 0].map((unit) => modbusSerialClient(port, unit)));
      try {
        const read = () =>
          Promise.all([
            ...js.map(async ({ client }) => (await client.readHoldingRegisters(40, 10)).response.body.valuesAsArray),
            ...ms.map(async (client) => (await client.readHoldingRegisters(40, 10)).data),
          ]);
        for (const values of await read()) assert.deepEqual(values, expectedRegisters(0, 40, 10));
        assert.equal(device.requests.length, 1, 'one upstream read for five clients');
        assert.equal(device.requests[0]!.unitId, 0);
        assert.equal(await metric(app, 'switchboard_requests_total', { protocol: 'modbus', outcome: 'coalesced' }), 4);
        for (const values of await read()) assert.deepEqual(values, expectedRegisters(0, 40, 10));
        assert.equal(device.requests.length, 1, 'the second round comes from the cache');
        assert.equal(await metric(app, 'switchboard_requests_total', { protocol: 'modbus', outcome: 'cached' }), 5);
      } finally {
        for (const { socket } of js) socket.destroy();
        for (const client of ms) client.destroy(() => {});
      }
    });
  });

  it('READ_ONLY refusals are Modbus exception 1 to both libraries, and an allowed write goes through', async () => {
    await withModbusSetup({}, { READ_ONLY: 'true', WRITE_ALLOW: '1:40000-40010' }, async ({ app, device }) => {
      const port = app.port('tcp');
      const { client: js, socket } = await jsmodbusClient(port, 1);
      const ms = await modbusSerialClient(port, 1);
      try {
        await assert.rejects(js.writeSingleRegister(100, 1), (error: { response?: { body?: { code?: number } } }) => {
          assert.equal(error.response?.body?.code, 1);
          return true;
        });
        await assert.rejects(ms.writeRegisters(40009, [1, 2, 3]), (error: { modbusCode?: number }) => {
          assert.equal(error.modbusCode, 1);
          return true;
        });
        await ms.writeRegisters(40000, [11, 12]);
        assert.deepEqual((await js.readHoldingRegisters(40000, 2)).response.body.valuesAsArray, [11, 12]);
        assert.deepEqual(device.requests.map((r) => r.functionCode), [16, 3]);
      } finally {
        socket.destroy();
        ms.destroy(() => {});
      }
    });
  });
});
