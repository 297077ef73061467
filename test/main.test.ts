/**
 * The process as users start it: exit 1 with one line per bad setting, SIGTERM drains and exits 0, and SocketForwarder's
 * dotted names survive `npm start` (npm runs scripts with sh; .npmrc makes that bash, which keeps them).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { connectTcp, LOOPBACK, Recorder, waitFor } from './helpers.js';

const ROOT = new URL('..', import.meta.url).pathname;
const children = new Set<ChildProcess>();

interface Started {
  child: ChildProcess;
  stderr: () => string;
  /** Log lines (JSON) seen so far. */
  lines: () => Array<Record<string, unknown>>;
}

function start(command: string, args: string[], env: Record<string, string>): Started {
  // Only PATH and HOME from the test's environment: switchboard must not pick up settings by accident.
  // detached: its own process group, so a failed test can kill `npm start` and the node it started together (killGroup).
  const child = spawn(command, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout!.resume();
  return {
    child,
    stderr: () => stderr,
    lines: () =>
      stderr
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

const startSwitchboard = (env: Record<string, string>) => start(process.execPath, ['--import', 'tsx', 'src/main.ts'], env);

async function listenersOf(started: Started, timeoutMs = 15_000): Promise<Array<{ name: string; port: number }>> {
  await waitFor(() => started.lines().some((l) => l.msg === 'ready'), 'the "ready" log line', timeoutMs);
  return started.lines().find((l) => l.msg === 'ready')!.listeners as Array<{ name: string; port: number }>;
}

/** SIGKILL cannot be forwarded by npm: the whole group goes, or its node would outlive the test and hold its pipes. */
function killGroup(child: ChildProcess): void {
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    // already gone
  }
}

async function exitOf(child: ChildProcess, timeoutMs: number): Promise<number | null> {
  const timer = setTimeout(() => killGroup(child), timeoutMs);
  if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
  clearTimeout(timer);
  // 'exit' can come before the last output has been read; callers look at stderr next.
  await Promise.all([child.stdout, child.stderr].filter((s) => s && !s.closed).map((s) => once(s!, 'close')));
  return child.exitCode;
}

describe('the switchboard process', () => {
  after(() => {
    for (const child of children) killGroup(child);
  });

  it('exits 1 before listening, with one line per bad setting naming the variable, the value and an example', async () => {
    const started = startSwitchboard({ TCP_PORT: 'abc', MODE: 'bogus', HTTP_PORT: '0' });
    assert.equal(await exitOf(started.child, 10_000), 1);
    const problems = started.stderr().split('\n').filter((l) => l.startsWith('switchboard: '));
    assert.deepEqual(problems, [
      'switchboard: MODE="bogus" is not one of groups, mux, share, relay, agent; e.g. MODE=groups',
      'switchboard: configuration error (SWB_ERR_CONFIG); nothing was started',
    ]);
    const portProblem = startSwitchboard({ TCP_PORT: 'tcp://10.0.0.7:7100', HTTP_PORT: '0' });
    assert.equal(await exitOf(portProblem.child, 10_000), 1);
    assert.match(portProblem.stderr(), /^switchboard: TCP_PORT="tcp:\/\/10.0.0.7:7100" .*enableServiceLinks: false.*; e.g. TCP_PORT=7100$/m);
    assert.doesNotMatch(portProblem.stderr(), /"msg":"listening"/);
  });

  it('drains on SIGTERM: /readyz 503 at once, queued bytes flushed, exit 0 within SHUTDOWN_GRACE_MS', async () => {
    const started = startSwitchboard({ HOST: LOOPBACK, HTTP_HOST: LOOPBACK, HTTP_PORT: '0', TCP_PORT: '0', UDP_PORT: '0', SHUTDOWN_GRACE_MS: '3000' });
    const listeners = await listenersOf(started);
    const http = listeners.find((l) => l.name === 'http')!.port;
    const tcp = listeners.find((l) => l.name === 'tcp')!.port;
    assert.equal((await fetch(`http://${LOOPBACK}:${http}/readyz`)).status, 200);

    const sender = await connectTcp(tcp);
    sender.on('error', () => {}); // switchboard closes it mid-write at the end of the drain
    const slow = await connectTcp(tcp);
    sender.write('SOCKETFORWARDER-NEW:g\n');
    slow.write('SOCKETFORWARDER-NEW:g\n');
    const received = new Recorder(slow);
    slow.pause(); // keeps bytes queued in switchboard, so the drain has something to wait for
    await waitFor(() => started.lines().filter((l) => l.msg === 'client joined').length === 2, 'two members');
    // More than loopback's kernel buffers can absorb (several MB each way), so bytes stay queued in switchboard.
    const payload = Buffer.alloc(64 * 1024 * 1024, 7);
    sender.write(payload);
    await new Promise((resolve) => setTimeout(resolve, 500));

    const sentAt = Date.now();
    started.child.kill('SIGTERM');
    await waitFor(() => started.lines().some((l) => l.msg === 'draining'), 'the draining log line');
    const ready = await fetch(`http://${LOOPBACK}:${http}/readyz`);
    assert.equal(ready.status, 503);
    assert.equal((await fetch(`http://${LOOPBACK}:${http}/livez`)).status, 200);
    // Forwarding stops when the drain starts; what had been queued for the member by then must all arrive.
    const metrics = await (await fetch(`http://${LOOPBACK}:${http}/metrics`)).text();
    const queuedOut = Number(/^switchboard_bytes_total\{mode="groups",direction="out"\} (\d+)$/m.exec(metrics)![1]);
    assert.ok(queuedOut > 1024 * 1024, `a good part of the payload was queued (${queuedOut})`);
    slow.resume();
    assert.equal(await exitOf(started.child, 10_000), 0);
    assert.ok(Date.now() - sentAt < 3000 + 2000, 'exited within the grace period');
    await waitFor(() => received.closed, 'the member to be closed');
    assert.equal(received.length, queuedOut, 'queued bytes were flushed before closing');
    sender.destroy();
  });

  it("keeps SocketForwarder's dotted names through `npm start`", { timeout: 90_000 }, async () => {
    const started = start('npm', ['start', '--silent'], {
      'socketforwarder.tcp.port': '0',
      'socketforwarder.udp.port': '0',
      'socketforwarder.tcp.preconfig_addresses': 'g1:127.0.0.1:0',
      'socketforwarder.host_address': LOOPBACK,
      HTTP_HOST: LOOPBACK,
      HTTP_PORT: '0',
    });
    await listenersOf(started, 80_000);
    const first = started.lines().find((l) => typeof l.msg === 'string' && (l.msg as string).startsWith('starting switchboard'))!;
    assert.equal(first.profile, 'socketforwarder');
    assert.equal((first.config as Record<string, string>).TCP_PRECONFIG_ADDRESSES, 'g1:127.0.0.1:0');
    // …and node got the GLIBC_TUNABLES and NODE_OPTIONS that `npm start` sets (README "Memory and glibc"), read from its
    // own environment.
    // glibc cuts the variable at each ':' in place (NUL) while it parses it at start-up, so both forms are accepted.
    const environ = readFileSync(`/proc/${first.pid as number}/environ`, 'utf8');
    const { config } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { config: { glibc_tunables: string; node_options: string; node_flags: string } };
    const expected = `\0GLIBC_TUNABLES=${config.glibc_tunables}`;
    assert.ok(
      `\0${environ}`.includes(expected) || `\0${environ}`.includes(expected.replaceAll(':', '\0')),
      'npm start passes GLIBC_TUNABLES to node',
    );
    assert.ok(`\0${environ}\0`.includes(`\0NODE_OPTIONS=${config.node_options}\0`), 'npm start passes NODE_OPTIONS to node');
    // …and the node flags (V8 refuses them in NODE_OPTIONS), read from its command line.
    const argv = readFileSync(`/proc/${first.pid as number}/cmdline`, 'utf8').split('\0');
    const flags = config.node_flags.split(' ');
    assert.deepEqual(argv.slice(1, flags.length + 2), [...flags, 'dist/main.js']);
    started.child.kill('SIGTERM');
    assert.equal(await exitOf(started.child, 15_000), 0);
  });
});
