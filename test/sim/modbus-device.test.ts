/**
 * The Modbus device simulator (src/sim/): known values, one connection at a time, latency, the faults on demand, pipelined
 * answers, the CLI, and real clients nobody here wrote (mbpoll, pymodbus via /usr/bin/python3) reading the known values.
 * A missing peer skips on a developer machine and fails under CI=true. Timing bounds leave at least 250 ms of slack.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { encodeModbusTcp } from '../../src/protocols/modbus-tcp.js';
import { coilValue, expectedRegisters, ModbusDevice } from '../../src/sim/modbus-device.js';
import { parseSimOptions } from '../../src/sim/options.js';
import { connectTcp, sleep, waitFor } from '../helpers.js';
import { exceptionOf, ModbusClient, readPdu, registersOf } from '../engines/mux/devices.js';
import { hasMbpoll, hasPymodbus, mbpollRead, needs, PYTHON, run } from '../interop/modbus-peers.js';

/** Runs `body` with a device, closing it and the clients afterwards. */
async function withDevice(
  options: ConstructorParameters<typeof ModbusDevice>[0],
  body: (device: ModbusDevice, client: () => Promise<ModbusClient>) => Promise<void>,
): Promise<void> {
  const device = await ModbusDevice.start(options);
  const clients: ModbusClient[] = [];
  try {
    await body(device, async () => {
      const c = await ModbusClient.connect(device.port);
      clients.push(c);
      return c;
    });
  } finally {
    for (const c of clients) c.close();
    await device.stop();
  }
}

