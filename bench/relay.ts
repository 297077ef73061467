/**
 * npm run bench:relay — one visitor stream, bulk, through the relay and agent (two hops: visitor → relay → yamux → agent →
 * service) beside a direct connection, socat (one hop) and a two-hop chain of plain Node pipe() proxies (DESIGN §9).
 * The sender and the sink (the "service") are bench/workers processes; relay and agent are switchboard processes run as
 * shipped (dist/main.js, built first, with bench/lib.ts SHIPPED_ENV). BENCH_SECONDS (default 5), BENCH_WARMUP_SECONDS
 * (2), BENCH_REPEATS (3) shorten it for a smoke run. The pipe() proxies, the tunnel and the tunnel with 64 streams run side
 * by side and are measured in turn within each repeat, so their ratios are also given per repeat (paired).
 * Also: visitor connect to first byte at the service (p50/p99 over sequential visitors, the bench process being visitor and
 * service, so one monotonic clock), and the relay's heap per idle tunnelled visitor (retained: the relay runs under
 * bench/relays/gc-on-signal.mjs, which collects garbage before reporting). BENCH_RELAY_ONLY=visitors runs only these
 * two points and prints them without writing bench/RESULTS.md.
 * 64 concurrent bulk streams (two sender processes of 32 connections) with a request/response probe beside them
 * (bench/workers/requester.ts, one 16-byte request at a time, echoed by the sink process): aggregate against the one-stream
 * figure, and the probe's p99 round trip; the same load sent straight to the sink is the "generator alone" row.
 * The legacy row: one visitor stream through a muxado v1 session, the tcp-relay service being
 * test/interop/go/muxado-service (built offline by test/interop/go-build.ts, run with -forward to the sink); skipped with
 * the reason printed when Go or Debian's muxado sources are missing.
 */
import { execFileSync } from 'node:child_process';
import { connect, createServer, type Socket } from 'node:net';
import { buildGoPeer } from '../test/interop/go-build.js';
import {
  bytesBetween,
  CORES,
  freePort,
  HOST,
  machine,
  mbps,
  median,
  REPEATS,
  ROOT,
  run,
  runSwitchboard,
  SECONDS,
  stop,
  until,
  WARMUP_SECONDS,
  worker,
  writeResultsSection,
  type Child,
} from './lib.js';

const START_DELAY_MS = 500;
/** STREAM_WINDOW_BYTES for relay and agent when set in the environment of the bench. */
const windowEnv: Record<string, string> = process.env.STREAM_WINDOW_BYTES ? { STREAM_WINDOW_BYTES: process.env.STREAM_WINDOW_BYTES } : {};
const SENDER_MS = START_DELAY_MS + (WARMUP_SECONDS + SECONDS) * 1000 + 300;

const PIPE_PROXY = `
const net = require('node:net');
const [listen, target] = process.argv.slice(1).map(Number);
net.createServer({ allowHalfOpen: true }, (c) => {
  const u = net.connect({ host: '127.0.0.1', port: target, allowHalfOpen: true });
  c.on('error', () => u.destroy()); u.on('error', () => c.destroy());
  c.pipe(u); u.pipe(c);
}).listen(listen, '127.0.0.1', () => console.log(JSON.stringify({ listening: listen })));
`;

/** Two PIPE_PROXY processes in a row in front of `targetPort`, on the subject core; visitors connect to `front`. */
async function startPipeProxies(targetPort: number): Promise<{ front: number; proxies: Child[] }> {
  const middle = await freePort();
  const front = await freePort();
  const proxies = [
    run(process.execPath, ['-e', PIPE_PROXY, String(middle), String(targetPort)], { cpu: CORES?.subject }),
    run(process.execPath, ['-e', PIPE_PROXY, String(front), String(middle)], { cpu: CORES?.subject }),
  ];
  await until(() => proxies.every((p) => p.lines.length > 0), 'pipe proxies');
  return { front, proxies };
}

