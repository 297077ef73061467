/**
 * mux mode with PROTOCOL=modbus over loopback: the project's device simulator (src/sim/) with per-request fault injection
 * (the interop tests use pymodbus, mbpoll, jsmodbus and modbus-serial). Timing bounds leave at least 250 ms of slack.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { encodeModbusTcp } from '../../../src/protocols/modbus-tcp.js';
import { connectTcp, metric, Recorder, sleep, startApp, waitFor } from '../../helpers.js';
import {
  exceptionOf,
  expectedRegisters,
  ModbusClient,
  ModbusDevice,
  readPdu,
  registersOf,
  type DeviceAction,
} from './devices.js';

type App = Awaited<ReturnType<typeof startApp>>;

function mux(target: string, env: Record<string, string> = {}) {
  return startApp({ TARGET: target, PROTOCOL: 'modbus', LISTEN_PORT: '0', RECONNECT_MIN_MS: '100', RECONNECT_MAX_MS: '200', ...env });
}

/** Runs `body` with a device and an app, closing everything afterwards. */
async function withSetup(
  deviceOptions: ConstructorParameters<typeof ModbusDevice>[0],
  env: Record<string, string>,
  body: (ctx: { device: ModbusDevice; app: App; port: number; clients: ModbusClient[]; client(): Promise<ModbusClient> }) => Promise<void>,
): Promise<void> {
  const device = await ModbusDevice.start(deviceOptions);
  const app = await mux(device.target, env);
  const clients: ModbusClient[] = [];
  try {
    await waitFor(() => (app.engine.status() as { upstream: { state: string } }).upstream.state === 'up', 'upstream up');
    await body({
      device,
      app,
      port: app.port('tcp'),
      clients,
      client: async () => {
        const c = await ModbusClient.connect(app.port('tcp'));
        clients.push(c);
        return c;
      },
    });
  } finally {
    for (const c of clients) c.close();
    await app.stop();
    await device.stop();
  }
}