describe('Modbus device simulator', () => {
  it('answers reads with the known values, stores writes, and refuses bad requests with the spec exceptions', async () => {
    await withDevice({}, async (_device, client) => {
      const c = await client();
      assert.deepEqual(registersOf(await c.read(1, 0, 5)), expectedRegisters(1, 0, 5));
      assert.deepEqual(registersOf(await c.read(7, 65530, 6, { fc: 4 })), expectedRegisters(7, 65530, 6));
      const coils = await c.read(2, 3, 10, { fc: 1 });
      assert.equal(coils.pdu[1], 2); // byte count: ceil(10 / 8)
      for (let i = 0; i < 10; i++) assert.equal(((coils.pdu[2 + (i >> 3)]! >> (i & 7)) & 1) === 1, coilValue(2, 3 + i), `coil ${3 + i}`);

      const write = Buffer.from([6, 0, 20, 0x12, 0x34]);
      assert.deepEqual((await c.request(1, write)).pdu, write); // FC 6 echoes the request (V1.1b3 §6.6)
      assert.deepEqual(registersOf(await c.read(1, 19, 3)), [expectedRegisters(1, 19, 1)[0], 0x1234, expectedRegisters(1, 21, 1)[0]]);
      assert.deepEqual(registersOf(await c.read(2, 20, 1)), expectedRegisters(2, 20, 1)); // another unit is untouched

      assert.equal(exceptionOf(await c.read(1, 0, 126)), 0x03); // more than 125 registers
      assert.equal(exceptionOf(await c.read(1, 65535, 2)), 0x02); // past the last address
      assert.equal(exceptionOf(await c.request(1, Buffer.from([0x41, 0]))), 0x01); // a function it does not have
    });
  });

  it('serves one connection at a time: a second is reset while the first is open, and served once it closes', async () => {
    await withDevice({}, async (device, client) => {
      const first = await client();
      assert.deepEqual(registersOf(await first.read(1, 1, 1)), expectedRegisters(1, 1, 1));
      const second = await client();
      await waitFor(() => second.closed, 'second connection reset', 2000);
      assert.equal(device.rejectedConnections, 1);
      assert.deepEqual(registersOf(await first.read(1, 2, 1)), expectedRegisters(1, 2, 1));
      first.close();
      await waitFor(() => device.open.size === 0, 'first closed');
      const third = await client();
      assert.deepEqual(registersOf(await third.read(1, 3, 1)), expectedRegisters(1, 3, 1));
      assert.equal(device.connections, 3);
    });
  });

  it('with oneConnection false, serves several connections at once', async () => {
    await withDevice({ oneConnection: false }, async (device, client) => {
      const [a, b] = await Promise.all([client(), client()]);
      const answers = await Promise.all([a!.read(1, 1, 1), b!.read(2, 2, 1)]);
      assert.deepEqual(answers.map(registersOf), [expectedRegisters(1, 1, 1), expectedRegisters(2, 2, 1)]);
      assert.equal(device.rejectedConnections, 0);
    });
  });

  it('answers after latencyMs, one request at a time unless pipelined', async () => {
    await withDevice({ latencyMs: 100 }, async (device, client) => {
      const c = await client();
      const started = Date.now();
      await Promise.all(Array.from({ length: 4 }, (_, i) => c.read(1, i, 1)));
      const took = Date.now() - started;
      assert.ok(took >= 390 && took < 1500, `4 serial answers in ${took} ms`);
      assert.equal(device.maxOutstanding, 4);
    });
    await withDevice({ latencyMs: 100, pipelined: true }, async (device, client) => {
      const c = await client();
      const started = Date.now();
      const answers = await Promise.all(Array.from({ length: 4 }, (_, i) => c.read(1, i * 10, 2)));
      const took = Date.now() - started;
      assert.ok(took >= 95 && took < 350, `4 pipelined answers in ${took} ms`);
      answers.forEach((a, i) => assert.deepEqual(registersOf(a), expectedRegisters(1, i * 10, 2)));
      assert.equal(device.maxOutstanding, 4);
    });
  });

  it('a silent unit never answers; other units do', async () => {
    await withDevice({ faults: { silentUnits: [9] } }, async (_device, client) => {
      const c = await client();
      await assert.rejects(c.read(9, 0, 1, { timeoutMs: 300 }), /no answer/);
      assert.deepEqual(registersOf(await c.read(8, 0, 1)), expectedRegisters(8, 0, 1));
    });
  });

  it('every Nth request is answered late, without holding up the next one', async () => {
    await withDevice({ faults: { lateEvery: 2, lateMs: 400 } }, async (_device, client) => {
      const c = await client();
      assert.deepEqual(registersOf(await c.read(1, 1, 1)), expectedRegisters(1, 1, 1));
      const started = Date.now();
      const late = c.read(1, 2, 1).then(() => Date.now() - started);
      const next = c.read(1, 3, 1).then(() => Date.now() - started);
      const [lateMs, nextMs] = await Promise.all([late, next]);
      assert.ok(lateMs >= 390, `late reply after ${lateMs} ms`);
      assert.ok(nextMs < lateMs, `the next request was answered first (${nextMs} ms)`);
    });
  });

  it('every Nth reply is preceded by a stray frame with a transaction id nobody used', async () => {
    await withDevice({ faults: { strayEvery: 1 } }, async (_device, client) => {
      const c = await client();
      const answer = await c.read(1, 4, 2, { transactionId: 42 });
      assert.deepEqual(registersOf(answer), expectedRegisters(1, 4, 2));
      await waitFor(() => c.received.length === 2, 'stray and reply');
      assert.notEqual(c.received[0]!.transactionId, 42);
      assert.equal(c.received[1]!.transactionId, 42);
    });
  });

  it('every Nth request gets half a reply and a close', async () => {
    await withDevice({ faults: { closeMidReplyEvery: 2 } }, async (_device, client) => {
      const c = await client();
      assert.deepEqual(registersOf(await c.read(1, 1, 1)), expectedRegisters(1, 1, 1));
      const bytes: Buffer[] = [];
      c.socket.on('data', (chunk: Buffer) => bytes.push(chunk));
      c.socket.write(encodeModbusTcp(2, 1, readPdu(3, 1, 1)));
      await once(c.socket, 'close');
      assert.equal(Buffer.concat(bytes).length, 5);
    });
  });

  it('refuses connections while switched off and accepts them again on the same port', async () => {
    await withDevice({}, async (device, client) => {
      const port = device.port;
      await device.refuseConnections();
      const refused = connect({ host: '127.0.0.1', port });
      const [error] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
      assert.equal(error.code, 'ECONNREFUSED');
      await device.acceptConnections();
      assert.equal(device.port, port);
      const c = await client();
      assert.deepEqual(registersOf(await c.read(1, 1, 1)), expectedRegisters(1, 1, 1));
    });
  });

  it('replies to a chunk of pipelined requests in one write and never mixes up units', async () => {
    await withDevice({ pipelined: true }, async (device, client) => {
      const c = await client();
      const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => c.read(1 + (i % 5), i * 3, 1 + (i % 7))));
      answers.forEach((a, i) => assert.deepEqual(registersOf(a), expectedRegisters(1 + (i % 5), i * 3, 1 + (i % 7))));
      assert.equal(device.requestCount, 50);
    });
  });
});

