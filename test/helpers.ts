/**
 * Test plumbing: switchboard instances on OS-chosen loopback ports, TCP clients that record what they receive, bounded
 * waits, and metric reads. Every helper that opens something registers it for closing.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { pino } from 'pino';
import { App } from '../src/app.js';
import { loadConfig } from '../src/config/load.js';

export const LOOPBACK = '127.0.0.1';

/** Settings that select a mode other than groups (DESIGN §1 inference). */
const MODE_SELECTORS = ['MODE', 'TARGET', 'UPSTREAM', 'RELAY'];

/**
 * An App on 127.0.0.1 with every port chosen by the OS; `env` overrides. In groups mode TCP_PORT and UDP_PORT default to 0;
 * other modes set their own ports (LISTEN_PORT: '0', …) in `env`. Close it with `stop()`.
 */
export async function startApp(env: Record<string, string> = {}): Promise<App & { stop(): Promise<void> }> {
  const groups = !MODE_SELECTORS.some((name) => name in env) || env.MODE === 'groups';
  const loaded = loadConfig({
    HOST: LOOPBACK,
    HTTP_HOST: LOOPBACK,
    HTTP_PORT: '0',
    ...(groups ? { TCP_PORT: '0', UDP_PORT: '0' } : {}),
    SHUTDOWN_GRACE_MS: '500',
    ...env,
  });
  const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const app = new App(loaded, log) as App & { stop(): Promise<void> };
  await app.start();
  let stopped = false;
  app.stop = async () => {
    if (stopped) return;
    stopped = true;
    await app.drain();
  };
  return app;
}

/** Records everything a socket receives. */
export class Recorder {
  chunks: Buffer[] = [];
  length = 0;
  ended = false;
  closed = false;
  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.length += chunk.length;
    });
    socket.on('end', () => (this.ended = true));
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => {});
  }
  get text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** Counts and hashes what a socket receives without keeping it (for transfers too large to record). */
export class Digest {
  length = 0;
  closed = false;
  private readonly hash = createHash('sha256');
  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.hash.update(chunk);
      this.length += chunk.length;
    });
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => {});
  }
  digest(): string {
    return this.hash.digest('hex');
  }
}

export async function connectTcp(port: number, host = LOOPBACK): Promise<Socket> {
  const socket = connect({ port, host });
  socket.setNoDelay(true);
  await once(socket, 'connect');
  return socket;
}

/** A connected client with a Recorder, already joined to `group` (join line with newline). */
export async function joinGroup(port: number, group: string, prefix = 'SOCKETFORWARDER-NEW:'): Promise<Recorder> {
  const socket = await connectTcp(port);
  socket.write(`${prefix}${group}\n`);
  return new Recorder(socket);
}

/** Polls `predicate` until true; fails with `what` after `timeoutMs`. */
export async function waitFor(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

/**
 * Resolves once every reader has received at least `bytes`. The slow-client tests pace their sender with it, keeping the
 * reading members within a window of the sender, so that only the stalled member can fall CLIENT_BUFFER_BYTES behind.
 * Unpaced, two members that both read can drift apart without bound on a busy machine: each socket drains at its own
 * kernel window per event-loop turn, the windows grow at different rates, and the source runs at the pace of the fastest
 * (DESIGN §3), so a reading member was kicked now and then under CI load.
 */
export async function readersReach(readers: Digest[], bytes: number, timeoutMs = 30_000): Promise<void> {
  await waitFor(() => {
    const gone = readers.find((r) => r.closed);
    if (gone) throw new Error(`a reader was closed at ${gone.length} bytes, waiting for ${bytes}`);
    return readers.every((r) => r.length >= bytes);
  }, `the readers to reach ${bytes} bytes`, timeoutMs);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The value of one series, e.g. metric(app, 'switchboard_bytes_total', { direction: 'in' }). */
export async function metric(app: App, name: string, labels: Record<string, string> = {}): Promise<number> {
  const json = await app.metrics.registry.getMetricsAsJSON();
  const found = json.find((m) => m.name === name);
  if (!found) throw new Error(`no metric ${name}`);
  const values = (found as unknown as { values: Array<{ value: number; labels: Record<string, string | number> }> }).values;
  const match = values.find((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want));
  return match?.value ?? 0;
}

/** Groups-mode membership is asynchronous (join line parsing): wait until the group has `count` members. */
export async function waitForMembers(app: App, group: string, count: number): Promise<void> {
  await waitFor(() => {
    const groups = (app.engine.status() as { groups: Array<{ id: string; members: number }> }).groups;
    return (groups.find((g) => g.id === group)?.members ?? 0) === count;
  }, `${count} members in group "${group}"`);
}

export { freePort } from './ports.js';
