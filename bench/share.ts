/**
 * npm run bench:share — share mode (DESIGN §9, issue 8's targets). The upstream device is bench/workers/sender.ts dialling
 * in (UPSTREAM=listen:0); clients are bench/workers/receiver.ts processes of at most 50 connections each. Baselines: the
 * generators alone (sender → receiver, no relay) and socat relaying 1→1 (socat cannot broadcast, so fan-out is compared with
 * the ideal: rate × clients).
 * BENCH_SECONDS (default 5), BENCH_WARMUP_SECONDS (2), BENCH_REPEATS (3) shorten it for a smoke run.
 * `--heap N` (internal): run switchboard in this process with --expose-gc and print the heap per idle client.
 */
import { execFileSync } from 'node:child_process';
import {
  type Child,
  generatorAlone,
  HOST,
  machine,
  markdownTable,
  mbps,
  measureThroughput,
  median,
  receiversReady,
  REPEATS,
  run,
  SECONDS,
  SENDER_MS,
  sleep,
  socatOneToOne,
  START_DELAY_MS,
  startSwitchboard,
  stop,
  until,
  WARMUP_SECONDS,
  worker,
  writeResultsSection,
} from './lib.js';

const CLIENTS_PER_PROCESS = 50;
const CLIENT_BUFFER_BYTES = 262144;
const MB = 1e6;

interface Paced {
  /** Messages per second and bytes per message; omitted = bulk (as fast as the socket takes). */
  rate?: number;
  size?: number;
}

function spreadReceivers(port: number, clients: number, extra: { stalled?: number; latency?: boolean; durationMs?: number } = {}): Child[] {
  const receivers: Child[] = [];
  for (let left = clients, i = 0; left > 0; i++) {
    const connections = Math.min(CLIENTS_PER_PROCESS, left);
    receivers.push(
      worker('receiver', { host: HOST, port, connections, stalled: i === 0 ? extra.stalled : 0, latency: extra.latency, durationMs: extra.durationMs ?? SENDER_MS + 3000 }),
    );
    left -= connections;
  }
  return receivers;
}

interface FanoutResult {
  bytesPerSecond: number;
  maxLagBytes: number;
  latency?: { p50: number; p99: number; max: number; count: number };
}

/** One upstream (the sender, dialling in) to `clients` clients through switchboard. */
async function shareFanout(clients: number, paced: Paced, options: { env?: Record<string, string>; stalled?: number; latency?: boolean } = {}): Promise<FanoutResult> {
  const sw = await startSwitchboard({
    UPSTREAM: 'listen:0',
    LISTEN_PORT: '0',
    MAX_CLIENTS: '20000',
    CLIENT_BUFFER_BYTES: String(CLIENT_BUFFER_BYTES),
    ...options.env,
  });
  let maxLagBytes = 0;
  let polling = true;
  const poll = (async () => {
    while (polling) {
      try {
        const text = await (await fetch(`http://${HOST}:${sw.ports.http}/metrics`)).text();
        const match = /switchboard_share_client_lag_bytes\{stat="max"\} (\d+)/.exec(text);
        if (match) maxLagBytes = Math.max(maxLagBytes, Number(match[1]));
      } catch {
        /* switchboard stopping */
      }
      await sleep(250);
    }
  })();
  try {
    const receivers = spreadReceivers(sw.ports.rw!, clients, { stalled: options.stalled, latency: options.latency });
    await receiversReady(receivers);
    await sleep(200);
    const startedAt = Date.now();
    const sender = worker('sender', { host: HOST, port: sw.ports.upstream!, durationMs: SENDER_MS, startDelayMs: START_DELAY_MS, chunkBytes: 65536, ...paced });
    const bytesPerSecond = await measureThroughput(sender, receivers, startedAt, options.latency === true);
    let latency: FanoutResult['latency'];
    if (options.latency) {
      // Each receiver process saw the same message stream: report the worst.
      for (const r of receivers) {
        const stats = r.lines.find((l) => 'latencies' in l)?.latencies as FanoutResult['latency'];
        if (stats && (!latency || stats.p99 > latency.p99)) latency = stats;
      }
    }
    return { bytesPerSecond, maxLagBytes, latency };
  } finally {
    polling = false;
    await poll;
    await stop(sw);
  }
}

