/**
 * CONNECT_TIMEOUT_MS without leaving loopback. A connect to 127.0.0.1 is normally answered at once (accepted or refused);
 * to make one hang, the target is a listening socket whose accept queue is full: listen(backlog 1) in a process whose
 * event loop is then blocked, so nothing is ever accepted, filled with raw connections from the test. Linux then drops
 * further SYNs to it (tcp_conn_request: "accept queue full" -> drop, ListenOverflows), and the client's connect()
 * retransmits its SYN (after 1 s, 3 s, …) instead of failing: only switchboard's own timer can end the attempt.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { metric, startApp, waitFor } from '../../helpers.js';
import { exceptionOf, ModbusClient } from './devices.js';

/** The listener: listen with backlog 1, print the port, then block the thread forever (nothing is accepted). */
const BLACKHOLE = `
const server = require('node:net').createServer();
server.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\\n');
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
});`;

/** A connect on loopback to a queue with room completes in about a millisecond; this much means the SYN was dropped. */
const HANGING_CONNECT_MS = 500;
const MAX_FILLERS = 16;

/** A 127.0.0.1 port to which connect() hangs, and the means to release it. */
async function unreachablePort(): Promise<{ port: number; close(): void }> {
  const child: ChildProcess = spawn(process.execPath, ['-e', BLACKHOLE], { stdio: ['ignore', 'pipe', 'inherit'] });
  const fillers: Socket[] = [];
  const close = () => {
    for (const socket of fillers) socket.destroy();
    if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  };
  try {
    const [line] = (await once(child.stdout!, 'data')) as [Buffer];
    const { port } = JSON.parse(line.toString()) as { port: number };
    // Fill the accept queue (backlog + 1 on Linux) until a connect no longer completes.
    for (;;) {
      if (fillers.length === MAX_FILLERS) throw new Error(`${MAX_FILLERS} connections and the accept queue is not full`);
      const socket = connect({ host: '127.0.0.1', port });
      socket.on('error', () => {});
      fillers.push(socket);
      const connected = await Promise.race([
        once(socket, 'connect').then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), HANGING_CONNECT_MS)),
      ]);
      if (!connected) return { port, close };
    }
  } catch (error) {
    close();
    throw error;
  }
}

type Status = { upstream: { state: string; lastError: string | null } };

describe('mux mode, CONNECT_TIMEOUT_MS', { skip: process.platform !== 'linux' && 'needs Linux accept-queue overflow behaviour' }, () => {
  it('a connect that hangs is abandoned after CONNECT_TIMEOUT_MS: 0x0A to the waiting request, then backoff before the next attempt', async () => {
    const target = await unreachablePort();
    const before = Date.now();
    const app = await startApp({
      TARGET: `127.0.0.1:${target.port}`,
      PROTOCOL: 'modbus',
      LISTEN_PORT: '0',
      CONNECT_TIMEOUT_MS: '300',
      RECONNECT_MIN_MS: '1000',
      RECONNECT_MAX_MS: '1000',
    });
    const status = () => app.engine.status() as Status;
    let c: ModbusClient | undefined;
    try {
      assert.equal(status().upstream.state, 'connecting');
      c = await ModbusClient.connect(app.port('tcp'));
      // Sent while the first attempt hangs: it waits in the queue (DESIGN §5) and gets 0x0A when the attempt fails.
      const first = await c.read(1, 0, 1);
      const answeredAfter = Date.now() - before;
      assert.equal(exceptionOf(first), 0x0a);
      assert.ok(answeredAfter >= 295, `0x0A after ${answeredAfter} ms, before CONNECT_TIMEOUT_MS`);
      // Well before the kernel's own give-up (SYN retransmits for about two minutes): switchboard's timer ended it.
      assert.ok(answeredAfter < 300 + 600, `0x0A only after ${answeredAfter} ms`);
      assert.equal(status().upstream.state, 'backoff');
      assert.equal(status().upstream.lastError, 'connect timed out after 300 ms');
      const backoffFrom = Date.now();

      // In backoff: answered 0x0A at once, not queued.
      const startedDuringBackoff = Date.now();
      assert.equal(exceptionOf(await c.read(1, 1, 1)), 0x0a);
      assert.ok(Date.now() - startedDuringBackoff < 250, 'answered at once during backoff');

      // The next attempt comes after the backoff delay (equal jitter: 500..1000 ms for RECONNECT_MIN_MS=1000), not at once.
      await waitFor(() => status().upstream.state === 'connecting', 'the second attempt', 3000);
      const backoffMs = Date.now() - backoffFrom;
      assert.ok(backoffMs >= 450, `redialled after ${backoffMs} ms of backoff`);
      assert.ok((await metric(app, 'switchboard_upstream_reconnects_total')) >= 1);
      // ... and it is abandoned after CONNECT_TIMEOUT_MS too.
      await waitFor(() => status().upstream.state === 'backoff', 'the second attempt abandoned', 300 + 600);

      assert.equal(await metric(app, 'switchboard_requests_total', { protocol: 'modbus', outcome: 'unavailable' }), 2);
      assert.equal(await metric(app, 'switchboard_upstream_up'), 0);
      assert.equal(c.closed, false);
    } finally {
      c?.close();
      await app.stop();
      target.close();
    }
  });
});
