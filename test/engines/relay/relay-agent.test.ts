/**
 * relay and agent end to end over loopback (DESIGN §7): visitors reach the service through the tunnel, many at once, with
 * per-stream backpressure and half-close; leases keep the port across agent restarts; visitors wait for a returning agent;
 * refusals (wrong secret, empty pool, taken or forbidden port) are immediate; secrets never show.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { App } from '../../../src/app.js';
import { ConfigError, loadConfig } from '../../../src/config/load.js';
import { REDACT_PATHS } from '../../../src/log.js';
import { RelayEngine } from '../../../src/engines/relay/relay.js';
import { Metrics } from '../../../src/metrics.js';
import { BufferBudget } from '../../../src/net/flow.js';
import { encodeWindowUpdate } from '../../../src/protocols/yamux.js';
import type { RelayModeConfig } from '../../../src/config/load.js';
import { LOOPBACK, metric, sleep, waitFor } from '../../helpers.js';
import {
  echo,
  fileCleanups,
  freePort,
  publicPortOf,
  RawAgent,
  roundTrip,
  SECRET,
  startAgent,
  startRelay,
  startService,
  waitBound,
  type TestApp,
} from './relay-helpers.js';

const { cleanups, track } = fileCleanups();

describe('relay and agent over loopback', { timeout: 60_000 }, () => {
  it('visitors reach the service, many at once, byte-exact', async () => {
    const service = await startService(echo);
    cleanups.push(() => service.close());
    const relay = track(await startRelay());
    const agent = track(await startAgent(relay, service.port));
    const port = await waitBound(agent);

    const payloads = Array.from({ length: 32 }, () => randomBytes(64 * 1024 + Math.floor(Math.random() * 64 * 1024)));
    const answers = await Promise.all(payloads.map((p) => roundTrip(port, p)));
    for (let i = 0; i < payloads.length; i++) assert.ok(answers[i]!.equals(payloads[i]!), `visitor ${i} got its bytes back`);

    assert.equal(await metric(relay, 'switchboard_tunnels_active'), 1);
    const total = payloads.reduce((n, p) => n + p.length, 0);
    assert.equal(await metric(relay, 'switchboard_bytes_total', { direction: 'in' }), total);
    await waitFor(async () => (await metric(relay, 'switchboard_bytes_total', { direction: 'out' })) === total, 'bytes out counted');
    await waitFor(async () => (await metric(relay, 'switchboard_streams_active')) === 0, 'streams closed');
    const tunnels = (relay.engine.status() as { tunnels: Array<Record<string, unknown>> }).tunnels;
    assert.equal(tunnels.length, 1);
    assert.equal(tunnels[0]!.publicPort, port);
    assert.equal(tunnels[0]!.bytesIn, total);
    assert.equal(tunnels[0]!.leaseExpiresAt, null);
    assert.match(String(tunnels[0]!.agent), /^127\.0\.0\.1:\d+$/);
    const status = (await (await fetch(`http://${LOOPBACK}:${agent.port("http")}/status`)).json()) as { publicPort: number };
    assert.equal(status.publicPort, port);
    const readyz = await fetch(`http://${LOOPBACK}:${agent.port('http')}/readyz`);
    assert.equal(readyz.status, 200);
  });

  it('half-close maps both ways', async () => {
    // The service answers only after the visitor's FIN, and half-closes first on the second kind of visitor.
    const service = await startService((socket) => {
      const chunks: Buffer[] = [];
      let mode = '';
      socket.on('data', (chunk: Buffer) => {
        if (mode === '') {
          mode = chunk.subarray(0, 1).toString();
          if (mode === 'G') socket.end('greeting then FIN');
        }
        chunks.push(chunk);
      });
      socket.on('end', () => {
        if (mode === 'G') return socket.destroy();
        socket.end(`got ${Buffer.concat(chunks).length} bytes`);
      });
    });
    cleanups.push(() => service.close());
    const relay = track(await startRelay());
    const agent = track(await startAgent(relay, service.port));
    const port = await waitBound(agent);

    // visitor FIN first: the reply still comes back after it
    assert.equal((await roundTrip(port, Buffer.alloc(100_000, 1))).toString(), 'got 100000 bytes');

    // service FIN first: the visitor sees end, and can still send
    const visitor = connect({ port, host: LOOPBACK, allowHalfOpen: true });
    visitor.on('error', () => {});
    const got: Buffer[] = [];
    visitor.on('data', (c: Buffer) => got.push(c));
    visitor.write('G');
    await once(visitor, 'end');
    assert.equal(Buffer.concat(got).toString(), 'greeting then FIN');
    assert.ok(visitor.write('still writable after the service FIN'));
    visitor.end();
    await once(visitor, 'close');
  });

  it('a visitor that stops reading does not stall the others', async () => {
    // 'F' visitors get a flood; others get an echo.
    const service = await startService((socket) => {
      socket.once('data', (first: Buffer) => {
        if (first[0] === 0x46) {
          const block = Buffer.alloc(64 * 1024, 7);
          const pump = (): void => {
            while (socket.writable && socket.write(block));
          };
          socket.on('drain', pump);
          pump();
        } else {
          socket.write(first);
          socket.pipe(socket);
        }
      });
    });
    cleanups.push(() => service.close());
    const relay = track(await startRelay());
    const agent = track(await startAgent(relay, service.port));
    const port = await waitBound(agent);

    const stuck: Socket = connect({ port, host: LOOPBACK });
    stuck.on('error', () => {});
    await once(stuck, 'connect');
    stuck.write('F');
    stuck.pause(); // never reads
    await sleep(300);
    const started = Date.now();
    for (let i = 0; i < 5; i++) {
      const data = randomBytes(200_000);
      data[0] = 0x45; // never 'F': a random first byte asked for the flood once in 256 round trips
      assert.ok((await roundTrip(port, data, 5000)).equals(data));
    }
    assert.ok(Date.now() - started < 5000, 'echo visitors were served while the flood was stuck');
    // The stuck stream holds at most about its window and socket buffers, not the whole flood.
    const heldByRelay = (relay.engine.status() as { tunnels: Array<{ bytesOut: number }> }).tunnels[0]!.bytesOut;
    assert.ok(heldByRelay < 16 * 1024 * 1024, `relay forwarded ${heldByRelay} bytes to a visitor that reads nothing`);
    stuck.destroy();
  });

  it('an agent restart within LEASE_TTL_MS gets the same port, and visitors in the gap wait and are served', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'swb-lease-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const leaseFile = join(dir, 'lease');
    const service = await startService(echo);
    cleanups.push(() => service.close());
    const relay = track(await startRelay({ LEASE_TTL_MS: '5000', VISITOR_WAIT_MS: '5000' }));
    const first = await startAgent(relay, service.port, { LEASE_FILE: leaseFile });
    const port = await waitBound(first);
    await first.stop();
    await waitFor(() => (relay.engine.status() as { tunnels: Array<{ state: string }> }).tunnels[0]?.state === 'away', 'relay sees the agent away');
    const away = (relay.engine.status() as { tunnels: Array<{ leaseExpiresAt: string | null }> }).tunnels[0]!;
    assert.ok(away.leaseExpiresAt !== null && Date.parse(away.leaseExpiresAt) > Date.now());

    // A visitor arrives while no agent is there: it waits.
    const data = randomBytes(50_000);
    const waiting = roundTrip(port, data, 8000);
    await sleep(300);
    const second = track(await startAgent(relay, service.port, { LEASE_FILE: leaseFile }));
    assert.equal(await waitBound(second), port, 'same public port after restart');
    assert.ok((await waiting).equals(data), 'the waiting visitor was served');
  });

  it('a network blip: the agent reconnects by itself and keeps its port', async () => {
    const service = await startService(echo);
    cleanups.push(() => service.close());
    const relay = track(await startRelay());
    const agent = track(await startAgent(relay, service.port));
    const port = await waitBound(agent);
    (agent.engine as unknown as { socket: Socket }).socket.destroy();
    await waitFor(() => !agent.engine.ready, 'agent notices the loss');
    assert.equal(await waitBound(agent, 'agent bound again'), port);
    const data = randomBytes(10_000);
    assert.ok((await roundTrip(port, data)).equals(data));
    assert.ok((await metric(agent, 'switchboard_upstream_reconnects_total')) >= 1);
  });

  it('REQUEST_PORT gets that port; a second agent asking for it is refused with port_in_use', async () => {
    const service = await startService(echo);
    cleanups.push(() => service.close());
    const wanted = await freePort();
    const relay = track(await startRelay());
    const agent = track(await startAgent(relay, service.port, { REQUEST_PORT: String(wanted) }));
    assert.equal(await waitBound(agent), wanted);
    const rival = track(await startAgent(relay, service.port, { REQUEST_PORT: String(wanted) }));
    await waitFor(() => /port_in_use/.test(String((rival.engine.status() as { upstream: { lastError: string } }).upstream.lastError)), 'rival refused');
    assert.equal(publicPortOf(rival), null);
  });

  it('a lease is reclaimed only with its lease id', async () => {
    const relay = track(await startRelay());
    const owner = await RawAgent.connect(relay);
    const bound = await owner.bind(SECRET);
    assert.equal(bound.type, 'bound');
    if (bound.type !== 'bound') return;
    owner.close();
    await waitFor(() => (relay.engine.status() as { tunnels: Array<{ state: string }> }).tunnels[0]?.state === 'away', 'owner away');

    const thief = await RawAgent.connect(relay);
    const refused = await thief.bind(SECRET, { port: bound.port, leaseId: 'ab'.repeat(16) });
    assert.deepEqual(refused.type === 'error' && refused.code, 'port_in_use');
    thief.close();

    const back = await RawAgent.connect(relay);
    const again = await back.bind(SECRET, { leaseId: bound.leaseId });
    assert.equal(again.type === 'bound' && again.port, bound.port);
    back.close();
  });

  it('a wrong secret gets auth_failed and no port', async () => {
    const relay = track(await startRelay());
    const raw = await RawAgent.connect(relay);
    const answer = await raw.bind('not the secret');
    assert.equal(answer.type === 'error' && answer.code, 'auth_failed');
    await waitFor(() => raw.session.closed, 'relay closes the session');
    assert.deepEqual((relay.engine.status() as { tunnels: unknown[] }).tunnels, []);

    const service = await startService(echo);
    cleanups.push(() => service.close());
    const agent = track(await startAgent(relay, service.port, { AUTH_SECRET: 'wrong' }));
    await waitFor(() => /auth_failed/.test(String((agent.engine.status() as { upstream: { lastError: string } }).upstream.lastError)), 'agent reports auth_failed');
    assert.equal(publicPortOf(agent), null);
    assert.equal(agent.engine.ready, false);
  });

  it('an empty pool gets pool_exhausted at once; a taken or foreign port is refused', async () => {
    const only = await freePort();
    const relay = track(await startRelay({ PUBLIC_PORTS: `${only}-${only}` }));
    const first = await RawAgent.connect(relay);
    const bound = await first.bind(SECRET);
    assert.equal(bound.type === 'bound' && bound.port, only);

    const second = await RawAgent.connect(relay);
    const started = Date.now();
    const exhausted = await second.bind(SECRET);
    assert.equal(exhausted.type === 'error' && exhausted.code, 'pool_exhausted');
    assert.ok(Date.now() - started < 1000, 'answered at once');
    // Same session, other requests: still immediate answers.
    second.send({ type: 'bind', port: only });
    const inUse = await second.next();
    assert.equal(inUse.type === 'error' && inUse.code, 'port_in_use');
    second.send({ type: 'bind', port: only === 65535 ? only - 1 : only + 1 });
    const foreign = await second.next();
    assert.equal(foreign.type === 'error' && foreign.code, 'port_not_allowed');
    first.close();
    second.close();
  });

  it('malformed control input closes that session only', async () => {
    const service = await startService(echo);
    cleanups.push(() => service.close());
    const relay = track(await startRelay());
    const agent = track(await startAgent(relay, service.port));
    const port = await waitBound(agent);

    const oversized = await RawAgent.connect(relay);
    await oversized.next();
    oversized.control.write(Buffer.alloc(5000, 0x61));
    await waitFor(() => oversized.session.closed, 'oversized control line closes the session');

    // a yamux frame with version 1 after a good preamble
    const badVersion = connect({ port: relay.port('relay'), host: LOOPBACK });
    badVersion.on('error', () => {});
    badVersion.resume(); // reads the relay's GoAway and FIN, so the socket closes
    await once(badVersion, 'connect');
    const frame = encodeWindowUpdate(1, 1, 0);
    frame[0] = 1;
    badVersion.write(Buffer.concat([Buffer.from('SWBMUX1\n'), frame]));
    await once(badVersion, 'close');

    const garbage = connect({ port: relay.port('relay'), host: LOOPBACK });
    garbage.on('error', () => {});
    garbage.write('GET / HTTP/1.1\r\n\r\n');
    await once(garbage, 'close');

    const data = randomBytes(1000);
    assert.ok((await roundTrip(port, data)).equals(data), 'the good agent still serves');
  });

  it('an agent killed mid-transfer: its visitors are closed at once, the others never notice', async () => {
    const flood = await startService((socket) => {
      const block = Buffer.alloc(64 * 1024, 1);
      const pump = (): void => {
        while (socket.writable && socket.write(block));
      };
      socket.on('drain', pump);
      pump();
    });
    cleanups.push(() => flood.close());
    const relay = track(await startRelay({ LEASE_TTL_MS: '0' }));
    const agent = await startAgent(relay, flood.port);
    const port = await waitBound(agent);
    const visitor = connect({ port, host: LOOPBACK });
    visitor.on('error', () => {});
    let received = 0;
    visitor.on('data', (c: Buffer) => (received += c.length));
    await waitFor(() => received > 1_000_000, 'transfer under way');
    let visitorClosed = false;
    visitor.once('close', () => (visitorClosed = true));
    (agent.engine as unknown as { socket: Socket }).socket.destroy();
    // Bounded waits: a hang here names its step instead of timing out the whole suite (and cancelling the tests after it).
    await waitFor(() => visitorClosed, 'the visitor closed by the relay when its agent died', 10_000);
    await agent.stop();
    await waitFor(async () => (await metric(relay, 'switchboard_tunnels_active')) === 0, 'tunnel gone');
    // LEASE_TTL_MS=0: the port is released at once.
    assert.deepEqual((relay.engine.status() as { tunnels: unknown[] }).tunnels, []);
  });

  it('a dead agent (pings unanswered) is found and its lease starts counting', async () => {
    const config = loadConfig({ MODE: 'relay', HOST: LOOPBACK, HTTP_PORT: 'off', RELAY_PORT: '0', PUBLIC_PORTS: '0', AUTH_SECRET: SECRET }).config as RelayModeConfig;
    const engine = new RelayEngine(
      { config, log: pino({ level: 'silent' }), metrics: new Metrics('relay'), budget: new BufferBudget(1 << 20) },
      { pingIntervalMs: 100, pingTimeoutMs: 200 },
    );
    await engine.start();
    cleanups.push(() => engine.drain(100));
    const relayLike = { port: () => engine.listeners()[0]!.port } as unknown as TestApp;
    const raw = await RawAgent.connect(relayLike);
    assert.equal((await raw.bind(SECRET)).type, 'bound');
    raw.socket.pause(); // alive at TCP level, but never reads a ping again
    const status = () => (engine.status() as { tunnels: Array<{ state: string; leaseExpiresAt: string | null }> }).tunnels[0];
    await waitFor(() => status()?.state === 'away', 'relay declares the agent dead', 3000);
    assert.notEqual(status()!.leaseExpiresAt, null);
    raw.close();
  });

  it('SIGTERM drain: GoAway, open streams finish, then the relay stops', async () => {
    const service = await startService(echo);
    cleanups.push(() => service.close());
    const relay = await startRelay();
    const agent = track(await startAgent(relay, service.port));
    const port = await waitBound(agent);
    const visitor = connect({ port, host: LOOPBACK, allowHalfOpen: true });
    visitor.on('error', () => {});
    await once(visitor, 'connect');
    const got: Buffer[] = [];
    visitor.on('data', (c: Buffer) => got.push(c));
    visitor.write('before');
    await waitFor(() => Buffer.concat(got).toString() === 'before', 'first echo');
    const draining = relay.stop();
    await sleep(50);
    visitor.end('after');
    await once(visitor, 'end');
    assert.equal(Buffer.concat(got).toString(), 'beforeafter', 'the open stream finished during the drain');
    await draining;
    await waitFor(() => !agent.engine.ready, 'agent sees the relay go');
  });
});

describe('relay configuration and secrets', () => {
  it('refuses to start without AUTH_SECRET unless AUTH=none', () => {
    assert.throws(() => loadConfig({ MODE: 'relay' }), (e: unknown) => e instanceof ConfigError && /AUTH_SECRET is required/.test(e.message));
    assert.equal(loadConfig({ MODE: 'relay', AUTH: 'none' }).config.mode, 'relay');
    const legacy = loadConfig({ MODE: 'relay', AUTH: 'none' }).config;
    assert.equal(legacy.mode === 'relay' && legacy.relay.legacyAllowed, true);
    const secret = loadConfig({ MODE: 'relay', AUTH_SECRET: 's' }).config;
    assert.equal(secret.mode === 'relay' && secret.relay.legacyAllowed, false);
    assert.throws(() => loadConfig({ MODE: 'relay', PUBLIC_PORTS: '9-3', AUTH: 'none' }), /PUBLIC_PORTS="9-3" is not a port range/);
    assert.throws(() => loadConfig({ RELAY: 'h:1' }), /SERVICE is required/);
  });

  it('never shows the secret in the config summary, errors, logs or /status', async () => {
    const loaded = loadConfig({ MODE: 'relay', AUTH_SECRET: SECRET });
    assert.ok(!JSON.stringify(loaded.summary).includes(SECRET));
    assert.throws(
      () => loadConfig({ MODE: 'relay', AUTH_SECRET: SECRET, AUTH: 'none' }),
      (e: unknown) => e instanceof Error && !e.message.includes(SECRET),
    );
    const service = await startService(echo);
    cleanups.push(() => service.close());
    const relay = track(await startRelay());
    const agent = track(await startAgent(relay, service.port));
    await waitBound(agent);
    for (const app of [relay, agent]) {
      const status = await (await fetch(`http://${LOOPBACK}:${app.port('http')}/status`)).text();
      assert.ok(!status.includes(SECRET), 'no secret in /status');
      assert.ok(!/leaseId/.test(status), 'no lease id in /status');
    }
  });

  it('logs at trace level show neither the secret nor a lease id', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(chunk.toString());
        callback();
      },
    });
    const log = pino({ level: 'trace', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, sink);
    const base = { HOST: LOOPBACK, HTTP_HOST: LOOPBACK, HTTP_PORT: '0', SHUTDOWN_GRACE_MS: '300', AUTH_SECRET: SECRET };
    const relayConfig = loadConfig({ ...base, MODE: 'relay', RELAY_PORT: '0', PUBLIC_PORTS: '0' });
    log.info({ config: relayConfig.summary }, 'starting'); // as main.ts does
    const relay = new App(relayConfig, log);
    await relay.start();
    cleanups.push(() => relay.drain());
    const service = await startService(echo);
    cleanups.push(() => service.close());
    const agentConfig = loadConfig({ ...base, RELAY: `${LOOPBACK}:${relay.port('relay')}`, SERVICE: `${LOOPBACK}:${service.port}` });
    log.info({ config: agentConfig.summary }, 'starting');
    const agent = new App(agentConfig, log);
    await agent.start();
    cleanups.push(() => agent.drain());
    await waitFor(() => agent.engine.ready, 'agent bound');
    const wrong = await RawAgent.connect(relay as TestApp);
    await wrong.bind('wrong');
    wrong.close();
    const raw = await RawAgent.connect(relay as TestApp);
    const bound = await raw.bind(SECRET);
    assert.equal(bound.type, 'bound');
    raw.close();
    await sleep(100);
    const all = lines.join('');
    assert.ok(all.includes('"publicPort"'), 'the bound line is there');
    assert.ok(!all.includes(SECRET), 'no secret in the logs');
    assert.ok(bound.type === 'bound' && !all.includes(bound.leaseId), 'no lease id in the logs');
  });
});