/** A sink on its own port; the sender pushes bulk into `port`, which leads (somehow) to the sink. Returns bytes/s. */
async function oneStream(sinkPort: number, port: number): Promise<number> {
  const sink = worker('receiver', { host: HOST, port: sinkPort, connections: 0, listen: true, durationMs: SENDER_MS + 2000 });
  await until(() => sink.lines.some((l) => 'connected' in l), 'sink to listen');
  const sender = worker('sender', { host: HOST, port, durationMs: SENDER_MS, startDelayMs: START_DELAY_MS, chunkBytes: 65536 });
  await sender.exited;
  await stop(sink);
  // The window starts at the first bytes the sink saw (process start-up times vary on a busy machine), after the warm-up.
  const first = sink.lines.find((l) => typeof l.t === 'number' && (l.bytes as number) > 0) as { t: number } | undefined;
  if (!first) return 0;
  const from = first.t + WARMUP_SECONDS * 1000;
  return bytesBetween(sink.lines, from, from + SECONDS * 1000) / SECONDS;
}

async function repeated(label: string, measure: () => Promise<number>): Promise<OneResult> {
  const runs: number[] = [];
  for (let i = 0; i < REPEATS; i++) runs.push(await measure());
  return summariseOne(label, runs);
}

interface OneResult {
  label: string;
  runs: number[];
  median: number;
}

function summariseOne(label: string, runs: number[]): OneResult {
  const result = { label, runs, median: median(runs) };
  console.log(`${label}: ${result.runs.map((r) => mbps(r, 1).toFixed(0)).join(', ')} Mbit/s (median ${mbps(result.median, 1).toFixed(0)})`);
  return result;
}

/** Bulk streams in parallel, and bench/workers/requester.ts beside them. */
const MANY_STREAMS = 64;
const STREAMS_PER_SENDER = 32;
const REQUEST_INTERVAL_MS = 1;

interface ManyResult {
  rate: number;
  p99: number;
  p50: number;
  samples: number;
}

/** MANY_STREAMS bulk senders and one request/response probe into `port`, which leads to the sink. */
async function manyStreams(sinkPort: number, port: number): Promise<ManyResult> {
  // Three generator processes start at once here, slower than one: the sink outlives them (it is stopped when they end).
  const sink = worker('receiver', { host: HOST, port: sinkPort, connections: 0, listen: true, echoRequests: true, durationMs: SENDER_MS + 20_000 });
  await until(() => sink.lines.some((l) => 'connected' in l), 'sink to listen');
  const senders = Array.from({ length: MANY_STREAMS / STREAMS_PER_SENDER }, () =>
    worker('sender', { host: HOST, port, durationMs: SENDER_MS, startDelayMs: START_DELAY_MS, chunkBytes: 65536, connections: STREAMS_PER_SENDER }),
  );
  const requester = worker('requester', {
    host: HOST,
    port,
    durationMs: SENDER_MS - START_DELAY_MS,
    warmupMs: WARMUP_SECONDS * 1000,
    intervalMs: REQUEST_INTERVAL_MS,
    startDelayMs: START_DELAY_MS,
  });
  await Promise.all([...senders.map((s) => s.exited), requester.exited]);
  await stop(sink);
  const first = sink.lines.find((l) => typeof l.t === 'number' && (l.bytes as number) > 0) as { t: number } | undefined;
  const latencies = requester.lines.find((l) => 'latencies' in l)?.latencies as { count: number; p50: number; p99: number } | undefined;
  const from = (first?.t ?? 0) + WARMUP_SECONDS * 1000;
  return {
    rate: first ? bytesBetween(sink.lines, from, from + SECONDS * 1000) / SECONDS : 0,
    p50: latencies?.p50 ?? NaN,
    p99: latencies?.p99 ?? NaN,
    samples: latencies?.count ?? 0,
  };
}

async function repeatedMany(label: string, measure: () => Promise<ManyResult>): Promise<ManySummary> {
  const runs: ManyResult[] = [];
  for (let i = 0; i < REPEATS; i++) runs.push(await measure());
  return summariseMany(label, runs);
}

interface ManySummary {
  label: string;
  runs: ManyResult[];
  median: number;
  p99: number;
}