describe('Modbus device simulator, slow mode, units and counters', () => {
  it('rejects requests sooner than connectDelayMs after the connect with 0x06 and counts them; later ones are served', async () => {
    await withDevice({ connectDelayMs: 400 }, async (device, client) => {
      const c = await client();
      const early = await c.read(1, 0, 2, { transactionId: 7 });
      assert.equal(early.transactionId, 7);
      assert.equal(early.unitId, 1);
      assert.equal(early.functionCode, 0x83);
      assert.equal(exceptionOf(early), 0x06);
      assert.equal(device.tooEarlyAfterConnect, 1);
      assert.equal(device.rejectedRequests, 1);
      assert.equal(device.requestsServed, 0);
      await sleep(450);
      assert.deepEqual(registersOf(await c.read(1, 0, 2)), expectedRegisters(1, 0, 2));
      assert.equal(device.rejectedRequests, 1);
      assert.equal(device.requestsServed, 1);
      assert.equal(device.requestCount, 2);
    });
  });

  it('the connect delay counts per connection: a new connection is early again', async () => {
    await withDevice({ connectDelayMs: 300 }, async (device, client) => {
      const first = await client();
      await sleep(350);
      assert.deepEqual(registersOf(await first.read(1, 5, 1)), expectedRegisters(1, 5, 1));
      first.close();
      await waitFor(() => device.open.size === 0, 'first closed');
      const second = await client();
      assert.equal(exceptionOf(await second.read(1, 5, 1)), 0x06);
      assert.equal(device.tooEarlyAfterConnect, 1);
    });
  });

  it('rejects a request sooner than minGapMs after the previous reply, or sent before it, and serves one after the gap', async () => {
    await withDevice({ minGapMs: 200, latencyMs: 20 }, async (device, client) => {
      const c = await client();
      assert.deepEqual(registersOf(await c.read(1, 0, 1)), expectedRegisters(1, 0, 1));
      // Right after the reply: too soon.
      assert.equal(exceptionOf(await c.read(1, 1, 1)), 0x06);
      assert.equal(device.tooSoonAfterReply, 1);
      // A rejection is not a reply: the gap still runs from the served one.
      await sleep(250);
      // Two at once: the first is served, the second arrives while the device works on the first.
      const [a, b] = await Promise.all([c.read(1, 2, 1), c.read(1, 3, 1)]);
      assert.deepEqual(registersOf(a), expectedRegisters(1, 2, 1));
      assert.equal(exceptionOf(b), 0x06);
      assert.equal(device.tooSoonAfterReply, 2);
      await sleep(250);
      assert.deepEqual(registersOf(await c.read(1, 4, 1)), expectedRegisters(1, 4, 1));
      assert.equal(device.rejectedRequests, 2);
      assert.equal(device.tooEarlyAfterConnect, 0);
      assert.equal(device.requestsServed, 3);
    });
  });

  it('with tooEarly silent, an early request gets no answer at all (and is still counted)', async () => {
    await withDevice({ connectDelayMs: 300, tooEarly: 'silent' }, async (device, client) => {
      const c = await client();
      await assert.rejects(c.read(1, 0, 1, { timeoutMs: 200 }), /no answer/);
      assert.equal(device.rejectedRequests, 1);
      await sleep(150);
      assert.deepEqual(registersOf(await c.read(1, 0, 1)), expectedRegisters(1, 0, 1));
      assert.equal(c.received.length, 1);
    });
  });

  it('answers only the units in `units`; requests to other units get no reply', async () => {
    await withDevice({ units: [0] }, async (device, client) => {
      const c = await client();
      assert.deepEqual(registersOf(await c.read(0, 30, 4)), expectedRegisters(0, 30, 4));
      await assert.rejects(c.read(1, 30, 4, { timeoutMs: 250 }), /no answer/);
      assert.deepEqual(registersOf(await c.read(0, 31, 1)), expectedRegisters(0, 31, 1)); // the silence held nothing up
      assert.equal(device.requestCount, 3);
      assert.equal(device.requestsServed, 2);
      assert.equal(device.rejectedRequests, 0);
    });
  });

  it('counts reads that reached it per unit, function, address and quantity, and requests it served', async () => {
    await withDevice({ pipelined: true }, async (device, client) => {
      const c = await client();
      await Promise.all([c.read(1, 100, 10), c.read(1, 100, 10), c.read(1, 100, 10, { fc: 4 }), c.read(2, 100, 10), c.read(1, 100, 9)]);
      await c.request(1, Buffer.from([6, 0, 100, 0, 1]));
      assert.equal(device.readRequests(1, 3, 100, 10), 2);
      assert.equal(device.readRequests(1, 4, 100, 10), 1);
      assert.equal(device.readRequests(2, 3, 100, 10), 1);
      assert.equal(device.readRequests(1, 3, 100, 9), 1);
      assert.equal(device.readRequests(1, 3, 101, 10), 0);
      assert.equal(device.readCounts.size, 4); // the write is not a read
      assert.equal(device.requestsServed, 6);
      assert.equal(device.requestCount, 6);
    });
  });
});

