/**
 * share mode with socat as an independent peer: as a device that dials in (UPSTREAM=listen:), as an echoing device that
 * switchboard dials (UPSTREAM=tcp:), and as clients. Skipped when socat is missing on a dev machine; a failure in CI.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';
import { connectTcp, freePort, LOOPBACK, Recorder, startApp, waitFor } from '../helpers.js';
import { pattern, shareEnv, upstreamState, waitForClients, type ShareApp } from '../engines/share/harness.js';

const HAVE_SOCAT = spawnSync('socat', ['-V'], { stdio: 'ignore' }).status === 0;

function needSocat(t: TestContext): boolean {
  if (HAVE_SOCAT) return true;
  if (process.env.CI === 'true') assert.fail('socat is required in CI (apt-get install socat)');
  t.skip('socat is not installed');
  return false;
}

describe('share mode with socat', () => {
  const apps: ShareApp[] = [];
  const children: ChildProcess[] = [];
  const sockets: Socket[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'swb-share-socat-'));
  after(async () => {
    for (const child of children) if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
    for (const s of sockets) s.destroy();
    await Promise.all(apps.map((a) => a.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  function socat(args: string[]): ChildProcess & { out: Buffer[] } {
    const child = spawn('socat', args, { stdio: ['pipe', 'pipe', 'pipe'] }) as ChildProcess & { out: Buffer[] };
    child.out = [];
    child.stdout!.on('data', (chunk: Buffer) => child.out.push(chunk));
    children.push(child);
    return child;
  }

  it('a device that dials in with socat: socat clients and node clients receive its output exactly', async (t) => {
    if (!needSocat(t)) return;
    const app = await startApp(shareEnv('listen:0', { REPLAY_BYTES: '1000' }));
    apps.push(app);
    const rw = app.port('rw');
    const socatClients = [0, 1].map(() => socat(['-u', `TCP:${LOOPBACK}:${rw}`, 'STDOUT']));
    const nodeClient = new Recorder(await connectTcp(rw));
    sockets.push(nodeClient.socket);
    await waitForClients(app, 3);
    const file = join(dir, 'output.bin');
    const data = pattern(0, 300_000);
    writeFileSync(file, data);
    // The device: sends the file, then keeps the link open until killed (so its EOF does not end the test early).
    const device = socat(['-u', `OPEN:${file}`, `TCP:${LOOPBACK}:${app.port('upstream')}`]);
    await waitFor(() => nodeClient.length === data.length, 'the node client to get the file', 20_000);
    await waitFor(() => socatClients.every((c) => Buffer.concat(c.out).length === data.length), 'the socat clients to get the file', 20_000);
    assert.ok(nodeClient.bytes.equals(data));
    for (const c of socatClients) assert.ok(Buffer.concat(c.out).equals(data));
    void device;
    // A late socat client gets the replay: the last 1000 bytes.
    const late = socat(['-u', `TCP:${LOOPBACK}:${rw}`, 'STDOUT']);
    await waitFor(() => Buffer.concat(late.out).length === 1000, 'the replay at a late socat client');
    assert.ok(Buffer.concat(late.out).equals(data.subarray(data.length - 1000)));
  });

  it('an echoing socat device: what one client types comes back from the device to every client, once', async (t) => {
    if (!needSocat(t)) return;
    const port = await freePort();
    socat([`TCP-LISTEN:${port},bind=${LOOPBACK},reuseaddr`, 'EXEC:cat']);
    const app = await startApp(shareEnv(`tcp:${LOOPBACK}:${port}`));
    apps.push(app);
    await waitFor(() => upstreamState(app) === 'up', 'switchboard to reach the socat device', 10_000);
    const a = new Recorder(await connectTcp(app.port('rw')));
    const b = new Recorder(await connectTcp(app.port('rw')));
    sockets.push(a.socket, b.socket);
    await waitForClients(app, 2);
    a.socket.write('status\n');
    await waitFor(() => a.text === 'status\n' && b.text === 'status\n', 'the echo at both clients');
    b.socket.write('reboot\n');
    await waitFor(() => a.text === 'status\nreboot\n' && b.text === 'status\nreboot\n', 'the second echo at both clients');
  });
});