/** Heap per idle client: switchboard in a child process with --expose-gc (this file with --heap). */
function idleHeapPerClient(clients: number): { perClientBytes: number; clients: number } {
  const out = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', 'bench/share.ts', '--heap', String(clients)], {
    cwd: new URL('..', import.meta.url).pathname,
    encoding: 'utf8',
    timeout: 240_000,
  });
  return JSON.parse(out.trim().split('\n').at(-1)!) as { perClientBytes: number; clients: number };
}

async function heapChild(clients: number): Promise<void> {
  const { pino } = await import('pino');
  const { loadConfig } = await import('../src/config/load.js');
  const { App } = await import('../src/app.js');
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  const loaded = loadConfig({ UPSTREAM: 'listen:0', LISTEN_PORT: '0', HOST, HTTP_PORT: 'off', MAX_CLIENTS: String(clients + 100) });
  const app = new App(loaded, pino({ level: 'silent' }));
  await app.start();
  const settle = async () => {
    for (let i = 0; i < 5; i++) {
      gc();
      await sleep(50);
    }
    return process.memoryUsage().heapUsed;
  };
  // One client first, so that lazily created structures are not charged to the idle clients.
  const warm = spreadReceivers(app.port('rw'), 1, { durationMs: 180_000 });
  await receiversReady(warm);
  const before = await settle();
  const receivers = spreadReceivers(app.port('rw'), clients, { durationMs: 180_000 });
  await receiversReady(receivers);
  await until(() => (app.engine.status() as { clientCount: number }).clientCount === clients + 1, 'switchboard to hold every client', 60_000);
  const afterJoin = await settle();
  await Promise.all([...warm, ...receivers].map((r) => stop(r)));
  console.log(JSON.stringify({ clients, perClientBytes: (afterJoin - before) / clients }));
  process.exit(0);
}

const fmtRate = (bytesPerSecond: number) => `${(bytesPerSecond / MB).toFixed(0)} MB/s (${mbps(bytesPerSecond, 1).toFixed(0)} Mbit/s)`;

async function repeat<T>(name: string, measureOnce: () => Promise<T>, show: (value: T) => string): Promise<T[]> {
  const runs: T[] = [];
  for (let i = 0; i < REPEATS; i++) {
    runs.push(await measureOnce());
    console.log(`  ${name} run ${i + 1}: ${show(runs.at(-1)!)}`);
  }
  return runs;
}

