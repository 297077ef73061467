/**
 * Benchmark plumbing shared by bench/<mode>.ts (DESIGN §9): processes pinned with taskset where available, every child
 * killed by PID on exit, free loopback ports, medians, and the RESULTS.md section writer.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { cpus } from 'node:os';
import { freePort as freePortOn } from '../test/ports.js';

export const ROOT = new URL('..', import.meta.url).pathname;
export const HOST = '127.0.0.1';
export const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
export const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 2);
export const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);

/**
 * The environment switchboard ships with (the image's ENV and `npm start`): GLIBC_TUNABLES and NODE_OPTIONS from
 * package.json config (README "Memory and glibc"). Benchmarks measure switchboard as users run it; a caller's own value
 * (even empty) wins, as with `npm start`.
 */
const SHIPPED_CONFIG = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { config: { glibc_tunables: string; node_options: string; node_flags: string } }
).config;
export const SHIPPED_ENV: Record<string, string> = {
  GLIBC_TUNABLES: process.env.GLIBC_TUNABLES ?? SHIPPED_CONFIG.glibc_tunables,
  NODE_OPTIONS: process.env.NODE_OPTIONS ?? SHIPPED_CONFIG.node_options,
};
/** The node flags `npm start` and the image put before dist/main.js (V8 refuses them in NODE_OPTIONS); BENCH_NODE_FLAGS replaces them. */
export const SHIPPED_NODE_FLAGS: string[] = (process.env.BENCH_NODE_FLAGS ?? SHIPPED_CONFIG.node_flags).split(' ').filter((f) => f !== '');

const children = new Set<ChildProcess>();
const killAll = () => {
  for (const child of children) if (child.pid) try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
};
process.on('exit', killAll);
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

const hasTaskset = (() => {
  try {
    execFileSync('taskset', ['-c', '0', 'true']);
    return cpus().length >= 2;
  } catch {
    return false;
  }
})();

/** Core 0 for the system under test, core 1 for load generators (when there are two cores and taskset exists). */
export const CORES = hasTaskset ? { subject: '0', load: '1' } : undefined;

export interface Child {
  child: ChildProcess;
  /** JSON lines printed on stdout so far. */
  lines: Array<Record<string, unknown>>;
  stderr: () => string;
  exited: Promise<number | null>;
}

