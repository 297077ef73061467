/**
 * The external Modbus programs the tests run (pymodbus 3 from Debian's python3-pymodbus under /usr/bin/python3, mbpoll):
 * whether they are installed, and the rule for a missing one: skip on a developer machine, fail under CI=true.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { connectTcp, freePort, waitFor } from '../helpers.js';

export const PYTHON = '/usr/bin/python3';
const CI = process.env.CI === 'true';

export const hasPymodbus = spawnSync(PYTHON, ['-c', 'import pymodbus.server, pymodbus.client'], { timeout: 20_000 }).status === 0;
export const hasMbpoll = spawnSync('mbpoll', ['-V'], { timeout: 5000 }).error === undefined;

/** A missing external peer: skip here, fail in CI (README: `.ci/run` installs them). */
export function needs(t: TestContext, available: boolean, what: string): boolean {
  if (available) return true;
  if (CI) assert.fail(`${what} is required under CI=true`);
  t.skip(`${what} is not installed`);
  return false;
}

/** Runs a program to completion (killed after timeoutMs) and resolves with its stdout. */
export function run(file: string, args: string[], timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL' }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${file} ${args.join(' ')} failed: ${error.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** mbpoll's one-shot read of holding registers (-0: references are 0-based, as on the wire). */
export async function mbpollRead(port: number, unit: number, address: number, count: number): Promise<number[]> {
  const out = await run('mbpoll', ['-1', '-0', '-a', String(unit), '-r', String(address), '-c', String(count), '-p', String(port), '-t', '4', '-q', '127.0.0.1'], 10_000);
  return [...out.matchAll(/^\[(\d+)\]:\s+(-?\d+)/gm)].map((m) => Number(m[2]) & 0xffff);
}

/** Holding register `address` of `unit` in the pymodbus devices of these tests: (31 i + 7 + unit) & 0xffff. */
export function pymodbusRegisters(unit: number, address: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => ((address + i) * 31 + 7 + unit) & 0xffff);
}

/** Python that builds those registers for units 1-3 (and input registers without the unit) as `slaves`, port in `port`. */
export const PYMODBUS_DEVICE_PRELUDE = `
import asyncio, sys, logging
logging.disable(logging.CRITICAL)
from pymodbus.server import StartAsyncTcpServer
from pymodbus.datastore import ModbusSequentialDataBlock, ModbusSlaveContext, ModbusServerContext
port = int(sys.argv[1])
vals = [(i * 31 + 7) & 0xffff for i in range(1000)]
slaves = {u: ModbusSlaveContext(hr=ModbusSequentialDataBlock(0, [(v + u) & 0xffff for v in vals]),
                                ir=ModbusSequentialDataBlock(0, vals), zero_mode=True) for u in (1, 2, 3)}
`;

/** pymodbus's Modbus TCP client reading [unit, address, count] triples on one connection; prints registers or {exception}. */
const PYMODBUS_READER = `
import json, sys, logging
logging.disable(logging.CRITICAL)
from pymodbus.client import ModbusTcpClient
port, reads = int(sys.argv[1]), json.loads(sys.argv[2])
c = ModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0)
assert c.connect()
out = []
for unit, addr, count in reads:
    r = c.read_holding_registers(addr, count, slave=unit)
    out.append({"exception": getattr(r, "exception_code", None)} if r.isError() else r.registers)
c.close()
print(json.dumps(out))
`;

export type Reads = Array<[number, number, number]>;

/** Python scripts written to a temporary folder, and the pymodbus processes started from them; `close()` ends both. */
export class PythonPeers {
  private readonly dir = mkdtempSync(join(tmpdir(), 'swb-pymodbus-'));
  private readonly pids: number[] = [];
  private readonly reader = this.script('reader.py', PYMODBUS_READER);

  script(name: string, text: string): string {
    const path = join(this.dir, name);
    writeFileSync(path, text);
    return path;
  }

  /** Starts a device script (it takes its port as argv[1]) and resolves with the port once it accepts connections. */
  async startDevice(name: string, text: string): Promise<number> {
    const port = await freePort();
    const child = spawn(PYTHON, [this.script(name, text), String(port)], { stdio: 'ignore' });
    if (child.pid !== undefined) this.pids.push(child.pid);
    await waitFor(
      async () => {
        try {
          (await connectTcp(port)).destroy();
          return true;
        } catch {
          return false;
        }
      },
      `${name} listening`,
      15_000,
    );
    return port;
  }

  /** Reads through pymodbus's TCP client. */
  async read(port: number, reads: Reads): Promise<Array<number[] | { exception: number | null }>> {
    return JSON.parse(await run(PYTHON, [this.reader, String(port), JSON.stringify(reads)]));
  }

  close(): void {
    for (const pid of this.pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
