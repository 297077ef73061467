/**
 * mux mode against the npm Modbus libraries (devDependencies, written by nobody here): jsmodbus and modbus-serial as
 * clients, modbus-serial's ServerTCP as the device, and modbus-serial's raw-RTU-over-TCP client through PROTOCOL=modbus-serial.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import { describe, it } from 'node:test';
import { encodeRtu, RtuRequestDecoder, type RtuFrame } from '../../src/protocols/modbus-rtu.js';
import { startApp, waitFor } from '../helpers.js';
import { expectedRegisters, FramedDevice, ModbusDevice, replyPdu } from '../engines/mux/devices.js';

// Both are CommonJS packages whose typings describe an ES default export; require() gives what they really export.
const require = createRequire(import.meta.url);
const jsmodbus = require('jsmodbus') as typeof import('jsmodbus');
type ModbusRTU = import('modbus-serial').default;
const ModbusRTU = require('modbus-serial') as { new (): ModbusRTU; ServerTCP: typeof import('modbus-serial').ServerTCP };

async function jsmodbusClient(port: number, unitId: number) {
  const socket = new Socket();
  const client = new jsmodbus.client.TCP(socket, unitId, 5000);
  socket.connect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  return { client, socket };
}

async function modbusSerialClient(port: number) {
  const client = new ModbusRTU();
  await client.connectTCP('127.0.0.1', { port });
  client.setTimeout(5000);
  return client;
}

/** close() waits for the peer's close; bounded, so a test never hangs on it. */
function closeModbusSerial(client: ModbusRTU): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      client.destroy(() => {});
      resolve();
    }, 1000);
    client.close(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

describe('Modbus interop: jsmodbus and modbus-serial', () => {
  it('jsmodbus and modbus-serial clients at once, through switchboard, each read the device values; one upstream connection', async () => {
    const device = await ModbusDevice.start();
    const app = await startApp({ TARGET: device.target, PROTOCOL: 'modbus', LISTEN_PORT: '0' });
    const port = app.port('tcp');
    const js = await Promise.all([1, 2, 3].map((unit) => jsmodbusClient(port, unit)));
    const ms = await Promise.all([1, 2].map(() => modbusSerialClient(port)));
    try {
      await Promise.all([
        ...js.map(async ({ client }, k) => {
          for (let i = 0; i < 10; i++) {
            const address = k * 100 + i * 3;
            const { response } = await client.readHoldingRegisters(address, 4);
            assert.deepEqual(response.body.valuesAsArray, expectedRegisters(k + 1, address, 4));
          }
        }),
        ...ms.map(async (client, k) => {
          for (let i = 0; i < 10; i++) {
            const unit = 4 + k;
            client.setID(unit);
            const address = 500 + i * 11;
            const { data } = await client.readHoldingRegisters(address, 5);
            assert.deepEqual(data, expectedRegisters(unit, address, 5));
          }
        }),
      ]);
      assert.equal(device.connections, 1);
    } finally {
      for (const { socket } of js) socket.destroy();
      for (const client of ms) await closeModbusSerial(client);
      await app.stop();
      await device.stop();
    }
  });

  it('jsmodbus sees exception 0x0B from a silent device and keeps its connection', async () => {
    const device = await ModbusDevice.start({ action: (_f, i) => (i === 0 ? { kind: 'silent' } : { kind: 'answer' }) });
    const app = await startApp({ TARGET: device.target, PROTOCOL: 'modbus', LISTEN_PORT: '0', UPSTREAM_TIMEOUT_MS: '300' });
    const { client, socket } = await jsmodbusClient(app.port('tcp'), 1);
    try {
      await waitFor(() => device.connections === 1, 'upstream connected');
      await assert.rejects(client.readHoldingRegisters(0, 1), (error: { response?: { body?: { code?: number } } }) => {
        assert.equal(error.response?.body?.code, 0x0b);
        return true;
      });
      const { response } = await client.readHoldingRegisters(7, 2);
      assert.deepEqual(response.body.valuesAsArray, expectedRegisters(1, 7, 2));
    } finally {
      socket.destroy();
      await app.stop();
      await device.stop();
    }
  });

  it('modbus-serial ServerTCP as the device: values through switchboard equal values read directly', async () => {
    const value = (address: number) => (address * 17 + 3) & 0xffff;
    const server = new ModbusRTU.ServerTCP(
      { getHoldingRegister: (address: number) => value(address) },
      { host: '127.0.0.1', port: 0, unitID: 1 },
    );
    await once(server, 'initialized');
    const devicePort = ((server as unknown as { _server: { address(): { port: number } } })._server.address()).port;
    const app = await startApp({ TARGET: `127.0.0.1:${devicePort}`, PROTOCOL: 'modbus', LISTEN_PORT: '0' });
    const direct = await modbusSerialClient(devicePort);
    const through = await modbusSerialClient(app.port('tcp'));
    try {
      direct.setID(1);
      through.setID(1);
      for (const address of [0, 10, 200]) {
        const a = (await direct.readHoldingRegisters(address, 6)).data;
        const b = (await through.readHoldingRegisters(address, 6)).data;
        assert.deepEqual(b, a);
        assert.deepEqual(b, Array.from({ length: 6 }, (_, i) => value(address + i)));
      }
    } finally {
      await closeModbusSerial(direct);
      await closeModbusSerial(through);
      await app.stop();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('PROTOCOL=modbus-serial: modbus-serial raw-RTU-over-TCP clients share one RTU device', async () => {
    const device = await FramedDevice.start<RtuFrame>({
      decoder: () => new RtuRequestDecoder(),
      reply: (f) => encodeRtu(f.unitId, replyPdu(f.unitId, f.pdu)),
    });
    const app = await startApp({ TARGET: device.target, PROTOCOL: 'modbus-serial', LISTEN_PORT: '0' });
    const clients = await Promise.all(
      [1, 2, 3].map(async () => {
        const client = new ModbusRTU();
        // modbus-serial's "telnet" port is raw RTU over TCP (its "TcpRTUBuffered" port actually speaks MBAP).
        await client.connectTelnet('127.0.0.1', { port: app.port('tcp') });
        client.setTimeout(5000);
        return client;
      }),
    );
    try {
      await Promise.all(
        clients.map(async (client, k) => {
          client.setID(k + 1);
          for (let i = 0; i < 5; i++) {
            const { data } = await client.readHoldingRegisters(i * 10, 3);
            assert.deepEqual(data, expectedRegisters(k + 1, i * 10, 3));
          }
        }),
      );
      assert.equal(device.connections, 1);
    } finally {
      for (const client of clients) await closeModbusSerial(client);
      await app.stop();
      await device.stop();
    }
  });
});
