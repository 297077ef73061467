/**
 * The external Modbus programs the tests run (pymodbus 3 from Debian's python3-pymodbus under /usr/bin/python3, mbpoll):
 * whether they are installed, and the rule for a missing one: skip on a developer machine, fail under CI=true.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

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
