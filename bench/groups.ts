/**
 * npm run bench:groups — groups mode against socat and against the load generators alone (DESIGN §9, issue 3's targets).
 * BENCH_SECONDS (default 5), BENCH_WARMUP_SECONDS (2), BENCH_REPEATS (3) shorten it for a smoke run.
 */
import { execFileSync } from 'node:child_process';
import {
  type Child,
  generatorAlone,
  groupLatency,
  HOST,
  type LatencyStats,
  machine,
  markdownTable,
  mbps,
  measureThroughput,
  median,
  receiversReady,
  REPEATS,
  rssMiB,
  SECONDS,
  SENDER_MS,
  sleep,
  socatOneToOne,
  START_DELAY_MS,
  startSwitchboard,
  stop,
  WARMUP_SECONDS,
  worker,
  writeResultsSection,
} from './lib.js';

const JOIN = (group: string) => `SOCKETFORWARDER-NEW:${group}\n`;
/** One sender to `members` receivers through switchboard (spread over processes of at most 50 connections). */
async function groupsFanout(members: number, extraEnv: Record<string, string> = {}, stalled = 0): Promise<number> {
  const sw = await startSwitchboard({ UDP_PORT: 'off', TCP_PORT: '0', MAX_CLIENTS: '20000', ...extraEnv });
  try {
    const port = sw.ports.tcp!;
    const receivers: Child[] = [];
    for (let left = members, i = 0; left > 0; i++) {
      const connections = Math.min(50, left);
      receivers.push(worker('receiver', { host: HOST, port, joinLine: JOIN('bench'), connections, stalled: i === 0 ? stalled : 0, durationMs: SENDER_MS + 3000 }));
      left -= connections;
    }
    await receiversReady(receivers);
    await sleep(200);
    const startedAt = Date.now();
    const sender = worker('sender', { host: HOST, port, joinLine: JOIN('bench'), durationMs: SENDER_MS, startDelayMs: START_DELAY_MS, chunkBytes: 65536 });
    return await measureThroughput(sender, receivers, startedAt);
  } finally {
    await stop(sw);
  }
}

async function latency(members: number): Promise<LatencyStats> {
  const sw = await startSwitchboard({ UDP_PORT: 'off', TCP_PORT: '0' });
  try {
    return await groupLatency(sw.ports.tcp!, JOIN('lat'), members);
  } finally {
    await stop(sw);
  }
}

async function idleRss(members: number): Promise<{ idle: number; loaded: number }> {
  const sw = await startSwitchboard({ UDP_PORT: 'off', TCP_PORT: '0', MAX_CLIENTS: String(members + 100) });
  try {
    await sleep(500);
    const idle = rssMiB(sw.child.pid!);
    const receivers: Child[] = [];
    for (let left = members, i = 0; left > 0; i++) {
      const connections = Math.min(2500, left);
      receivers.push(worker('receiver', { host: HOST, port: sw.ports.tcp!, joinLine: JOIN(`idle${i % 100}`), connections, durationMs: 60_000 }));
      left -= connections;
    }
    await receiversReady(receivers);
    await sleep(2000);
    const loaded = rssMiB(sw.child.pid!);
    await Promise.all(receivers.map((r) => stop(r)));
    return { idle, loaded };
  } finally {
    await stop(sw);
  }
}

async function repeat(name: string, measure: () => Promise<number>): Promise<{ runs: number[]; median: number }> {
  const runs: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    runs.push(await measure());
    process.stdout.write(`  ${name} run ${i + 1}: ${mbps(runs.at(-1)!, 1).toFixed(0)} Mbit/s\n`);
  }
  return { runs, median: median(runs) };
}

/**
 * Two points measured in turn within each repeat (a, b, a, b, …): their ratio then compares runs of the same minutes,
 * on a VM whose pace drifts by more than the targets' margins.
 */
async function repeatInTurn(
  a: { name: string; measure: () => Promise<number> },
  b: { name: string; measure: () => Promise<number> },
): Promise<[{ runs: number[]; median: number }, { runs: number[]; median: number }]> {
  const runsA: number[] = [];
  const runsB: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    for (const [point, runs] of [[a, runsA], [b, runsB]] as const) {
      runs.push(await point.measure());
      process.stdout.write(`  ${point.name} run ${i + 1}: ${mbps(runs.at(-1)!, 1).toFixed(0)} Mbit/s\n`);
    }
  }
  return [
    { runs: runsA, median: median(runsA) },
    { runs: runsB, median: median(runsB) },
  ];
}

const fmt = (bytesPerSecond: number) => `${mbps(bytesPerSecond, 1).toFixed(0)} Mbit/s`;
const runsText = (r: { runs: number[] }) => r.runs.map(fmt).join(', ');