async function main(): Promise<void> {
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: new URL('..', import.meta.url).pathname, stdio: 'inherit' });
  const date = new Date().toISOString().slice(0, 10);
  console.log(`bench:share on ${machine()}; ${SECONDS} s per point after ${WARMUP_SECONDS} s warm-up, median of ${REPEATS}`);
  console.log('warm-up run (discarded)');
  await shareFanout(1, {});

  const rate = (r: FanoutResult) => r.bytesPerSecond;
  const alone = await repeat('generator alone (sender → receiver, no relay)', generatorAlone, fmtRate);
  const socat = await repeat('socat 1→1', socatOneToOne, fmtRate);
  const one = await repeat('switchboard 1→1 bulk', () => shareFanout(1, {}), (r) => fmtRate(r.bytesPerSecond));
  // 20 MB/s: 200 messages of 100 kB per second.
  const hundred = await repeat('switchboard 20 MB/s → 100 clients', () => shareFanout(100, { rate: 200, size: 100_000 }), (r) => fmtRate(r.bytesPerSecond));
  // 1 MB/s: 100 messages of 10 kB per second.
  const thousand = await repeat('switchboard 1 MB/s → 1,000 clients', () => shareFanout(1000, { rate: 100, size: 10_000 }), (r) => fmtRate(r.bytesPerSecond));
  const latency = await repeat(
    'switchboard 100 B × 100/s → 100 clients, latency',
    () => shareFanout(100, { rate: 100, size: 100 }, { latency: true }),
    (r) => `p99 ${r.latency?.p99.toFixed(2)} ms`,
  );
  const none = await repeat('switchboard bulk → 100, SLOW_CLIENT=drop, none stalled', () => shareFanout(100, {}, { env: { SLOW_CLIENT: 'drop' } }), (r) => fmtRate(r.bytesPerSecond));
  const stalled = await repeat(
    'switchboard bulk → 100, SLOW_CLIENT=drop, 1 stalled (the 99 others)',
    () => shareFanout(100, {}, { env: { SLOW_CLIENT: 'drop' }, stalled: 1 }),
    (r) => `${fmtRate(r.bytesPerSecond)}, max lag ${r.maxLagBytes} B`,
  );
  const heap = idleHeapPerClient(1000);
  console.log(`  idle client heap: ${(heap.perClientBytes / 1024).toFixed(2)} KiB`);

  const m = (runs: FanoutResult[]) => median(runs.map(rate));
  const ideal100 = 100 * 20 * MB;
  const ideal1000 = 1000 * 1 * MB;
  const p99 = median(latency.map((r) => r.latency?.p99 ?? NaN));
  const maxLag = Math.max(...stalled.map((r) => r.maxLagBytes));
  const rows = [
    ['1 stream → 1 client, bulk, vs socat 1→1', `${fmtRate(m(one))} vs ${fmtRate(median(socat))}`, (m(one) / median(socat)).toFixed(2), ''],
    ['20 MB/s → 100 clients: aggregate vs ideal 2 GB/s', fmtRate(m(hundred)), (m(hundred) / ideal100).toFixed(2), '≥ 0.95'],
    ['1 MB/s → 1,000 clients: aggregate vs ideal 1 GB/s', fmtRate(m(thousand)), (m(thousand) / ideal1000).toFixed(2), '≥ 0.95'],
    ['100 B × 100/s → 100 clients: p99 upstream→client', `${p99.toFixed(2)} ms (p50 ${median(latency.map((r) => r.latency?.p50 ?? NaN)).toFixed(2)} ms)`, '', '≤ 2 ms'],
    ['1 stalled of 100 (drop): others vs none stalled', `${fmtRate(m(stalled))} vs ${fmtRate(m(none))}`, (m(stalled) / m(none)).toFixed(2), '≥ 0.9'],
    ['stalled client: max lag gauge vs CLIENT_BUFFER_BYTES + 64 KiB', `${maxLag} B vs ${CLIENT_BUFFER_BYTES + 65536} B`, '', '≤'],
    ['idle client heap (--expose-gc, 1,000 clients)', `${(heap.perClientBytes / 1024).toFixed(2)} KiB`, '', '≤ 8 KiB'],
  ];
  const table = markdownTable(['measure', 'figures (median)', 'ratio', 'target'], rows);
  console.log(`\n${table}\n`);
  const runsText = (values: number[]) => values.map(fmtRate).join(', ');
  writeResultsSection(
    'share',
    `Run on ${date} with \`npm run bench:share\` (BENCH_SECONDS=${SECONDS}, BENCH_WARMUP_SECONDS=${WARMUP_SECONDS}, BENCH_REPEATS=${REPEATS}) on ${machine()}.

${table}

Raw runs (bytes after the warm-up, divided by ${SECONDS} s):
- generator alone (sender → listening receiver, no relay): ${runsText(alone)}
- socat \`socat -b65536 TCP-LISTEN:a TCP-LISTEN:b\`, 1→1: ${runsText(socat)}
- switchboard 1→1 bulk: ${runsText(one.map(rate))}
- switchboard 20 MB/s → 100 clients (2 receiver processes × 50): ${runsText(hundred.map(rate))}
- switchboard 1 MB/s → 1,000 clients (20 receiver processes × 50): ${runsText(thousand.map(rate))}
- latency p99 per run: ${latency.map((r) => `${r.latency?.p99.toFixed(2)} ms (${r.latency?.count} messages per receiver process)`).join(', ')}
- bulk → 100, SLOW_CLIENT=drop, none stalled: ${runsText(none.map(rate))}; 1 stalled: ${runsText(stalled.map(rate))}; max lag per run: ${stalled.map((r) => r.maxLagBytes).join(', ')} B
- idle heap: ${heap.perClientBytes.toFixed(0)} B per client (${heap.clients} clients, heapUsed after forced GC, before/after they joined)

Commands: switchboard \`node dist/main.js\` with \`UPSTREAM=listen:0 LISTEN_PORT=0 CLIENT_BUFFER_BYTES=${CLIENT_BUFFER_BYTES}\`; the upstream is \`bench/workers/sender.ts\` dialling in (paced with rate × size, or bulk 64 KiB writes); clients \`bench/workers/receiver.ts\`, one process per ${CLIENTS_PER_PROCESS}.`,
  );
}

const heapArg = process.argv.indexOf('--heap');
if (heapArg >= 0) {
  await heapChild(Number(process.argv[heapArg + 1] ?? 1000));
} else {
  await main();
  process.exit(0);
}
