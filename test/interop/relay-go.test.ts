/**
 * A Go agent written from docs/relay-protocol.md alone, on Debian's hashicorp/yamux (test/interop/go/relay-agent), against
 * our relay: it gets a port, serves many visitors byte-exact with half-close, is refused with a wrong secret, and reclaims
 * its port with its lease id. Built offline by go-build.ts; skipped on a dev machine without Go, failed in CI.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { after, describe, it } from 'node:test';
import { LOOPBACK, waitFor } from '../helpers.js';
import { echo, roundTrip, SECRET, startRelay, startService, type TestApp } from '../engines/relay/relay-helpers.js';
import { buildGoPeer, skipOrFail } from './go-build.js';

const children: ChildProcess[] = [];
const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const child of children) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  for (const cleanup of cleanups.reverse()) await cleanup();
});

interface GoAgent {
  child: ChildProcess;
  output: () => string;
  exited: Promise<unknown>;
}

function startGoAgent(binary: string, relay: TestApp, service: number, args: string[]): GoAgent {
  const child = spawn(binary, ['-relay', `${LOOPBACK}:${relay.port('relay')}`, '-service', `${LOOPBACK}:${service}`, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', () => {});
  return { child, output: () => out, exited: once(child, 'close') };
}

function kill(agent: GoAgent): void {
  if (agent.child.pid !== undefined && agent.child.exitCode === null) process.kill(agent.child.pid, 'SIGKILL');
}

describe('Go agent (hashicorp/yamux) against our relay', { timeout: 120_000 }, () => {
  it('gets a port and serves visitors; wrong secret refused; lease reclaimed', async (t) => {
    const build = await buildGoPeer('relay-agent', ['github.com/hashicorp/yamux']);
    if (!build.binary) return skipOrFail(t, build.skipReason ?? 'Go peer unavailable');

    const service = await startService(echo);
    cleanups.push(() => service.close());
    const relay = await startRelay();
    cleanups.push(() => relay.stop());

    const agent = startGoAgent(build.binary, relay, service.port, ['-secret', SECRET]);
    await waitFor(() => /^(BOUND|ERROR|FAIL)/m.test(agent.output()), 'Go agent bound', 10_000);
    const bound = /^BOUND (\d+) ([0-9a-f]+)$/m.exec(agent.output());
    assert.ok(bound, `Go agent output: ${agent.output()}`);
    const port = Number(bound[1]);
    const leaseId = bound[2]!;

    const payloads = Array.from({ length: 16 }, (_, i) => randomBytes(1000 + i * 40_000));
    const answers = await Promise.all(payloads.map((p) => roundTrip(port, p, 15_000)));
    for (let i = 0; i < payloads.length; i++) assert.ok(answers[i]!.equals(payloads[i]!), `visitor ${i} byte-exact through the Go agent`);

    const wrong = startGoAgent(build.binary, relay, service.port, ['-secret', 'wrong']);
    await wrong.exited;
    assert.match(wrong.output(), /^ERROR auth_failed /m);

    kill(agent);
    await waitFor(() => (relay.engine.status() as { tunnels: Array<{ state: string }> }).tunnels[0]?.state === 'away', 'relay sees the Go agent gone');
    const back = startGoAgent(build.binary, relay, service.port, ['-secret', SECRET, '-lease', leaseId]);
    await waitFor(() => /^(BOUND|ERROR|FAIL)/m.test(back.output()), 'Go agent bound again', 10_000);
    assert.match(back.output(), new RegExp(`^BOUND ${port} `, 'm'));
    const data = randomBytes(300_000);
    assert.ok((await roundTrip(port, data, 15_000)).equals(data));
    kill(back);
  });
});
