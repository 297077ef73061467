/**
 * `npm run bench:modbus` (DESIGN §9, issue 6): switchboard in mux mode in front of the project's Modbus device simulator
 * (`node dist/sim/main.js`, 10 ms service time), COALESCE=false and COALESCE=true in the same run. The device and the
 * load generators (bench/workers/modbus-client.ts) run in their own processes on the load core; switchboard runs from
 * dist/ on its own core. Each point: warm-up, then BENCH_SECONDS (default 5) of measurement, BENCH_REPEATS (default 3)
 * times, median reported. Writes the `## modbus` section of bench/RESULTS.md (not with BENCH_WRITE_RESULTS=0).
 *
 * Points (issue 6's targets):
 *   (a) 10 clients reading the same range in a loop, MAX_INFLIGHT=1: throughput vs strict serialisation (COALESCE=false)
 *       ≥ 5×, p50 ≤ 25 ms; the device's request count shows how many reads each upstream request answered.
 *   (b) one client flooding (CLIENT_QUEUE reads outstanding, all different) and one polling 10×/s another range,
 *       MAX_INFLIGHT=1: the poller's p99 ≤ 2 × service time + REQUEST_GAP_MS + 5 ms, for REQUEST_GAP_MS 0 and 20.
 *   (c) soak (SOAK_SECONDS, default 120, per COALESCE setting): 10 clients reading overlapping ranges from a device that
 *       answers some requests late (after UPSTREAM_TIMEOUT_MS) and sends stray frames; answers with a wrong transaction id
 *       or payload must be zero.
 * "generator alone": the same 10 looping clients straight at a zero-latency simulator, so the generator is not the limit.
 *
 * Short run: BENCH_SECONDS=2 BENCH_WARMUP_SECONDS=1 BENCH_REPEATS=1 SOAK_SECONDS=10 BENCH_WRITE_RESULTS=0.
 */
import { execFileSync } from 'node:child_process';
import type { ModbusClientOptions, ModbusClientResult, Read } from './workers/modbus-client.js';
import {
  CORES,
  HOST,
  machine,
  median,
  REPEATS,
  ROOT,
  run,
  SECONDS,
  startSwitchboard,
  stop,
  until,
  WARMUP_SECONDS,
  worker,
  writeResultsSection,
  type Child,
} from './lib.js';

const SERVICE_MS = 10;
const SOAK_SECONDS = Number(process.env.SOAK_SECONDS ?? 120);
const WRITE_RESULTS = process.env.BENCH_WRITE_RESULTS !== '0';
const CLIENT_QUEUE = 16;
/** Generators connect, then wait this long before the first read, so every process is connected. */
const START_DELAY_MS = 500;
/** A read unanswered this long is lost (switchboard answers everything within REQUEST_DEADLINE_MS, 2.8 s by default). */
const CLIENT_TIMEOUT_MS = 10_000;
/** Soak faults: every Nth request answered SOAK_LATE_MS late (after UPSTREAM_TIMEOUT_MS), every Mth reply after a stray. */
const SOAK_LATE_EVERY = 37;
const SOAK_LATE_MS = 600;
const SOAK_STRAY_EVERY = 23;
const SOAK_UPSTREAM_TIMEOUT_MS = 300;

const COALESCE = ['false', 'true'] as const;

// ---------------------------------------------------------------------------------------------------------------------
// Processes.

interface Device extends Child {
  port: number;
}

/** The simulator from dist/ (the program compose runs), in its own process on the load core. */
async function startDevice(flags: string[]): Promise<Device> {
  const device = run(process.execPath, ['dist/sim/main.js', '--host', HOST, '--port', '0', ...flags], { cpu: CORES?.load });
  const listening = () => device.stderr().split('\n').find((l) => l.includes('"msg":"sim listening"'));
  await until(() => listening() !== undefined || device.child.exitCode !== null, 'the device simulator');
  if (!listening()) throw new Error(`the simulator did not start: ${device.stderr()}`);
  return { ...device, port: (JSON.parse(listening()!) as { port: number }).port };
}

/** Stops the simulator; its last line says how many requests reached it and how many it served. */
async function stopDevice(device: Device): Promise<{ requests: number; served: number }> {
  await stop(device);
  const line = device.stderr().split('\n').find((l) => l.includes('"msg":"sim stopped"'));
  if (!line) throw new Error(`the simulator did not report its counts: ${device.stderr()}`);
  return JSON.parse(line) as { requests: number; served: number };
}

async function startMux(devicePort: number, env: Record<string, string>) {
  const sb = await startSwitchboard({ TARGET: `${HOST}:${devicePort}`, PROTOCOL: 'modbus', LISTEN_PORT: '0', ...env });
  await until(() => sb.stderr().includes('"msg":"upstream up"'), 'switchboard upstream up');
  return sb;
}