describe('mux mode, Modbus TCP', () => {
  it('several pipelining clients each get their own answers with their own transaction ids; the device sees one connection', async () => {
    await withSetup({}, {}, async ({ device, client }) => {
      const clients = await Promise.all(Array.from({ length: 10 }, () => client()));
      let mismatches = 0;
      await Promise.all(
        clients.map(async (c, n) => {
          const pending = [];
          for (let i = 0; i < 12; i++) {
            const unit = 1 + ((n * 13 + i) % 5);
            const address = (n * 101 + i * 7) % 1000;
            const quantity = 1 + ((n + i) % 10);
            // Every client uses the same transaction ids, so only the rewrite keeps them apart.
            pending.push(
              c.read(unit, address, quantity, { transactionId: 100 + i }).then((frame) => {
                if (frame.transactionId !== 100 + i || frame.unitId !== unit) mismatches++;
                else if (JSON.stringify(registersOf(frame)) !== JSON.stringify(expectedRegisters(unit, address, quantity))) mismatches++;
              }),
            );
          }
          await Promise.all(pending);
        }),
      );
      assert.equal(mismatches, 0);
      assert.equal(device.connections, 1);
      assert.equal(device.requests.length, 120);
    });
  });

  it('a silent device gives 0x0B within UPSTREAM_TIMEOUT_MS and the client socket stays usable', async () => {
    await withSetup(
      { action: (_f, i): DeviceAction => (i === 0 ? { kind: 'silent' } : { kind: 'answer' }) },
      { UPSTREAM_TIMEOUT_MS: '300', REQUEST_DEADLINE_MS: '2000' },
      async ({ app, client }) => {
        const c = await client();
        const started = Date.now();
        const first = await c.read(1, 10, 2);
        const took = Date.now() - started;
        assert.equal(exceptionOf(first), 0x0b);
        assert.ok(took >= 280 && took < 1000, `0x0B after ${took} ms`);
        const second = await c.read(1, 10, 2);
        assert.deepEqual(registersOf(second), expectedRegisters(1, 10, 2));
        assert.equal(c.closed, false);
        assert.equal(await metric(app, 'switchboard_requests_total', { protocol: 'modbus', outcome: 'timeout' }), 1);
        assert.equal(await metric(app, 'switchboard_requests_total', { protocol: 'modbus', outcome: 'ok' }), 1);
      },
    );
  });

  it('late replies and stray frames are dropped and counted, never delivered to anyone', async () => {
    await withSetup(
      {
        action: (_f, i): DeviceAction =>
                    // a's reply comes 100 ms after a timed out, while b's request is in flight with the same client transaction id.
          i === 0 ? { kind: 'late', delayMs: 600 } : i === 1 ? { kind: 'answer', delayMs: 300 } : { kind: 'stray-then-answer' },
      },
      { UPSTREAM_TIMEOUT_MS: '500' },
      async ({ app, client }) => {
        const a = await client();
        const b = await client();
        const first = await a.read(1, 1, 1, { transactionId: 7 });
        assert.equal(exceptionOf(first), 0x0b);
        // b's request is sent while a's late reply is still to come; it must get only its own answer.
        const second = await b.read(2, 50, 3, { transactionId: 7 });
        assert.deepEqual(registersOf(second), expectedRegisters(2, 50, 3));
        const third = await b.read(3, 60, 1, { transactionId: 8 });
        assert.deepEqual(registersOf(third), expectedRegisters(3, 60, 1));
        await sleep(300);
        assert.equal(a.received.length, 1);
        assert.equal(b.received.length, 2);
        assert.ok((await metric(app, 'switchboard_stray_replies_total')) >= 2);
      },
    );
  });

  it('a reply with the wrong unit id or function code is dropped; the client gets 0x0B', async () => {
    await withSetup(
      { action: (_f, i): DeviceAction => (i === 0 ? { kind: 'wrong-unit' } : i === 1 ? { kind: 'wrong-function' } : { kind: 'answer' }) },
      { UPSTREAM_TIMEOUT_MS: '200', UPSTREAM_MAX_TIMEOUTS: '5' },
      async ({ app, client }) => {
        const c = await client();
        assert.equal(exceptionOf(await c.read(4, 1, 1)), 0x0b);
        assert.equal(exceptionOf(await c.read(4, 1, 1)), 0x0b);
        assert.deepEqual(registersOf(await c.read(4, 1, 1)), expectedRegisters(4, 1, 1));
        assert.equal(await metric(app, 'switchboard_stray_replies_total'), 2);
      },
    );
  });

  it('a malformed reply resets the upstream; the outstanding request gets 0x0B and the next one is answered', async () => {
    await withSetup(
      { action: (_f, i): DeviceAction => (i === 0 ? { kind: 'garbage' } : { kind: 'answer' }) },
      {},
      async ({ device, client }) => {
        const c = await client();
        assert.equal(exceptionOf(await c.read(1, 1, 1)), 0x0b);
        assert.deepEqual(registersOf(await c.read(1, 2, 1)), expectedRegisters(1, 2, 1));
        assert.equal(device.connections, 2);
      },
    );
  });

  it('the device closing mid-reply gives 0x0B; answers resume on the same client socket', async () => {
    await withSetup(
      { action: (_f, i): DeviceAction => (i === 0 ? { kind: 'close-mid-reply' } : { kind: 'answer' }) },
      {},
      async ({ client }) => {
        const c = await client();
        assert.equal(exceptionOf(await c.read(1, 1, 1)), 0x0b);
        assert.deepEqual(registersOf(await c.read(1, 5, 2)), expectedRegisters(1, 5, 2));
        assert.equal(c.closed, false);
      },
    );
  });

  it('a device that cannot be reached gives 0x0A, keeps the client socket, and answers resume when it is back', async () => {
    const device = await ModbusDevice.start();
    const port = device.port;
    await device.stop();
    const app = await mux(`127.0.0.1:${port}`, { RECONNECT_MIN_MS: '100', RECONNECT_MAX_MS: '300' });
    const c = await ModbusClient.connect(app.port('tcp'));
    let revived: ModbusDevice | undefined;
    try {
      await waitFor(() => (app.engine.status() as { upstream: { state: string } }).upstream.state === 'backoff', 'backoff');
      const answer = await c.read(1, 1, 1);
      assert.equal(exceptionOf(answer), 0x0a);
      assert.equal(await metric(app, 'switchboard_upstream_up'), 0);
      const status = app.engine.status() as { upstream: { target: string; state: string; since: string; lastError: string } };
      assert.equal(status.upstream.target, `127.0.0.1:${port}`);
      assert.equal(status.upstream.lastError, 'ECONNREFUSED');
      assert.ok(!Number.isNaN(Date.parse(status.upstream.since)));
      // /readyz stays 200: an unreachable upstream is reported, not hidden (DESIGN §2).
      const ready = await fetch(`http://127.0.0.1:${app.port('http')}/readyz`);
      assert.equal(ready.status, 200);

      revived = await ModbusDevice.start({}, port);
      await waitFor(() => (app.engine.status() as { upstream: { state: string } }).upstream.state === 'up', 'upstream back', 3000);
      assert.deepEqual(registersOf(await c.read(1, 1, 1)), expectedRegisters(1, 1, 1));
      assert.equal(c.closed, false);
      assert.equal(await metric(app, 'switchboard_upstream_up'), 1);
      assert.ok((await metric(app, 'switchboard_upstream_reconnects_total')) >= 1);
      assert.ok((await metric(app, 'switchboard_requests_total', { protocol: 'modbus', outcome: 'unavailable' })) >= 1);
    } finally {
      c.close();
      await app.stop();
      await revived?.stop();
    }
  });

  it('a device restart: answers resume on the same client socket', async () => {
    const device = await ModbusDevice.start();
    const port = device.port;
    const app = await mux(device.target);
    const c = await ModbusClient.connect(app.port('tcp'));
    let second: ModbusDevice | undefined;
    try {
      assert.deepEqual(registersOf(await c.read(1, 1, 1)), expectedRegisters(1, 1, 1));
      await device.stop();
      second = await ModbusDevice.start({}, port);
      let answer = await c.read(1, 2, 1);
      // Depending on timing the first request after the restart may meet the redial's backoff (0x0A); it never hangs.
      for (let i = 0; i < 20 && exceptionOf(answer) !== undefined; i++) {
        assert.ok([0x0a, 0x0b].includes(exceptionOf(answer)!));
        await sleep(100);
        answer = await c.read(1, 2, 1);
      }
      assert.deepEqual(registersOf(answer), expectedRegisters(1, 2, 1));
      assert.equal(c.closed, false);
    } finally {
      c.close();
      await app.stop();
      await second?.stop();
    }
  });

  it('a request arriving during the first connection and CONNECT_DELAY_MS waits and succeeds', async () => {
    const device = await ModbusDevice.start();
    const app = await mux(device.target, { CONNECT_DELAY_MS: '400' });
    const c = await ModbusClient.connect(app.port('tcp'));
    try {
      assert.equal((app.engine.status() as { upstream: { state: string } }).upstream.state, 'connecting');
      const started = Date.now();
      const answer = await c.read(1, 3, 2);
      assert.deepEqual(registersOf(answer), expectedRegisters(1, 3, 2));
      assert.ok(Date.now() - started >= 300, 'waited for the connect delay');
      assert.equal(device.connections, 1);
    } finally {
      c.close();
      await app.stop();
      await device.stop();
    }
  });

  it('a unix: target works like a TCP one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'swb-mux-'));
    const path = join(dir, 'device.sock');
    const device = new ModbusDevice();
    device.server.listen(path);
    await once(device.server, 'listening');
    const app = await mux(`unix:${path}`, { MAX_INFLIGHT: '2' });
    const c = await ModbusClient.connect(app.port('tcp'));
    try {
      const answers = await Promise.all([c.read(1, 1, 2), c.read(2, 3, 1)]);
      assert.deepEqual(answers.map(registersOf), [expectedRegisters(1, 1, 2), expectedRegisters(2, 3, 1)]);
      assert.equal((app.engine.status() as { upstream: { target: string } }).upstream.target, `unix:${path}`);
    } finally {
      c.close();
      await app.stop();
      await device.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('MAX_INFLIGHT>1 pipelines to a device that answers concurrently, every answer correct', async () => {
    await withSetup({ pipelined: true, action: (f) => ({ kind: 'answer', delayMs: 20 + (f.transactionId % 3) * 10 }) }, { MAX_INFLIGHT: '4' }, async ({ device, client }) => {
      const clients = await Promise.all(Array.from({ length: 4 }, () => client()));
      const results = await Promise.all(
        clients.flatMap((c, n) => Array.from({ length: 5 }, (_, i) => c.read(n + 1, i * 10, 2).then((f) => ({ f, n, i })))),
      );
      for (const { f, n, i } of results) assert.deepEqual(registersOf(f), expectedRegisters(n + 1, i * 10, 2));
      assert.equal(device.maxOutstanding, 4);
      assert.equal(device.connections, 1);
    });
  });

  it('MAX_INFLIGHT=1 sends one request at a time', async () => {
    await withSetup({ pipelined: true, action: () => ({ kind: 'answer', delayMs: 10 }) }, {}, async ({ device, client }) => {
      const c = await client();
      await Promise.all(Array.from({ length: 8 }, (_, i) => c.read(1, i, 1)));
      assert.equal(device.maxOutstanding, 1);
    });
  });

  it('REQUEST_GAP_MS separates the end of one exchange from the next request', async () => {
    const arrivals: number[] = [];
    await withSetup(
      { action: () => (arrivals.push(performance.now()), { kind: 'answer' }) },
      { REQUEST_GAP_MS: '100', MAX_INFLIGHT: '4' },
      async ({ client }) => {
        const c = await client();
        await Promise.all([c.read(1, 1, 1), c.read(1, 2, 1), c.read(1, 3, 1)]);
        assert.equal(arrivals.length, 3);
        for (let i = 1; i < arrivals.length; i++) {
          assert.ok(arrivals[i]! - arrivals[i - 1]! >= 95, `gap ${arrivals[i]! - arrivals[i - 1]!} ms`);
        }
      },
    );
  });

  it('a flooding client does not starve a poller (round-robin)', async () => {
    await withSetup({ action: () => ({ kind: 'answer', delayMs: 40 }) }, { CLIENT_QUEUE: '16' }, async ({ client }) => {
      const flooder = await client();
      const poller = await client();
      let flooding = true;
      const flood = (async () => {
        const inFlight = new Set<Promise<unknown>>();
        while (flooding) {
          while (inFlight.size < 16) {
            const p = flooder.read(1, 1, 1, { timeoutMs: 10_000 }).catch(() => {});
            inFlight.add(p);
            void p.finally(() => inFlight.delete(p));
          }
          await Promise.race(inFlight);
        }
        await Promise.all(inFlight);
      })();
      await sleep(100);
      const latencies: number[] = [];
      for (let i = 0; i < 5; i++) {
        const started = Date.now();
        const answer = await poller.read(2, 100, 1);
        latencies.push(Date.now() - started);
        assert.deepEqual(registersOf(answer), expectedRegisters(2, 100, 1));
      }
      flooding = false;
      await flood;
      // One flooder request ahead at most, then the poller's own: about 2 service times (80 ms); behind the flooder's
      // queue it would be 16 x 40 ms = 640 ms.
      assert.ok(Math.max(...latencies) < 400, `poller latencies ${latencies.join(',')} ms`);
    });
  });

  it('a client past CLIENT_QUEUE gets 0x06 for the excess, the others are answered', async () => {
    await withSetup({ action: () => ({ kind: 'answer', delayMs: 30 }) }, { CLIENT_QUEUE: '3' }, async ({ app, client }) => {
      const c = await client();
      const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => c.read(1, i, 1)));
      const codes = answers.map((a) => exceptionOf(a) ?? 0);
      assert.deepEqual(codes, [0, 0, 0, 6, 6, 6]);
      assert.equal(await metric(app, 'switchboard_requests_total', { protocol: 'modbus', outcome: 'busy' }), 3);
      assert.equal(c.closed, false);
    });
  });

  it('a queued request whose deadline passes gets 0x0B and is never sent', async () => {
    await withSetup({ action: () => ({ kind: 'answer', delayMs: 250 }) }, { REQUEST_DEADLINE_MS: '400', UPSTREAM_TIMEOUT_MS: '1000' }, async ({ device, client }) => {
      const c = await client();
      const answers = await Promise.all([c.read(1, 1, 1), c.read(1, 2, 1), c.read(1, 3, 1)]);
      assert.equal(exceptionOf(answers[0]!), undefined);
      assert.equal(exceptionOf(answers[1]!), 0x0b); // sent at 250 ms, deadline at 400 ms
      assert.equal(exceptionOf(answers[2]!), 0x0b); // expired in the queue
      await sleep(400);
      assert.equal(device.requests.length, 2);
    });
  });

  it('requests of a client that left are never sent', async () => {
    await withSetup({ action: () => ({ kind: 'answer', delayMs: 600 }) }, {}, async ({ app, device, client }) => {
      const leaver = await client();
      const stayer = await client();
      const kept = stayer.read(1, 9, 1);
      await waitFor(() => device.requests.length === 1, "the stayer's request in flight");
      for (let i = 0; i < 5; i++) leaver.socket.write(encodeModbusTcp(i + 1, 1, readPdu(3, i, 1)));
      await waitFor(() => (app.engine.status() as { queued: number }).queued === 5, "the leaver's requests queued");
      leaver.close();
      await waitFor(() => (app.engine.status() as { clientCount: number }).clientCount === 1, 'the leaver gone');
      assert.deepEqual(registersOf(await kept), expectedRegisters(1, 9, 1));
      await sleep(300);
      assert.equal(device.requests.length, 1);
      assert.equal(await metric(app, 'switchboard_requests_total', { protocol: 'modbus', outcome: 'client_gone' }), 5);
      assert.equal(await metric(app, 'switchboard_queue_depth'), 0);
    });
  });

  for (const [name, header] of [
    ['MBAP length 0', [0, 1, 0, 0, 0, 0, 1, 3]],
    ['MBAP length 255', [0, 1, 0, 0, 0, 255, 1, 3]],
    ['protocol id 1', [0, 1, 0, 1, 0, 6, 1, 3, 0, 0, 0, 1]],
  ] as const) {
    it(`a bad MBAP frame (${name}) closes that client only`, async () => {
      await withSetup({}, {}, async ({ app, client, port }) => {
        const good = await client();
        const bad = new Recorder(await connectTcp(port));
        bad.socket.write(Buffer.from(header));
        await waitFor(() => bad.closed, 'bad client closed');
        assert.deepEqual(registersOf(await good.read(1, 1, 1)), expectedRegisters(1, 1, 1));
        assert.equal(good.closed, false);
        assert.ok((await metric(app, 'switchboard_connections_rejected_total', { reason: 'bad_frame' })) >= 1);
      });
    });
  }

  it('a client that sends half a frame and goes silent disturbs nobody', async () => {
    await withSetup({}, {}, async ({ client, port }) => {
      const half = await connectTcp(port);
      half.write(Buffer.from([0, 1, 0, 0, 0, 6, 1]));
      const c = await client();
      assert.deepEqual(registersOf(await c.read(1, 1, 1)), expectedRegisters(1, 1, 1));
      half.destroy();
    });
  });

  it('UPSTREAM_MAX_TIMEOUTS consecutive timeouts drop and redial the upstream', async () => {
    await withSetup(
      { action: (_f, i): DeviceAction => (i < 2 ? { kind: 'silent' } : { kind: 'answer' }) },
      { UPSTREAM_TIMEOUT_MS: '150', UPSTREAM_MAX_TIMEOUTS: '2' },
      async ({ device, client }) => {
        const c = await client();
        assert.equal(exceptionOf(await c.read(1, 1, 1)), 0x0b);
        assert.equal(device.connections, 1);
        assert.equal(exceptionOf(await c.read(1, 1, 1)), 0x0b);
        await waitFor(() => device.connections === 2, 'redial');
        assert.deepEqual(registersOf(await c.read(1, 1, 1)), expectedRegisters(1, 1, 1));
      },
    );
  });

  it('UPSTREAM_IDLE_CLOSE_MS closes the upstream without clients and the next request dials again', async () => {
    await withSetup({}, { UPSTREAM_IDLE_CLOSE_MS: '150' }, async ({ app, device, port }) => {
      const first = await ModbusClient.connect(port);
      assert.deepEqual(registersOf(await first.read(1, 1, 1)), expectedRegisters(1, 1, 1));
      first.close();
      await waitFor(() => (app.engine.status() as { upstream: { state: string } }).upstream.state === 'idle', 'idle close');
      await waitFor(() => device.open.size === 0, 'device sees the close');
      const second = await ModbusClient.connect(port);
      assert.deepEqual(registersOf(await second.read(1, 2, 1)), expectedRegisters(1, 2, 1));
      assert.equal(device.connections, 2);
      second.close();
    });
  });

  it('/status lists clients and the upstream; metrics move', async () => {
    await withSetup({}, {}, async ({ app, client }) => {
      const c = await client();
      await c.read(1, 1, 1);
      const status = (await (await fetch(`http://127.0.0.1:${app.port('http')}/status`)).json()) as {
        mode: string;
        clients: Array<{ address: string; connectedAt: string; bytesIn: number; bytesOut: number }>;
        upstream: { target: string; state: string; since: string; lastError: string | null };
      };
      assert.equal(status.mode, 'mux');
      assert.equal(status.clients.length, 1);
      assert.equal(status.clients[0]!.bytesIn, 12);
      assert.equal(status.clients[0]!.bytesOut, 11);
      assert.equal(status.upstream.state, 'up');
      assert.equal(status.upstream.lastError, null);
      assert.equal(await metric(app, 'switchboard_bytes_total', { direction: 'upstream_out' }), 12);
      assert.equal(await metric(app, 'switchboard_bytes_total', { direction: 'upstream_in' }), 11);
      const text = await (await fetch(`http://127.0.0.1:${app.port('http')}/metrics`)).text();
      assert.match(text, /switchboard_request_duration_seconds_count 1/);
      assert.match(text, /switchboard_queue_depth 0/);
    });
  });

  it('drain answers requests in flight before closing', async () => {
    const device = await ModbusDevice.start({ action: () => ({ kind: 'answer', delayMs: 200 }) });
    const app = await mux(device.target);
    const c = await ModbusClient.connect(app.port('tcp'));
    try {
      await waitFor(() => (app.engine.status() as { upstream: { state: string } }).upstream.state === 'up', 'up');
      const pending = c.read(1, 1, 1);
      await sleep(50);
      const drained = app.stop();
      assert.deepEqual(registersOf(await pending), expectedRegisters(1, 1, 1));
      await drained;
      if (!c.closed) await once(c.socket, 'close');
    } finally {
      c.close();
      await app.stop();
      await device.stop();
    }
  });
});