describe('Modbus device simulator, CLI', () => {
  it('parses flags over SIM_* environment variables and refuses unknown or malformed ones with SWB_ERR_CONFIG', () => {
    const options = parseSimOptions(['--port=1503', '--pipelined', '--silent-units', '3,4', '--one-connection=false'], {
      SIM_PORT: '9',
      SIM_LATENCY_MS: '25',
    });
    assert.equal(options.port, 1503);
    assert.equal(options.latencyMs, 25);
    assert.equal(options.pipelined, true);
    assert.equal(options.oneConnection, false);
    assert.deepEqual(options.faults.silentUnits, [3, 4]);
    assert.equal(parseSimOptions([], {}).oneConnection, true);
    assert.throws(() => parseSimOptions(['--bogus'], {}), { code: 'SWB_ERR_CONFIG' });
    assert.throws(() => parseSimOptions(['--latency-ms', '-1'], {}), { code: 'SWB_ERR_CONFIG' });
    assert.throws(() => parseSimOptions([], { SIM_SILENT_UNITS: '1,300' }), { code: 'SWB_ERR_CONFIG' });
  });

  it('parses the slow mode and unit flags: --connect-delay-ms, --min-gap-ms, --too-early, --units (and SIM_* names)', () => {
    const huawei = parseSimOptions(['--connect-delay-ms', '1000', '--min-gap-ms=50', '--units', '0'], {});
    assert.equal(huawei.connectDelayMs, 1000);
    assert.equal(huawei.minGapMs, 50);
    assert.equal(huawei.tooEarly, 'busy');
    assert.deepEqual(huawei.units, [0]);
    const fromEnv = parseSimOptions([], { SIM_CONNECT_DELAY_MS: '1500', SIM_MIN_GAP_MS: '20', SIM_TOO_EARLY: 'silent', SIM_UNITS: '0,1' });
    assert.deepEqual([fromEnv.connectDelayMs, fromEnv.minGapMs, fromEnv.tooEarly, fromEnv.units], [1500, 20, 'silent', [0, 1]]);
    const defaults = parseSimOptions([], {});
    assert.deepEqual([defaults.connectDelayMs, defaults.minGapMs, defaults.tooEarly, defaults.units], [0, 0, 'busy', []]);
    assert.throws(() => parseSimOptions(['--too-early', 'sometimes'], {}), { code: 'SWB_ERR_CONFIG' });
    assert.throws(() => parseSimOptions(['--units', '256'], {}), { code: 'SWB_ERR_CONFIG' });
    assert.throws(() => parseSimOptions(['--min-gap-ms', '1.5'], {}), { code: 'SWB_ERR_CONFIG' });
  });

  it('npm run sim: logs one JSON line with the port on stderr, serves the known values, stops on SIGTERM', async (t) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/sim/main.ts', '--host', '127.0.0.1', '--port', '0', '--silent-units', '9'], {
      env: { ...process.env, SIM_LATENCY_MS: '5' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    t.after(() => child.kill('SIGKILL'));
    await waitFor(() => stderr.includes('\n'), 'the listening line', 20_000);
    const line = JSON.parse(stderr.split('\n')[0]!) as { msg: string; port: number; latencyMs: number };
    assert.equal(line.msg, 'sim listening');
    assert.equal(line.latencyMs, 5);
    const c = new ModbusClient(await connectTcp(line.port));
    try {
      assert.deepEqual(registersOf(await c.read(3, 100, 4)), expectedRegisters(3, 100, 4));
      await assert.rejects(c.read(9, 0, 1, { timeoutMs: 300 }), /no answer/);
    } finally {
      c.close();
    }
    child.kill('SIGTERM');
    const [code] = (await once(child, 'close')) as [number | null];
    assert.equal(code, 0);
    const stopped = JSON.parse(stderr.split('\n').find((l) => l.includes('"msg":"sim stopped"'))!) as Record<string, unknown>;
    assert.deepEqual([stopped.requests, stopped.served, stopped.rejected], [2, 1, 0]); // the unit 9 read was not served
  });
});

