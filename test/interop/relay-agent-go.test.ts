/**
 * Our agent (the yamux client side) against a minimal relay written in Go from docs/relay-protocol.md on Debian's
 * hashicorp/yamux (test/interop/go/relay-server): it authenticates, binds, and serves visitors byte-exact, many at once.
 * (Debian's yamux returns EOF from Read after its own Close, so visitors here read their echo by length before closing
 * instead of half-closing first.) Skipped on a dev machine without Go, failed in CI.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect } from 'node:net';
import { after, describe, it } from 'node:test';
import { LOOPBACK, startApp, waitFor } from '../helpers.js';
import { echo, SECRET, startService, waitBound } from '../engines/relay/relay-helpers.js';
import { buildGoPeer, skipOrFail } from './go-build.js';

const children: ChildProcess[] = [];
const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  for (const child of children) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
});

async function echoByLength(port: number, data: Buffer): Promise<Buffer> {
  const socket = connect({ port, host: LOOPBACK });
  socket.on('error', () => {});
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  let length = 0;
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    length += chunk.length;
  });
  socket.write(data);
  await waitFor(() => length >= data.length, `echo of ${data.length} bytes`, 15_000);
  socket.destroy();
  return Buffer.concat(chunks);
}

describe('our agent against a Go relay (hashicorp/yamux server)', { timeout: 120_000 }, () => {
  it('authenticates, binds and serves visitors', async (t) => {
    const build = await buildGoPeer('relay-server', ['github.com/hashicorp/yamux']);
    if (!build.binary) return skipOrFail(t, build.skipReason ?? 'Go peer unavailable');
    const relay = spawn(build.binary, ['-secret', SECRET], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(relay);
    let out = '';
    relay.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    relay.stderr!.on('data', () => {});
    await waitFor(() => /^LISTENING /m.test(out), 'Go relay listening', 10_000);
    const address = /^LISTENING (\S+)$/m.exec(out)![1]!;

    const service = await startService(echo);
    cleanups.push(() => service.close());
    const agent = await startApp({ RELAY: address, SERVICE: `${LOOPBACK}:${service.port}`, AUTH_SECRET: SECRET });
    cleanups.push(() => agent.stop());
    const port = await waitBound(agent);
    // The Go relay prints its BOUND line after it has answered the agent, so the line may reach us a moment later.
    await waitFor(() => new RegExp(`^BOUND ${port}$`, 'm').test(out), `the Go relay's "BOUND ${port}" line`, 10_000);
    assert.match(out, new RegExp(`^BOUND ${port}$`, 'm'));

    const payloads = Array.from({ length: 12 }, (_, i) => randomBytes(1000 + i * 50_000));
    const answers = await Promise.all(payloads.map((p) => echoByLength(port, p)));
    for (let i = 0; i < payloads.length; i++) assert.ok(answers[i]!.equals(payloads[i]!), `visitor ${i} byte-exact`);
  });
});