/** Prometheus text of switchboard's sidecar: the value of each series whose name and labels start with `prefix`. */
async function metricSum(port: number | undefined, prefix: string): Promise<number | undefined> {
  if (port === undefined) return undefined;
  const text = await (await fetch(`http://${HOST}:${port}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(prefix))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

type Load = Omit<ModbusClientOptions, 'host' | 'port' | 'startDelayMs' | 'warmupMs' | 'durationMs' | 'timeoutMs'>;

/** Generators started together against `port`; resolves with each one's result. */
async function generate(port: number, loads: Load[], seconds = SECONDS, warmupSeconds = WARMUP_SECONDS): Promise<ModbusClientResult[]> {
  const children = loads.map((load) =>
    worker('modbus-client', {
      host: HOST,
      port,
      startDelayMs: START_DELAY_MS,
      warmupMs: warmupSeconds * 1000,
      durationMs: seconds * 1000,
      timeoutMs: CLIENT_TIMEOUT_MS,
      ...load,
    } satisfies ModbusClientOptions),
  );
  await Promise.all(children.map((c) => c.exited));
  return children.map((c) => {
    const result = c.lines.find((l) => 'answered' in l) as ModbusClientResult | undefined;
    if (!result) throw new Error(`generator failed: ${c.stderr()}`);
    return result;
  });
}

// ---------------------------------------------------------------------------------------------------------------------
// Loads.

const SAME_RANGE: Read = { unit: 1, address: 100, quantity: 10 };
const sameRange: Load = { clients: 10, pipeline: 1, intervalMs: 0, reads: [SAME_RANGE] };
/** The flooder's reads: more distinct ranges than it has outstanding, so none of them can be merged. */
const flooder: Load = {
  clients: 1,
  pipeline: CLIENT_QUEUE,
  intervalMs: 0,
  reads: Array.from({ length: 2 * CLIENT_QUEUE }, (_, i) => ({ unit: 1, address: 1000 + i * 10, quantity: 10 })),
};
const poller: Load = { clients: 1, pipeline: 1, intervalMs: 100, reads: [{ unit: 2, address: 5, quantity: 2 }] };
/** Soak: 3 units × 4 ranges at random, so identical reads often meet (coalescing) and most do not. */
const soak: Load = {
  clients: 10,
  pipeline: 2,
  intervalMs: 0,
  random: true,
  reads: [1, 2, 3].flatMap((unit) => [0, 40, 300, 5000].map((address, i) => ({ unit, address, quantity: 2 + i * 8 }))),
};

// ---------------------------------------------------------------------------------------------------------------------

interface Point {
  rate: number;
  p50: number;
  p99: number;
  /** Reads answered per request that reached the device. */
  perUpstream: number;
  wrong: number;
}

const ms = (x: number) => `${x.toFixed(1)} ms`;

function summarise(runs: Point[]): Point {
  return {
    rate: median(runs.map((r) => r.rate)),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    perUpstream: median(runs.map((r) => r.perUpstream)),
    wrong: runs.reduce((sum, r) => sum + r.wrong, 0),
  };
}

const wrongOf = (results: ModbusClientResult[]) => results.reduce((sum, r) => sum + r.wrongId + r.wrongPayload + r.lost, 0);

/** (a) 10 clients, same range, one point. */
async function sameRangePoint(coalesce: string): Promise<Point> {
  const device = await startDevice(['--latency-ms', String(SERVICE_MS)]);
  try {
    const sb = await startMux(device.port, { COALESCE: coalesce, MAX_INFLIGHT: '1' });
    const [result] = await generate(sb.ports.tcp!, [sameRange]);
    await stop(sb);
    const counts = await stopDevice(device);
    return { rate: result!.rate, p50: result!.p50, p99: result!.p99, perUpstream: result!.answered / Math.max(1, counts.requests), wrong: wrongOf([result!]) };
  } finally {
    await stop(device);
  }
}

/** The generator alone: the same 10 clients straight at a zero-latency simulator that serves them all at once. */
async function generatorAlonePoint(): Promise<Point> {
  const device = await startDevice(['--one-connection=false', '--pipelined']);
  try {
    const [result] = await generate(device.port, [sameRange]);
    return { rate: result!.rate, p50: result!.p50, p99: result!.p99, perUpstream: 1, wrong: wrongOf([result!]) };
  } finally {
    await stop(device);
  }
}

interface FairnessPoint {
  poller: ModbusClientResult;
  flooder: ModbusClientResult;
}

/** (b) flooder + poller, one point. */
async function fairnessPoint(coalesce: string, gapMs: number): Promise<FairnessPoint> {
  const device = await startDevice(['--latency-ms', String(SERVICE_MS)]);
  try {
    const sb = await startMux(device.port, { COALESCE: coalesce, MAX_INFLIGHT: '1', CLIENT_QUEUE: String(CLIENT_QUEUE), REQUEST_GAP_MS: String(gapMs) });
    const [flood, poll] = await generate(sb.ports.tcp!, [flooder, poller]);
    await stop(sb);
    return { flooder: flood!, poller: poll! };
  } finally {
    await stop(device);
  }
}

interface SoakResult {
  results: ModbusClientResult[];
  device: { requests: number; served: number };
  strayDropped: number | undefined;
}

/** (c) soak, one run. */
async function soakRun(coalesce: string): Promise<SoakResult> {
  const device = await startDevice([
    '--latency-ms', '2',
    '--pipelined',
    '--late-every', String(SOAK_LATE_EVERY),
    '--late-ms', String(SOAK_LATE_MS),
    '--stray-every', String(SOAK_STRAY_EVERY),
  ]);
  try {
    const sb = await startMux(device.port, { COALESCE: coalesce, MAX_INFLIGHT: '4', UPSTREAM_TIMEOUT_MS: String(SOAK_UPSTREAM_TIMEOUT_MS) });
    const results = await generate(sb.ports.tcp!, [soak], SOAK_SECONDS, 0);
    const strayDropped = await metricSum(sb.ports.http, 'switchboard_stray_replies_total');
    await stop(sb);
    return { results, device: await stopDevice(device), strayDropped };
  } finally {
    await stop(device);
  }
}

async function main(): Promise<void> {
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' });
  const raw: string[] = [];

  const alone: Point[] = [];
  const same: Record<string, Point[]> = { false: [], true: [] };
  const fairness: Record<string, FairnessPoint[]> = {};
  const GAPS = [0, 20];
  for (let repeat = 0; repeat < REPEATS; repeat++) {
    alone.push(await generatorAlonePoint());
    for (const coalesce of COALESCE) same[coalesce]!.push(await sameRangePoint(coalesce));
    for (const coalesce of COALESCE) {
      for (const gap of GAPS) (fairness[`${coalesce}/${gap}`] ??= []).push(await fairnessPoint(coalesce, gap));
    }
  }
  const soaks: Record<string, SoakResult> = {};
  for (const coalesce of COALESCE) soaks[coalesce] = await soakRun(coalesce);

  const aloneP = summarise(alone);
  const strict = summarise(same.false!);
  const coalesced = summarise(same.true!);
  raw.push(`- generator alone, 10 clients, zero-latency simulator: ${alone.map((r) => `${Math.round(r.rate)} req/s`).join('; ')}`);
  for (const coalesce of COALESCE) {
    raw.push(
      `- (a) COALESCE=${coalesce}: ${same[coalesce]!.map((r) => `${Math.round(r.rate)} req/s (p50 ${ms(r.p50)}, p99 ${ms(r.p99)}, ${r.perUpstream.toFixed(2)} answers per device request)`).join('; ')}`,
    );
  }
  const rows: string[] = [
    `| (a) 10 clients, same range: COALESCE=true vs COALESCE=false (strict serialisation) | ${Math.round(coalesced.rate)} vs ${Math.round(strict.rate)} req/s | ${(coalesced.rate / strict.rate).toFixed(2)} × | ≥ 5 × |`,
    `| (a) p50, COALESCE=true (COALESCE=false) | ${ms(coalesced.p50)} (${ms(strict.p50)}) |  | ≤ 25 ms |`,
    `| (a) reads answered per device request, COALESCE=true (COALESCE=false) | ${coalesced.perUpstream.toFixed(2)} (${strict.perUpstream.toFixed(2)}) |  | about 10 (1) |`,
    `| generator alone vs (a) COALESCE=true | ${Math.round(aloneP.rate)} vs ${Math.round(coalesced.rate)} req/s | ${(aloneP.rate / coalesced.rate).toFixed(1)} × | ≫ 1 |`,
    // The targets below use the nominal service time; this is what one exchange really takes (timer granularity, hops).
    `| one exchange through switchboard, COALESCE=false (1000 / rate) | ${ms(1000 / strict.rate)} |  | service time ${SERVICE_MS} ms |`,
  ];
  for (const [key, runs] of Object.entries(fairness)) {
    const [coalesce, gap] = key.split('/');
    const target = 2 * SERVICE_MS + Number(gap) + 5;
    const p50 = median(runs.map((r) => r.poller.p50));
    const p99 = median(runs.map((r) => r.poller.p99));
    const floodRate = median(runs.map((r) => r.flooder.rate));
    rows.push(`| (b) poller p50 / p99, flooder at CLIENT_QUEUE, REQUEST_GAP_MS=${gap}, COALESCE=${coalesce} | ${ms(p50)} / ${ms(p99)} (flooder ${Math.round(floodRate)} req/s) | ${p99 <= target ? 'met' : 'missed'} | p99 ≤ ${target} ms |`);
    raw.push(
      `- (b) REQUEST_GAP_MS=${gap}, COALESCE=${coalesce}: ${runs.map((r) => `poller p50 ${ms(r.poller.p50)} p99 ${ms(r.poller.p99)} max ${ms(r.poller.max)} (${r.poller.requests} polls), flooder ${Math.round(r.flooder.rate)} req/s`).join('; ')}`,
    );
  }
  let wrongTotal = wrongOf(Object.values(fairness).flat().flatMap((r) => [r.poller, r.flooder])) + strict.wrong + coalesced.wrong + aloneP.wrong;
  for (const coalesce of COALESCE) {
    const s = soaks[coalesce]!;
    const sum = (f: (r: ModbusClientResult) => number) => s.results.reduce((total, r) => total + f(r), 0);
    const exceptions: Record<string, number> = {};
    for (const r of s.results) for (const [code, n] of Object.entries(r.exceptions)) exceptions[code] = (exceptions[code] ?? 0) + n;
    const wrong = sum((r) => r.wrongId + r.wrongPayload);
    wrongTotal += wrong + sum((r) => r.lost);
    rows.push(
      `| (c) soak ${SOAK_SECONDS} s, COALESCE=${coalesce}: answers with a wrong transaction id / wrong payload | ${sum((r) => r.wrongId)} / ${sum((r) => r.wrongPayload)} of ${sum((r) => r.answered)} (lost ${sum((r) => r.lost)}) | ${wrong === 0 ? 'met' : 'missed'} | 0 / 0 |`,
    );
    raw.push(
      `- (c) soak COALESCE=${coalesce}: ${sum((r) => r.answered)} answers, exceptions ${JSON.stringify(exceptions)}, ${Math.round(sum((r) => r.answered) / SOAK_SECONDS)} answers/s; device: ${s.device.requests} requests, ${s.device.served} served (about ${Math.floor(s.device.requests / SOAK_LATE_EVERY)} late by ${SOAK_LATE_MS} ms, ${Math.floor(s.device.requests / SOAK_STRAY_EVERY)} strays); switchboard dropped ${s.strayDropped ?? '?'} stray or late replies`,
    );
  }

  const body = [
    `Run on ${new Date().toISOString().slice(0, 10)} with \`npm run bench:modbus\` (BENCH_SECONDS=${SECONDS}, BENCH_WARMUP_SECONDS=${WARMUP_SECONDS}, BENCH_REPEATS=${REPEATS}, SOAK_SECONDS=${SOAK_SECONDS}) on ${machine()}.`,
    '',
    `Device: the simulator \`node dist/sim/main.js\` (one connection, ${SERVICE_MS} ms service time, one request at a time) in its own process; load: \`bench/workers/modbus-client.ts\` processes checking every answer's transaction id, unit, function and registers. MAX_INFLIGHT=1 unless said. COALESCE=false is strict serialisation (one device request per client read).`,
    '',
    '| measure | figures (median) | result | target |',
    '|---|---|---|---|',
    ...rows,
    `| answers with a wrong id or payload, or never answered, all points | ${wrongTotal} |  | 0 |`,
    '',
    'Raw runs (reads answered after the warm-up, divided by the measured seconds):',
    ...raw,
    '',
    `Commands: device \`node dist/sim/main.js --host 127.0.0.1 --port 0 --latency-ms ${SERVICE_MS}\` (soak: \`--latency-ms 2 --pipelined --late-every ${SOAK_LATE_EVERY} --late-ms ${SOAK_LATE_MS} --stray-every ${SOAK_STRAY_EVERY}\`); switchboard \`node dist/main.js\` with \`TARGET=127.0.0.1:<device> PROTOCOL=modbus LISTEN_PORT=0 MAX_INFLIGHT=1 COALESCE=false|true\` (b: \`CLIENT_QUEUE=${CLIENT_QUEUE} REQUEST_GAP_MS=0|20\`; soak: \`MAX_INFLIGHT=4 UPSTREAM_TIMEOUT_MS=${SOAK_UPSTREAM_TIMEOUT_MS}\`); load \`node --import tsx bench/workers/modbus-client.ts <json>\`.`,
  ].join('\n');
  if (WRITE_RESULTS) writeResultsSection('modbus', body);
  console.log(body);
}

await main();
