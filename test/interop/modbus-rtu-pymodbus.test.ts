/**
 * TARGET=rtu:host:port against pymodbus's own RTU framer served over TCP (Debian's python3-pymodbus: what an RS-485
 * gateway in transparent mode looks like to switchboard), with pymodbus's Modbus TCP client and mbpoll in front. Values
 * read through switchboard must equal the device's; a broadcast write (unit 0) must reach every unit. A missing peer skips
 * on a developer machine and fails under CI=true.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ExceptionCode } from '../../src/protocols/modbus-tcp.js';
import { startApp, waitFor } from '../helpers.js';
import { exceptionOf, ModbusClient, registersOf } from '../engines/mux/devices.js';
import {
  hasMbpoll,
  hasPymodbus,
  mbpollRead,
  needs,
  PYMODBUS_DEVICE_PRELUDE,
  pymodbusRegisters as expected,
  PythonPeers,
  type Reads,
} from './modbus-peers.js';

/** Units 1-3 on an RTU "bus" over TCP (pymodbus's RTU framer), broadcasts applied. */
const RTU_DEVICE = `${PYMODBUS_DEVICE_PRELUDE}
from pymodbus.transaction import ModbusRtuFramer
asyncio.run(StartAsyncTcpServer(context=ModbusServerContext(slaves=slaves, single=False), address=("127.0.0.1", port),
                                framer=ModbusRtuFramer, broadcast_enable=True))
`;

describe('Modbus RTU target interop: pymodbus RTU framer over TCP', () => {
  const peers = new PythonPeers();
  let devicePort = 0;

  before(async () => {
    if (hasPymodbus) devicePort = await peers.startDevice('rtu_device.py', RTU_DEVICE);
  });

  after(() => peers.close());

  async function gateway(env: Record<string, string> = {}) {
    const app = await startApp({ TARGET: `rtu:127.0.0.1:${devicePort}`, PROTOCOL: 'modbus', LISTEN_PORT: '0', ...env });
    await waitFor(() => (app.engine.status() as { upstream: { state: string } }).upstream.state === 'up', 'upstream up', 10_000);
    return app;
  }

  it('pymodbus and mbpoll (Modbus TCP) read an RTU device through switchboard', async (t) => {
    if (!needs(t, hasPymodbus, 'python3-pymodbus') || !needs(t, hasMbpoll, 'mbpoll')) return;
    const app = await gateway();
    try {
      const reads: Reads = [
        [1, 0, 5],
        [2, 10, 3],
        [3, 500, 10],
        [1, 990, 10],
      ];
      const [viaPymodbus, viaMbpoll] = await Promise.all([
        peers.read(app.port('tcp'), reads),
        mbpollRead(app.port('tcp'), 2, 40, 8),
      ]);
      assert.deepEqual(viaPymodbus, reads.map(([u, a, c]) => expected(u, a, c)));
      assert.deepEqual(viaMbpoll, expected(2, 40, 8));
    } finally {
      await app.stop();
    }
  });

  it('a unit 0 broadcast write is answered locally and reaches every unit on the bus', async (t) => {
    if (!needs(t, hasPymodbus, 'python3-pymodbus')) return;
    const app = await gateway();
    const modbus = await ModbusClient.connect(app.port('tcp'));
    try {
      const answer = await modbus.request(0, Buffer.from([16, 0, 200, 0, 2, 4, 0x0a, 0x0b, 0x0c, 0x0d]));
      assert.deepEqual(answer.pdu, Buffer.from([16, 0, 200, 0, 2]));
      for (const unit of [1, 2, 3]) {
        assert.deepEqual(registersOf(await modbus.read(unit, 200, 2)), [0x0a0b, 0x0c0d], `unit ${unit}`);
      }
      assert.equal(exceptionOf(await modbus.read(0, 200, 2)), ExceptionCode.GATEWAY_TARGET_FAILED_TO_RESPOND);
    } finally {
      modbus.close();
      await app.stop();
    }
  });

  it('a unit missing from the bus gets 0x0B, and the bus serves the next request', async (t) => {
    if (!needs(t, hasPymodbus, 'python3-pymodbus')) return;
    const app = await gateway({ UPSTREAM_TIMEOUT_MS: '300' });
    const modbus = await ModbusClient.connect(app.port('tcp'));
    try {
      assert.equal(exceptionOf(await modbus.read(9, 0, 2)), ExceptionCode.GATEWAY_TARGET_FAILED_TO_RESPOND);
      assert.deepEqual(registersOf(await modbus.read(1, 0, 2)), expected(1, 0, 2));
    } finally {
      modbus.close();
      await app.stop();
    }
  });
});
