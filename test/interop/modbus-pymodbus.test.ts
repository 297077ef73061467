/**
 * mux mode against Modbus programs nobody here wrote: pymodbus 3 (Debian's python3-pymodbus, run with /usr/bin/python3) as
 * the device and as a client, mbpoll as a client, and several of them at once. Values read through switchboard must equal
 * values read directly. A missing peer skips on a developer machine and fails under CI=true.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { freePort, sleep, startApp, waitFor } from '../helpers.js';
import { ModbusDevice } from '../engines/mux/devices.js';
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

/** The device: units 1-3, holding registers 0-999 (pymodbusRegisters), input registers without the unit. */
const SIMULATOR = `${PYMODBUS_DEVICE_PRELUDE}
asyncio.run(StartAsyncTcpServer(context=ModbusServerContext(slaves=slaves, single=False), address=("127.0.0.1", port)))
`;

const READS: Reads = [
  [1, 0, 5],
  [2, 10, 3],
  [3, 500, 10],
  [1, 990, 10],
  [2, 123, 1],
];

describe('Modbus interop: pymodbus and mbpoll', () => {
  const peers = new PythonPeers();
  let simPort = 0;
  const pymodbusRead = (port: number, reads: Reads) => peers.read(port, reads);

  before(async () => {
    if (hasPymodbus) simPort = await peers.startDevice('simulator.py', SIMULATOR);
  });

  after(() => peers.close());

  it('pymodbus client: values through switchboard equal values read directly from the pymodbus device', async (t) => {
    if (!needs(t, hasPymodbus, 'python3-pymodbus')) return;
    const app = await startApp({ TARGET: `127.0.0.1:${simPort}`, PROTOCOL: 'modbus', LISTEN_PORT: '0' });
    try {
      const direct = await pymodbusRead(simPort, READS);
      const through = await pymodbusRead(app.port('tcp'), READS);
      assert.deepEqual(through, direct);
      assert.deepEqual(through, READS.map(([u, a, c]) => expected(u, a, c)));
    } finally {
      await app.stop();
    }
  });

  it('mbpoll client: values through switchboard equal values read directly', async (t) => {
    if (!needs(t, hasPymodbus, 'python3-pymodbus') || !needs(t, hasMbpoll, 'mbpoll')) return;
    const app = await startApp({ TARGET: `127.0.0.1:${simPort}`, PROTOCOL: 'modbus', LISTEN_PORT: '0' });
    try {
      for (const [unit, address, count] of READS.slice(0, 3)) {
        const direct = await mbpollRead(simPort, unit, address, count);
        const through = await mbpollRead(app.port('tcp'), unit, address, count);
        assert.deepEqual(through, direct);
        assert.deepEqual(through, expected(unit, address, count));
      }
    } finally {
      await app.stop();
    }
  });

  it('several pymodbus and mbpoll clients at once each get their own answers', async (t) => {
    if (!needs(t, hasPymodbus, 'python3-pymodbus') || !needs(t, hasMbpoll, 'mbpoll')) return;
    const app = await startApp({ TARGET: `127.0.0.1:${simPort}`, PROTOCOL: 'modbus', LISTEN_PORT: '0' });
    try {
      const port = app.port('tcp');
      const plans: Reads[] = [0, 1, 2, 3].map((k) =>
        Array.from({ length: 20 }, (_, i): [number, number, number] => [1 + ((k + i) % 3), (k * 200 + i * 7) % 990, 1 + ((k + i) % 10)]),
      );
      const [p0, p1, p2, p3, m] = await Promise.all([
        ...plans.map((plan) => pymodbusRead(port, plan)),
        Promise.all([1, 2, 3].map((unit) => mbpollRead(port, unit, 40 * unit, 8))),
      ]);
      for (const [k, got] of [p0, p1, p2, p3].entries()) {
        assert.deepEqual(got, plans[k]!.map(([u, a, c]) => expected(u, a, c)), `pymodbus client ${k}`);
      }
      assert.deepEqual(m, [1, 2, 3].map((unit) => expected(unit, 40 * unit, 8)));
    } finally {
      await app.stop();
    }
  });

  it('pymodbus client meets a silent device: exception 0x0B, and the next read on the same connection works', async (t) => {
    if (!needs(t, hasPymodbus, 'python3-pymodbus')) return;
    const device = await ModbusDevice.start({ action: (_f, i) => (i === 0 ? { kind: 'silent' } : { kind: 'answer' }) });
    const app = await startApp({ TARGET: device.target, PROTOCOL: 'modbus', LISTEN_PORT: '0', UPSTREAM_TIMEOUT_MS: '300' });
    try {
      await waitFor(() => device.connections === 1, 'upstream connected');
      const got = await pymodbusRead(app.port('tcp'), [
        [1, 0, 2],
        [1, 0, 2],
      ]);
      assert.deepEqual(got[0], { exception: 0x0b });
      assert.equal(Array.isArray(got[1]), true);
    } finally {
      await app.stop();
      await device.stop();
    }
  });

  it('pymodbus client meets an unreachable device: exception 0x0A', async (t) => {
    if (!needs(t, hasPymodbus, 'python3-pymodbus')) return;
    const port = await freePort();
    const app = await startApp({ TARGET: `127.0.0.1:${port}`, PROTOCOL: 'modbus', LISTEN_PORT: '0', RECONNECT_MIN_MS: '2000', RECONNECT_MAX_MS: '4000' });
    try {
      await waitFor(() => (app.engine.status() as { upstream: { state: string } }).upstream.state === 'backoff', 'backoff');
      await sleep(10);
      assert.deepEqual(await pymodbusRead(app.port('tcp'), [[1, 0, 1]]), [{ exception: 0x0a }]);
    } finally {
      await app.stop();
    }
  });
});
