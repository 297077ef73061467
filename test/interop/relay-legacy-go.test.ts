/**
 * tcp-relay services (muxado v1) on switchboard's relay (DESIGN §7, RELAY_LEGACY): the Go service of
 * test/interop/go/muxado-service (tcp-relay's echoserver.go on Debian's muxado v1) connects without the preamble, reads
 * `localhost:<port>` from its first stream and echoes visitors; with a secret and RELAY_LEGACY=auto it is refused.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect } from 'node:net';
import { after, describe, it } from 'node:test';
import { LOOPBACK, metric, waitFor } from '../helpers.js';
import { roundTrip, startRelay } from '../engines/relay/relay-helpers.js';
import { buildGoPeer, skipOrFail } from './go-build.js';

const MUXADO_PACKAGES = ['github.com/inconshreveable/muxado/proto', 'github.com/inconshreveable/muxado/proto/ext'];
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

function startService(binary: string, relayPort: number): { child: ChildProcess; output: () => string } {
  const child = spawn(binary, ['-heartbeat', '500ms', '-tolerance', '2s', `${LOOPBACK}:${relayPort}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', () => {});
  return { child, output: () => out };
}

describe('tcp-relay (muxado v1) services on the relay', { timeout: 120_000 }, () => {
  it('AUTH=none (RELAY_LEGACY=auto): served like tcp-relay, several visitors, heartbeats kept', async (t) => {
    const build = await buildGoPeer('muxado-service', MUXADO_PACKAGES);
    if (!build.binary) return skipOrFail(t, build.skipReason ?? 'Go peer unavailable');
    const relay = await startRelay({ AUTH: 'none', AUTH_SECRET: '' });
    cleanups.push(() => relay.stop());
    const service = startService(build.binary, relay.port('relay'));
    await waitFor(() => /^address /m.test(service.output()), 'service got its address', 10_000);
    const port = Number(/^address localhost:(\d+)$/m.exec(service.output())![1]);
    const tunnels = (relay.engine.status() as { tunnels: Array<{ publicPort: number; protocol: string }> }).tunnels;
    assert.deepEqual(tunnels.map((x) => [x.publicPort, x.protocol]), [[port, 'muxado1']]);
    const payloads = Array.from({ length: 6 }, (_, i) => randomBytes(500 + i * 30_000));
    const answers = await Promise.all(payloads.map((p) => roundTrip(port, p, 15_000)));
    for (let i = 0; i < payloads.length; i++) assert.ok(answers[i]!.equals(payloads[i]!), `legacy visitor ${i}`);
    // more than one heartbeat interval (and its tolerance) later, the session is still up
    await new Promise((resolve) => setTimeout(resolve, 2500));
    assert.doesNotMatch(service.output(), /^closed /m);
    const data = randomBytes(1000);
    assert.ok((await roundTrip(port, data)).equals(data));
    assert.equal(await metric(relay, 'switchboard_tunnels_active'), 1);

    // the service goes away and comes back: its port is released at once (no lease) and it gets a port again
    process.kill(service.child.pid!, 'SIGKILL');
    await waitFor(() => (relay.engine.status() as { tunnels: unknown[] }).tunnels.length === 0, 'legacy port released');
    const again = startService(build.binary, relay.port('relay'));
    await waitFor(() => /^address /m.test(again.output()), 'service got an address again', 10_000);
    const port2 = Number(/^address localhost:(\d+)$/m.exec(again.output())![1]);
    const more = randomBytes(20_000);
    assert.ok((await roundTrip(port2, more)).equals(more));

    // garbage that is neither the preamble nor muxado v1 is closed quickly
    const garbage = connect({ port: relay.port('relay'), host: LOOPBACK });
    garbage.on('error', () => {});
    garbage.resume();
    const started = Date.now();
    garbage.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await once(garbage, 'close');
    assert.ok(Date.now() - started < 2000, 'garbage closed within 2 s');
  });

  it('with a secret set and RELAY_LEGACY=auto the service is refused, closed and counted', async (t) => {
    const build = await buildGoPeer('muxado-service', MUXADO_PACKAGES);
    if (!build.binary) return skipOrFail(t, build.skipReason ?? 'Go peer unavailable');
    const relay = await startRelay();
    cleanups.push(() => relay.stop());
    const service = startService(build.binary, relay.port('relay'));
    await once(service.child, 'close');
    assert.doesNotMatch(service.output(), /^address /m);
    assert.equal(await metric(relay, 'switchboard_connections_rejected_total', { reason: 'legacy_refused' }), 1);
  });
});