function summariseMany(label: string, runs: ManyResult[]): ManySummary {
  const result = { label, runs, median: median(runs.map((r) => r.rate)), p99: median(runs.map((r) => r.p99)) };
  console.log(
    `${label}: ${runs.map((r) => mbps(r.rate, 1).toFixed(0)).join(', ')} Mbit/s (median ${mbps(result.median, 1).toFixed(0)}); ` +
      `request/response p99 ${runs.map((r) => r.p99.toFixed(2)).join(', ')} ms (median ${result.p99.toFixed(2)})`,
  );
  return result;
}

/** "a, b, c (median m)" of per-repeat ratios. */
function pairedText(ratios: number[]): string {
  return `${ratios.map((r) => r.toFixed(2)).join(', ')} (median ${median(ratios).toFixed(2)})`;
}

function logLine(child: Child, pattern: RegExp): Record<string, unknown> | undefined {
  const line = child.stderr().split('\n').find((l) => pattern.test(l));
  return line ? (JSON.parse(line) as Record<string, unknown>) : undefined;
}

/** Sequential visitors: from connect() to the service seeing their first byte, in ms, in the order measured. */
async function connectToFirstByte(port: number, service: { firstByte: () => Promise<bigint> }, count: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const seen = service.firstByte();
    const started = process.hrtime.bigint();
    const socket = connect({ port, host: HOST });
    socket.setNoDelay(true);
    socket.on('error', () => {});
    socket.once('connect', () => socket.write('x'));
    samples.push(Number((await seen) - started) / 1e6);
    socket.destroy();
  }
  return samples;
}

/** p50 and p99 of first-byte samples. */
function firstBytePercentiles(samples: number[]): [number, number] {
  const sorted = [...samples].sort((a, b) => a - b);
  return [sorted[Math.floor(sorted.length * 0.5)]!, sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))]!];
}