export function run(command: string, args: string[], options: { cpu?: string; env?: Record<string, string> } = {}): Child {
  const [cmd, argv] = options.cpu && CORES ? ['taskset', ['-c', options.cpu, command, ...args]] : [command, args];
  const child = spawn(cmd, argv as string[], { cwd: ROOT, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const lines: Array<Record<string, unknown>> = [];
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    let newline: number;
    while ((newline = stdout.indexOf('\n')) >= 0) {
      const line = stdout.slice(0, newline);
      stdout = stdout.slice(newline + 1);
      if (line.startsWith('{')) lines.push(JSON.parse(line) as Record<string, unknown>);
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => (children.delete(child), resolve(code))));
  return { child, lines, stderr: () => stderr, exited };
}

/**
 * The load generators' own allocator setting. The bulk senders and receivers are Node processes reading and writing
 * 64 KiB buffers, like switchboard (README "Memory and glibc"). With glibc's defaults, about one 1→1 stream in four fell
 * to 1.3-2.7 Gbit/s while switchboard sat idle three quarters of the time, and in a slow run the receiver spent twice
 * its usual CPU per read; with switchboard's setting, ten runs of ten stayed at 7.4-8.9 Gbit/s (by hand, 2026-11-29).
 * The package's value, not SHIPPED_ENV's, so that switchboard variants run with GLIBC_TUNABLES= leave the generators
 * as they are.
 */
const GENERATOR_ENV = { GLIBC_TUNABLES: SHIPPED_CONFIG.glibc_tunables };

/** A TypeScript worker under bench/workers, in its own process, on the load core. */
export function worker(name: string, options: object): Child {
  return run(process.execPath, ['--import', 'tsx', `bench/workers/${name}.ts`, JSON.stringify(options)], { cpu: CORES?.load, env: GENERATOR_ENV });
}

export function stop(child: Child): Promise<number | null> {
  if (child.child.exitCode === null) child.child.kill('SIGTERM');
  return child.exited;
}

export const freePort = (): Promise<number> => freePortOn(HOST);

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function until(predicate: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`bench: timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** The port a child prints as {"port": n} once it listens (devices, reference relays, servers); throws if it exits first. */
export async function listeningPort(child: Child, what: string): Promise<number> {
  const portLine = () => child.lines.find((l) => 'port' in l);
  await until(() => portLine() !== undefined || child.child.exitCode !== null, what);
  const line = portLine();
  if (line === undefined) throw new Error(`${what} exited before listening: ${child.stderr()}`);
  return line.port as number;
}

/**
 * switchboard from dist/ (build first) as shipped (SHIPPED_NODE_FLAGS, SHIPPED_ENV), on loopback, pinned to the subject
 * core. `nodeArgs` follow the shipped flags and end with the entry point (e.g. a wrapper script that then imports
 * dist/main.js).
 */
export function runSwitchboard(env: Record<string, string>, nodeArgs: string[] = ['dist/main.js']): Child {
  return run(process.execPath, [...SHIPPED_NODE_FLAGS, ...nodeArgs], {
    cpu: CORES?.subject,
    env: { HOST, HTTP_HOST: HOST, HTTP_PORT: '0', LOG_LEVEL: 'info', ...SHIPPED_ENV, ...env },
  });
}

/** runSwitchboard, resolved once its "ready" line shows the ports. */
export async function startSwitchboard(env: Record<string, string>): Promise<Child & { ports: Record<string, number> }> {
  const started = runSwitchboard(env);
  // switchboard logs on stderr.
  const readyLine = () => started.stderr().split('\n').find((l) => l.includes('"msg":"ready"'));
  await until(() => readyLine() !== undefined || started.child.exitCode !== null, 'switchboard to be ready');
  if (!readyLine()) throw new Error(`switchboard did not start: ${started.stderr()}`);
  const listeners = (JSON.parse(readyLine()!) as { listeners: Array<{ name: string; port: number }> }).listeners;
  return { ...started, ports: Object.fromEntries(listeners.map((l) => [l.name, l.port])) };
}

export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

/** Bytes a receiver process counted between two instants, interpolated from its 100 ms reports. */
export function bytesBetween(lines: Array<Record<string, unknown>>, from: number, to: number): number {
  const points = lines.filter((l) => typeof l.t === 'number') as Array<{ t: number; bytes: number }>;
  const at = (t: number) => {
    let before = { t: 0, bytes: 0 };
    for (const p of points) {
      if (p.t >= t) {
        const span = p.t - before.t || 1;
        return before.bytes + ((p.bytes - before.bytes) * (t - before.t)) / span;
      }
      before = p;
    }
    return before.bytes;
  };
  return at(to) - at(from);
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

export function machine(): string {
  const model = cpus()[0]?.model ?? 'unknown CPU';
  return `${cpus().length} cores (${model}), ${Math.round(Number(execFileSync('awk', ['/MemTotal/ {print $2}', '/proc/meminfo']).toString()) / 1048576)} GiB, Node ${process.version}${CORES ? ', switchboard/socat pinned to core 0 and load generators to core 1 with taskset' : ', no taskset pinning'}, bulk generators (bench/workers) with GLIBC_TUNABLES=${GENERATOR_ENV.GLIBC_TUNABLES}, switchboard with its shipped GLIBC_TUNABLES=${SHIPPED_ENV.GLIBC_TUNABLES || '(empty)'} NODE_OPTIONS=${SHIPPED_ENV.NODE_OPTIONS || '(empty)'} and node flags ${SHIPPED_NODE_FLAGS.join(' ') || '(none)'}`;
}

/** Replaces the `## <title>` section of bench/RESULTS.md (or appends it). */
export function writeResultsSection(title: string, body: string): void {
  const path = `${ROOT}bench/RESULTS.md`;
  const header = '# Benchmark results\n\nEach section is written by `npm run bench:<mode>` (DESIGN §9: warm-up, each point measured for at least 5 s, median of 3 runs, generators in their own processes).\n';
  let text = existsSync(path) ? readFileSync(path, 'utf8') : header;
  const marker = `\n## ${title}\n`;
  const start = text.indexOf(marker);
  const section = `${marker}\n${body.trim()}\n`;
  if (start < 0) {
    text = `${text.trimEnd()}\n${section}`;
  } else {
    const next = text.indexOf('\n## ', start + marker.length);
    text = text.slice(0, start) + section + (next < 0 ? '' : text.slice(next));
  }
  writeFileSync(path, text);
}

export const mbps = (bytes: number, seconds: number) => (bytes * 8) / seconds / 1e6;

/** A sender waits this long after connecting (and joining) before it sends, so receivers and relays are settled. */
export const START_DELAY_MS = 800;
/** How long a sender runs: its start delay, the warm-up, the measured window, and a little slack. */
export const SENDER_MS = START_DELAY_MS + (WARMUP_SECONDS + SECONDS) * 1000 + 500;

export async function receiversReady(receivers: Child[], timeoutMs = 60_000): Promise<void> {
  await until(() => receivers.every((r) => r.lines.some((l) => 'connected' in l)), 'receivers to connect', timeoutMs);
}

/**
 * Bytes/s all receivers saw together in the measured window (after the warm-up) of a sender started at `startedAt`.
 * `untilExit`: wait for the receivers to end by themselves (latency receivers print their percentiles then) instead of
 * stopping them.
 */
export async function measureThroughput(sender: Child, receivers: Child[], startedAt: number, untilExit = false): Promise<number> {
  await sender.exited;
  await Promise.all(receivers.map((r) => (untilExit ? r.exited : stop(r))));
  // The sender says when it began sending; process start-up time would otherwise shift the window.
  const sendingAt = sender.lines.find((l) => typeof l.sendingAt === 'number')?.sendingAt as number | undefined;
  const from = (sendingAt ?? startedAt + START_DELAY_MS) + WARMUP_SECONDS * 1000;
  return receivers.reduce((sum, r) => sum + bytesBetween(r.lines, from, from + SECONDS * 1000), 0) / SECONDS;
}

/** Baseline: the load generators alone, sender → listening receiver, nothing in between. */
export async function generatorAlone(): Promise<number> {
  const port = await freePort();
  const receiver = worker('receiver', { host: HOST, port, listen: true, connections: 0, durationMs: SENDER_MS + 3000 });
  await receiversReady([receiver]);
  const startedAt = Date.now();
  const sender = worker('sender', { host: HOST, port, durationMs: SENDER_MS, startDelayMs: START_DELAY_MS, chunkBytes: 65536 });
  return measureThroughput(sender, [receiver], startedAt);
}

/** Baseline: `socat -b65536 TCP-LISTEN:a TCP-LISTEN:b` carrying one sender's bulk stream to one receiver. */
export async function socatOneToOne(): Promise<number> {
  const [a, b] = [await freePort(), await freePort()];
  const socat = run('socat', ['-b65536', `TCP-LISTEN:${a},bind=${HOST},reuseaddr`, `TCP-LISTEN:${b},bind=${HOST},reuseaddr`], { cpu: CORES?.subject });
  try {
    await sleep(300);
    const startedAt = Date.now();
    // socat accepts on its first address before it listens on the second: the sender connects first.
    const sender = worker('sender', { host: HOST, port: a, durationMs: SENDER_MS, startDelayMs: START_DELAY_MS, chunkBytes: 65536 });
    await sleep(300);
    const receiver = worker('receiver', { host: HOST, port: b, connections: 1, durationMs: SENDER_MS + 3000 });
    return await measureThroughput(sender, [receiver], startedAt);
  } finally {
    await stop(socat);
  }
}

/** The q-quantile (0..1) of latencies sorted ascending; 0 when there are none. */
export function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

/** What a closed-loop request generator reports (bench:mux's pollers, bench:http's clients). */
export interface RequestLoad {
  rate: number;
  p50: number;
  p99: number;
  /** Answers that belonged to another request. */
  mismatches: number;
}

/** Prints a generator's result line from its answered-request latencies (sorted here) and exits. */
export function reportRequestLoad(latencies: number[], seconds: number, mismatches: number): void {
  latencies.sort((a, b) => a - b);
  const result: RequestLoad = { rate: latencies.length / seconds, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), mismatches };
  console.log(JSON.stringify({ requests: latencies.length, ...result }));
}

/** The median of REPEATS runs (rate, p50 and p99 each a median of its own); mismatches summed. */
export function summariseRequestLoads(runs: RequestLoad[]): RequestLoad {
  return {
    rate: median(runs.map((r) => r.rate)),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    mismatches: runs.reduce((sum, r) => sum + r.mismatches, 0),
  };
}

/**
 * A bench script run again in its own process as one of its roles (`device`, `poller`, `server`, `client`), on the load
 * core unless `cpu` names another.
 */
export function benchRole(script: string, name: string, options: object = {}, cpu = CORES?.load): Child {
  return run(process.execPath, ['--import', 'tsx', `bench/${script}`, name, JSON.stringify(options)], { cpu });
}

/** Runs a request generator role to its end and returns its result line. */
export async function runRequestLoad(generator: Child, what: string): Promise<RequestLoad> {
  await generator.exited;
  const result = generator.lines.find((l) => 'rate' in l) as RequestLoad | undefined;
  if (!result) throw new Error(`${what} failed: ${generator.stderr()}`);
  return result;
}

export interface LatencyStats {
  p50: number;
  p99: number;
  max: number;
  count: number;
}

/**
 * `rate` messages/s (default 1,000) of 100 B from one member to `members` others (two receiver processes) through a
 * group relay at `port`; each message carries its send time. Returns the worse receiver process's percentiles (ms).
 */
export async function groupLatency(port: number, joinLine: string, members: number, rate = 1000): Promise<LatencyStats> {
  const receivers = [0, 1].map(() => worker('receiver', { host: HOST, port, joinLine, connections: members / 2, latency: true, durationMs: SENDER_MS + 1500 }));
  await receiversReady(receivers);
  await sleep(200);
  const sender = worker('sender', { host: HOST, port, joinLine, durationMs: SENDER_MS, startDelayMs: START_DELAY_MS, rate, size: 100 });
  await sender.exited;
  await Promise.all(receivers.map((r) => r.exited));
  const stats = receivers.map((r) => r.lines.find((l) => 'latencies' in l)!.latencies as LatencyStats);
  // Each receiver process saw the same message stream: report the worse of the two.
  return stats.reduce((worst, s) => (s.p99 > worst.p99 ? s : worst));
}

/**
 * `count` connections to a subject, opened one after another, NODELAY. `role` names the generator in an error, which exits
 * it with status 1; with `role` undefined, errors after connecting are ignored (a generator the parent kills).
 */
export async function connectClients(port: number, count: number, role?: string): Promise<Socket[]> {
  const sockets: Socket[] = [];
  for (let i = 0; i < count; i++) {
    const socket = connect({ host: HOST, port });
    socket.setNoDelay(true);
    socket.on('error', (error) => {
      if (role === undefined) return;
      console.error(`${role}: ${error.message}`);
      process.exit(1);
    });
    await new Promise((resolve) => socket.once('connect', resolve));
    sockets.push(socket);
  }
  return sockets;
}

/** A Markdown table for RESULTS.md: a header row, the separator, then one row per entry. */
export function markdownTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), `|${header.map(() => '---').join('|')}|`, ...rows.map(line)].join('\n');
}