describe('Modbus device simulator, CLI slow mode', () => {
  it('node sim/main.ts --connect-delay-ms --units: an early read gets 0x06, another unit no answer; the stop line counts them', async (t) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/sim/main.ts', '--host', '127.0.0.1', '--port', '0', '--units', '0'], {
      env: { ...process.env, SIM_CONNECT_DELAY_MS: '300' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    t.after(() => child.kill('SIGKILL'));
    await waitFor(() => stderr.includes('\n'), 'the listening line', 20_000);
    const line = JSON.parse(stderr.split('\n')[0]!) as { port: number; connectDelayMs: number; units: number[] };
    assert.deepEqual([line.connectDelayMs, line.units], [300, [0]]);
    const c = new ModbusClient(await connectTcp(line.port));
    try {
      assert.equal(exceptionOf(await c.read(0, 1, 1)), 0x06);
      await sleep(350);
      await assert.rejects(c.read(1, 1, 1, { timeoutMs: 300 }), /no answer/);
      assert.deepEqual(registersOf(await c.read(0, 1, 1)), expectedRegisters(0, 1, 1));
    } finally {
      c.close();
    }
    child.kill('SIGTERM');
    const [code] = (await once(child, 'close')) as [number | null];
    assert.equal(code, 0);
    const stopped = JSON.parse(stderr.split('\n').find((l) => l.includes('"msg":"sim stopped"'))!) as Record<string, unknown>;
    assert.deepEqual([stopped.requests, stopped.served, stopped.rejected], [3, 1, 1]);
  });
});

describe('Modbus device simulator, real clients', () => {
  it('mbpoll reads the known values', async (t) => {
    if (!needs(t, hasMbpoll, 'mbpoll')) return;
    await withDevice({}, async (device) => {
      for (const [unit, address, count] of [[1, 0, 5], [3, 500, 10], [247, 65530, 6]] as const) {
        assert.deepEqual(await mbpollRead(device.port, unit, address, count), expectedRegisters(unit, address, count), `mbpoll unit ${unit} @${address}`);
        await waitFor(() => device.open.size === 0, 'mbpoll gone'); // one connection at a time
      }
    });
  });

  it('pymodbus reads the known holding and input registers and writes a register back', async (t) => {
    if (!needs(t, hasPymodbus, 'python3-pymodbus')) return;
    const script = `
import json, sys, logging
logging.disable(logging.CRITICAL)
from pymodbus.client import ModbusTcpClient
c = ModbusTcpClient("127.0.0.1", port=int(sys.argv[1]), timeout=5, retries=0)
assert c.connect()
out = {"hr": c.read_holding_registers(10, 8, slave=2).registers, "ir": c.read_input_registers(0, 3, slave=5).registers}
assert not c.write_register(40, 4242, slave=2).isError()
out["written"] = c.read_holding_registers(40, 1, slave=2).registers
c.close()
print(json.dumps(out))
`;
    await withDevice({}, async (device) => {
      const out = JSON.parse(await run(PYTHON, ['-c', script, String(device.port)])) as { hr: number[]; ir: number[]; written: number[] };
      assert.deepEqual(out.hr, expectedRegisters(2, 10, 8));
      assert.deepEqual(out.ir, expectedRegisters(5, 0, 3));
      assert.deepEqual(out.written, [4242]);
      assert.equal(device.connections, 1);
    });
  });
});