/** A service in this process that reports when each connection's first byte arrives. */
async function firstByteService(): Promise<{ port: number; firstByte: () => Promise<bigint>; close: () => void }> {
  let waiter: ((t: bigint) => void) | undefined;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('data', () => waiter?.(process.hrtime.bigint()));
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  return {
    port: (server.address() as { port: number }).port,
    firstByte: () => new Promise<bigint>((resolve) => (waiter = resolve)),
    close: () => {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}

/** A switchboard process whose retained heap can be read (bench/relays/gc-on-signal.mjs). */
function switchboardWithHeapProbe(env: Record<string, string>): Child {
  return runSwitchboard(env, ['--expose-gc', 'bench/relays/gc-on-signal.mjs', `${ROOT}dist/main.js`]);
}

/** The heap a probed switchboard retains: garbage collected first. */
async function retainedHeap(child: Child): Promise<number> {
  const seen = child.lines.length;
  child.child.kill('SIGWINCH');
  await until(() => child.lines.slice(seen).some((l) => 'heapUsed' in l), 'the heap probe');
  return child.lines.slice(seen).find((l) => 'heapUsed' in l)!.heapUsed as number;
}

/** Visitor connect → first byte at the service, direct and through relay + agent, and the relay's heap per idle visitor. */
async function visitorPoints(): Promise<string[]> {
  const latency: string[] = [];
  const service = await firstByteService();
  const [directP50, directP99] = firstBytePercentiles(await connectToFirstByte(service.port, service, 300));
  latency.push(`| direct | ${directP50.toFixed(3)} | ${directP99.toFixed(3)} |`);
  // The baseline with the tunnel's hop count: two plain pipe() proxies, each dialling the next per visitor.
  const { front, proxies } = await startPipeProxies(service.port);
  const relayPort = await freePort();
  const relay = switchboardWithHeapProbe({ MODE: 'relay', RELAY_PORT: String(relayPort), PUBLIC_PORTS: '0', AUTH_SECRET: 'bench-secret', MAX_CLIENTS: '5000' });
  await until(() => logLine(relay, /"msg":"ready"/) !== undefined || relay.child.exitCode !== null, 'relay ready');
  const agent = runSwitchboard({ RELAY: `${HOST}:${relayPort}`, SERVICE: `${HOST}:${service.port}`, AUTH_SECRET: 'bench-secret' });
  await until(() => logLine(agent, /"publicPort"/) !== undefined || agent.child.exitCode !== null, 'agent bound');
  const publicPort = logLine(agent, /"publicPort"/)!.publicPort as number;
  await connectToFirstByte(front, service, 50); // warm-up
  await connectToFirstByte(publicPort, service, 50);
  // Interleaved in three rounds of 100, so a change of the machine's pace between phases hits both alike.
  const viaProxies: number[] = [];
  const viaTunnel: number[] = [];
  for (let round = 0; round < 3; round++) {
    viaProxies.push(...(await connectToFirstByte(front, service, 100)));
    viaTunnel.push(...(await connectToFirstByte(publicPort, service, 100)));
  }
  for (const p of proxies) await stop(p);
  const [proxiesP50, proxiesP99] = firstBytePercentiles(viaProxies);
  const [p50, p99] = firstBytePercentiles(viaTunnel);
  latency.push(`| two Node pipe() proxies (the tunnel's hop count) | ${proxiesP50.toFixed(3)} | ${proxiesP99.toFixed(3)} |`);
  latency.push(`| through relay + agent | ${p50.toFixed(3)} | ${p99.toFixed(3)} |`);
  console.log(`connect to first byte: direct p50 ${directP50.toFixed(3)} ms, two pipe() proxies p50 ${proxiesP50.toFixed(3)} ms, tunnel p50 ${p50.toFixed(3)} ms p99 ${p99.toFixed(3)} ms`);

  const IDLE = 1000;
  const before = await retainedHeap(relay);
  const idle: Socket[] = [];
  for (let i = 0; i < IDLE; i++) {
    const socket = connect({ port: publicPort, host: HOST });
    socket.on('error', () => {});
    idle.push(socket);
    if (i % 100 === 99) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const afterHeap = await retainedHeap(relay);
  const perVisitor = (afterHeap - before) / IDLE;
  latency.push('', `Relay heap per idle tunnelled visitor: ${(perVisitor / 1024).toFixed(1)} KiB (heap used before/after ${IDLE} idle visitors, each after two forced collections; target ≤ 8 KiB).`);
  console.log(`idle visitor heap: ${(perVisitor / 1024).toFixed(1)} KiB`);
  for (const s of idle) s.destroy();
  service.close();
  await stop(agent);
  await stop(relay);
  return latency;
}

async function main(): Promise<void> {
  // switchboard runs as shipped: the compiled dist/ (and bench/lib.ts SHIPPED_ENV).
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' });
  if (process.env.BENCH_RELAY_ONLY === 'visitors') {
    console.log((await visitorPoints()).join('\n'));
    process.exit(0);
  }
  const results = [];
  const many: Array<Awaited<ReturnType<typeof repeatedMany>>> = [];
  const commands: string[] = [];

  // direct: sender → sink
  {
    const sinkPort = await freePort();
    results.push(await repeated('direct (generator alone)', () => oneStream(sinkPort, sinkPort)));
    many.push(await repeatedMany(`direct, ${MANY_STREAMS} streams (generator alone)`, () => manyStreams(sinkPort, sinkPort)));
  }

  // socat, one hop
  let hasSocat = true;
  try {
    execFileSync('socat', ['-V'], { stdio: 'ignore' });
  } catch {
    hasSocat = false;
  }
  if (hasSocat) {
    const sinkPort = await freePort();
    const port = await freePort();
    const socat = run('socat', [`TCP-LISTEN:${port},bind=${HOST},reuseaddr,fork`, `TCP:${HOST}:${sinkPort}`], { cpu: CORES?.subject });
    commands.push(`socat TCP-LISTEN:${port},bind=${HOST},reuseaddr,fork TCP:${HOST}:${sinkPort}`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    results.push(await repeated('socat (one hop)', () => oneStream(sinkPort, port)));
    await stop(socat);
  }

  // Two plain Node pipe() proxies in a row (the tunnel's two hops without the multiplexing) and the tunnel, all started
  // first and then measured in turn within each repeat: this VM changes pace between minutes by more than the targets'
  // margins, so each repeat gives paired ratios (tunnel / pipe proxies, 64 streams / one stream) measured side by side.
  let paired: { tunnelVsPipes: number[]; manyVsOne: number[] };
  {
    const pipeSinkPort = await freePort();
    const { front, proxies } = await startPipeProxies(pipeSinkPort);
    commands.push('two `node -e` pipe() proxies in a row (source in bench/relay.ts)');
    const sinkPort = await freePort();
    const relayPort = await freePort();
    const relay = runSwitchboard({ MODE: 'relay', RELAY_PORT: String(relayPort), PUBLIC_PORTS: '0', AUTH_SECRET: 'bench-secret', ...windowEnv });
    await until(() => logLine(relay, /"msg":"ready"/) !== undefined || relay.child.exitCode !== null, 'relay ready');
    const agent = runSwitchboard({ RELAY: `${HOST}:${relayPort}`, SERVICE: `${HOST}:${sinkPort}`, AUTH_SECRET: 'bench-secret', ...windowEnv });
    await until(() => logLine(agent, /"publicPort"/) !== undefined || agent.child.exitCode !== null, 'agent bound');
    const bound = logLine(agent, /"publicPort"/);
    if (!bound) throw new Error(`agent did not bind: ${agent.stderr()}`);
    const publicPort = bound.publicPort as number;
    commands.push(
      `MODE=relay RELAY_PORT=${relayPort} PUBLIC_PORTS=0 AUTH_SECRET=… node dist/main.js`,
      `RELAY=${HOST}:${relayPort} SERVICE=${HOST}:<sink> AUTH_SECRET=… node dist/main.js`,
    );
    const pipeRuns: number[] = [];
    const tunnelRuns: number[] = [];
    const manyRuns: ManyResult[] = [];
    for (let i = 0; i < REPEATS; i++) {
      pipeRuns.push(await oneStream(pipeSinkPort, front));
      tunnelRuns.push(await oneStream(sinkPort, publicPort));
      manyRuns.push(await manyStreams(sinkPort, publicPort));
      console.log(`repeat ${i + 1}: pipe() proxies, tunnel, tunnel × ${MANY_STREAMS} measured`);
    }
    results.push(summariseOne('two Node pipe() proxies', pipeRuns));
    results.push(summariseOne('switchboard relay + agent (two hops, yamux)', tunnelRuns));
    many.push(summariseMany(`switchboard relay + agent, ${MANY_STREAMS} streams`, manyRuns));
    paired = {
      tunnelVsPipes: tunnelRuns.map((t, i) => t / pipeRuns[i]!),
      manyVsOne: manyRuns.map((m, i) => m.rate / tunnelRuns[i]!),
    };
    await stop(agent);
    await stop(relay);
    for (const p of proxies) await stop(p);
  }

  // legacy: a tcp-relay service (muxado v1, Go) instead of the agent
  let legacy: { label: string; runs: number[]; median: number } | undefined;
  let legacySkipped: string | undefined;
  {
    const build = await buildGoPeer('muxado-service', ['github.com/inconshreveable/muxado/proto', 'github.com/inconshreveable/muxado/proto/ext']);
    if (!build.binary) {
      legacySkipped = build.skipReason;
      console.log(`legacy row skipped: ${legacySkipped}`);
    } else {
      const sinkPort = await freePort();
      const relayPort = await freePort();
      const relay = runSwitchboard({ MODE: 'relay', RELAY_PORT: String(relayPort), PUBLIC_PORTS: '0', AUTH: 'none', RELAY_LEGACY: 'auto' });
      await until(() => logLine(relay, /"msg":"ready"/) !== undefined || relay.child.exitCode !== null, 'relay ready');
      const service = run(build.binary, ['-forward', `${HOST}:${sinkPort}`, `${HOST}:${relayPort}`], { cpu: CORES?.subject });
      await until(() => logLine(relay, /legacy tcp-relay service bound/) !== undefined || service.child.exitCode !== null, 'legacy service bound');
      const bound = logLine(relay, /legacy tcp-relay service bound/);
      if (!bound) throw new Error(`the muxado v1 service did not bind: ${service.stderr()} ${relay.stderr()}`);
      commands.push(
        `MODE=relay RELAY_PORT=${relayPort} PUBLIC_PORTS=0 AUTH=none node dist/main.js`,
        `muxado-service -forward ${HOST}:<sink> ${HOST}:${relayPort}   (test/interop/go/muxado-service, built by test/interop/go-build.ts)`,
      );
      legacy = await repeated('switchboard relay + tcp-relay service (two hops, muxado v1, Go)', () => oneStream(sinkPort, bound.publicPort as number));
      await stop(service);
      await stop(relay);
    }
  }

  const latency = await visitorPoints();

  const twoHop = results.find((r) => r.label.startsWith('two Node'))!.median;
  const tunnel = results.find((r) => r.label.includes('yamux'))!.median;
  const tunnelMany = many.find((r) => r.label.startsWith('switchboard'))!;
  const body = [
    `Run ${new Date().toISOString().slice(0, 10)} on ${machine()}. ${SECONDS} s per point after ${WARMUP_SECONDS} s warm-up, median of ${REPEATS}; the pipe() proxies, the tunnel and the tunnel with ${MANY_STREAMS} streams are measured in turn within each repeat (paired ratios below).`,
    '',
    '| path (one bulk stream, 64 KiB writes) | runs (Mbit/s) | median (Mbit/s) |',
    '|---|---|---|',
    ...results.map((r) => `| ${r.label} | ${r.runs.map((x) => mbps(x, 1).toFixed(0)).join(', ')} | ${mbps(r.median, 1).toFixed(0)} |`),
    ...(legacy ? [`| ${legacy.label} | ${legacy.runs.map((x) => mbps(x, 1).toFixed(0)).join(', ')} | ${mbps(legacy.median, 1).toFixed(0)} |`] : []),
    '',
    `Tunnel / two pipe() proxies: ${(tunnel / twoHop).toFixed(2)} (target ≥ 0.8); paired per repeat ${pairedText(paired.tunnelVsPipes)}.`,
    legacy
      ? `Legacy (muxado v1) / yamux tunnel: ${(legacy.median / tunnel).toFixed(2)}.`
      : `Legacy (muxado v1) row skipped: ${legacySkipped}.`,
    '',
    `| ${MANY_STREAMS} bulk streams + one request/response stream | aggregate runs (Mbit/s) | median (Mbit/s) | request/response p99 runs (ms) | median p99 (ms) |`,
    '|---|---|---|---|---|',
    ...many.map(
      (r) =>
        `| ${r.label} | ${r.runs.map((x) => mbps(x.rate, 1).toFixed(0)).join(', ')} | ${mbps(r.median, 1).toFixed(0)} | ${r.runs.map((x) => x.p99.toFixed(2)).join(', ')} | ${r.p99.toFixed(2)} |`,
    ),
    '',
    `Tunnel, ${MANY_STREAMS} streams aggregate / one stream: ${(tunnelMany.median / tunnel).toFixed(2)} (target ≥ 0.8; paired per repeat ${pairedText(paired.manyVsOne)}); request/response p99 ${tunnelMany.p99.toFixed(2)} ms (target ≤ 5 ms). ` +
      `The probe sends one 16-byte request at a time, ${REQUEST_INTERVAL_MS} ms after the previous answer, and the sink process echoes it (${tunnelMany.runs.map((r) => r.samples).join(', ')} samples).`,
    '',
    '| visitor connect → first byte at the service (300 sequential visitors each) | p50 (ms) | p99 (ms) |',
    '|---|---|---|',
    ...latency,
    '',
    'Commands:',
    '',
    ...commands.map((c) => `    ${c}`),
    '',
    `Sender: \`bench/workers/sender.ts\` (bulk; ${MANY_STREAMS / STREAMS_PER_SENDER} processes of ${STREAMS_PER_SENDER} connections for the ${MANY_STREAMS}-stream point); probe: \`bench/workers/requester.ts\`; sink: \`bench/workers/receiver.ts --listen\`; each in its own process.`,
  ].join('\n');
  writeResultsSection('relay', body);
  console.log(body);
  process.exit(0);
}

await main();