async function main(): Promise<void> {
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: new URL('..', import.meta.url).pathname, stdio: 'inherit' });
  const date = new Date().toISOString().slice(0, 10);
  console.log(`bench:groups on ${machine()}; ${SECONDS} s per point after ${WARMUP_SECONDS} s warm-up, median of ${REPEATS}`);

  console.log('warm-up run (discarded)');
  await groupsFanout(1);

  const alone = await repeat('generator alone (sender → receiver, no relay)', generatorAlone);
  const socat = await repeat('socat 1→1', socatOneToOne);
  const one = await repeat('switchboard 1→1', () => groupsFanout(1));
  const hundred = await repeat('switchboard 1→100 (aggregate)', () => groupsFanout(100));
  const [stalled, hundredDrop] = await repeatInTurn(
    { name: 'switchboard 1→100 with 1 stalled, SLOW_CLIENT=drop (others, aggregate)', measure: () => groupsFanout(100, { SLOW_CLIENT: 'drop' }, 1) },
    { name: 'switchboard 1→100, SLOW_CLIENT=drop, none stalled (aggregate)', measure: () => groupsFanout(100, { SLOW_CLIENT: 'drop' }) },
  );
  const stalledPaired = stalled.runs.map((r, i) => (r / hundredDrop.runs[i]!).toFixed(2)).join(', ');
  const latencies: LatencyStats[] = [];
  for (let i = 0; i < REPEATS; i++) {
    latencies.push(await latency(100));
    console.log(`  latency run ${i + 1}: p99 ${latencies.at(-1)!.p99.toFixed(2)} ms`);
  }
  const p99 = median(latencies.map((l) => l.p99));
  const rss = await idleRss(10_000);
  console.log(`  10,000 idle members: RSS ${rss.loaded.toFixed(0)} MiB (idle process ${rss.idle.toFixed(0)} MiB)`);

  const ratio = (a: number, b: number) => (a / b).toFixed(2);
  const rows = [
    ['1→1 bulk vs socat', `${fmt(one.median)} vs ${fmt(socat.median)}`, ratio(one.median, socat.median), '≥ 0.8'],
    ['1→100 aggregate vs socat 1→1', `${fmt(hundred.median)} vs ${fmt(socat.median)}`, ratio(hundred.median, socat.median), '≥ 0.5'],
    ['1 stalled of 100 (drop): others vs none stalled', `${fmt(stalled.median)} vs ${fmt(hundredDrop.median)}`, ratio(stalled.median, hundredDrop.median), '≥ 0.9'],
    ['100 members, 1,000 msg/s × 100 B: p99 latency', `${p99.toFixed(2)} ms (p50 ${median(latencies.map((l) => l.p50)).toFixed(2)} ms)`, '', '≤ 2 ms'],
    ['10,000 idle members: RSS', `${rss.loaded.toFixed(0)} MiB`, '', '≤ 200 MB'],
  ];
  const table = markdownTable(['measure', 'figures (median)', 'ratio', 'target'], rows);
  console.log(`\n${table}\n`);
  writeResultsSection(
    'groups',
    `Run on ${date} with \`npm run bench:groups\` (BENCH_SECONDS=${SECONDS}, BENCH_WARMUP_SECONDS=${WARMUP_SECONDS}, BENCH_REPEATS=${REPEATS}) on ${machine()}.

${table}

Raw runs (bytes after the warm-up, divided by ${SECONDS} s):
- generator alone (sender → listening receiver, no relay): ${runsText(alone)}
- socat \`socat -b65536 TCP-LISTEN:a TCP-LISTEN:b\`, 1→1: ${runsText(socat)}
- switchboard 1→1: ${runsText(one)}
- switchboard 1→100 (2 receiver processes × 50), 64 KiB chunks: ${runsText(hundred)}
- switchboard 1→100, SLOW_CLIENT=drop, none stalled: ${runsText(hundredDrop)}
- switchboard 1→100, SLOW_CLIENT=drop, 1 stalled (the 99 others): ${runsText(stalled)}; measured in turn with the point above, paired ratios ${stalledPaired}
- latency p99 per run: ${latencies.map((l) => `${l.p99.toFixed(2)} ms (${l.count} messages)`).join(', ')}
- RSS: ${rss.idle.toFixed(0)} MiB idle, ${rss.loaded.toFixed(0)} MiB with 10,000 members in 100 groups (4 client processes × 2,500)

Commands: switchboard \`node dist/main.js\` with \`TCP_PORT=0 UDP_PORT=off\`; generators \`bench/workers/sender.ts\` and \`bench/workers/receiver.ts\` in their own processes (one per 50 receivers).`,
  );
}

await main();
process.exit(0);
