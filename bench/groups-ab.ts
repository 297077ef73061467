/**
 * `npm run bench:groups-ab`: a diagnostic for issue 3's 1→1 bulk gap, not a DESIGN §9 result. It measures the same 1→1
 * bulk stream (bench/workers sender → receiver on the load core) through several relays on the subject core, interleaved
 * round by round so that the VM's slow drifts hit every subject alike, and prints each subject's runs and median:
 *
 *   socat        socat -b65536 between two listening sockets (the baseline of bench:groups)
 *   pipe         a bare Node relay: the receiver's connection first, then sender.pipe(receiver), nothing else
 *   switchboard  node dist/main.js in groups mode (the App: engine, sidecar, metrics, logging), with the GLIBC_TUNABLES it
 *                ships with (bench/lib.ts SHIPPED_ENV); the variant `GLIBC_TUNABLES=` runs it with glibc's defaults
 *   + any variants of switchboard's environment given as NAME=VALUE[,NAME=VALUE] arguments, and `script:<path>`
 *     arguments: a relay script of one's own (e.g. the groups engine without the App) that prints {"port": n} when listening
 *
 * With AB_MEASURE=latency it measures, instead, 100 B × 1,000 messages/s from one member to 100 others (bench:groups'
 * latency point; AB_RATE sets another rate) through `fanout` (bench/relays/fanout.cjs: a bare Node group relay) and switchboard (and the variants),
 * printing p50/p99 per round: the floor this machine puts under the latency target.
 *
 * BENCH_SECONDS (default 3), BENCH_WARMUP_SECONDS (1) and AB_ROUNDS (5) set its length.
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Child,
  CORES,
  groupLatency,
  HOST,
  listeningPort,
  mbps,
  measureThroughput,
  median,
  receiversReady,
  run,
  SENDER_MS,
  sleep,
  socatOneToOne,
  START_DELAY_MS,
  startSwitchboard,
  stop,
  worker,
} from './lib.js';

const ROUNDS = Number(process.env.AB_ROUNDS ?? 5);
const LATENCY = process.env.AB_MEASURE === 'latency';
/** Members that receive in the latency measurement (bench:groups uses 100). */
const LATENCY_MEMBERS = 100;
/** Messages per second in the latency measurement (AB_RATE; bench:groups uses 1,000, bench:share 100). */
const LATENCY_RATE = Number(process.env.AB_RATE ?? 1000);
const JOIN = 'SOCKETFORWARDER-NEW:ab\n';

/** The bare relay: the first connection receives, the second sends; bytes piped with Node's own backpressure. */
const PIPE_RELAY = `
const net = require('node:net');
let receiver;
const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  if (!receiver) { receiver = socket; socket.resume(); return; }
  socket.pipe(receiver);
});
server.listen(0, '${HOST}', () => console.log(JSON.stringify({ port: server.address().port })));
`;

/** What one round measures through a relay at `port`: 1→1 bulk bytes/s, or the p99 latency (ms) of the latency point. */
async function measure(port: number): Promise<number> {
  if (!LATENCY) return oneToOne(port);
  const stats = await groupLatency(port, JOIN, LATENCY_MEMBERS, LATENCY_RATE);
  console.log(`  p50 ${stats.p50.toFixed(2)} ms, p99 ${stats.p99.toFixed(2)} ms, max ${stats.max.toFixed(2)} ms (${stats.count} messages)`);
  return stats.p99;
}

async function oneToOne(port: number): Promise<number> {
  const receiver = worker('receiver', { host: HOST, port, joinLine: JOIN, connections: 1, durationMs: SENDER_MS + 3000 });
  await receiversReady([receiver]);
  await sleep(200);
  const startedAt = Date.now();
  const sender = worker('sender', { host: HOST, port, joinLine: JOIN, durationMs: SENDER_MS, startDelayMs: START_DELAY_MS, chunkBytes: 65536 });
  return measureThroughput(sender, [receiver], startedAt);
}

async function viaPipe(): Promise<number> {
  const script = join(tmpdir(), `swb-pipe-relay-${process.pid}.cjs`);
  writeFileSync(script, PIPE_RELAY);
  return viaScript(script);
}

/** A relay script of one's own that prints {"port": n} on stdout once it listens (e.g. a cut-down switchboard). */
async function viaScript(script: string): Promise<number> {
  const relay: Child = run(process.execPath, [script], { cpu: CORES?.subject });
  try {
    return await measure(await listeningPort(relay, script));
  } finally {
    await stop(relay);
  }
}

async function viaSwitchboard(env: Record<string, string>): Promise<number> {
  const sw = await startSwitchboard({ UDP_PORT: 'off', TCP_PORT: '0', ...env });
  try {
    return await measure(sw.ports.tcp!);
  } finally {
    await stop(sw);
  }
}

const variants = process.argv.slice(2).map((arg): [string, () => Promise<number>] => {
  if (arg.startsWith('script:')) return [arg, () => viaScript(arg.slice('script:'.length))];
  const env = Object.fromEntries(arg.split(',').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  return [`switchboard ${JSON.stringify(env)}`, () => viaSwitchboard(env)];
});
const subjects: Array<[string, () => Promise<number>]> = LATENCY
  ? [['fanout', () => viaScript('bench/relays/fanout.cjs')], ['switchboard', () => viaSwitchboard({})], ...variants]
  : [['socat', socatOneToOne], ['pipe', viaPipe], ['switchboard', () => viaSwitchboard({})], ...variants];
const unit = LATENCY ? 'ms (p99)' : 'Mbit/s';

const results = new Map<string, number[]>(subjects.map(([name]) => [name, []]));
for (let round = 1; round <= ROUNDS; round++) {
  for (const [name, measureOnce] of subjects) {
    const raw = await measureOnce();
    const value = LATENCY ? raw : mbps(raw, 1);
    results.get(name)!.push(value);
    console.log(`round ${round} ${name}: ${value.toFixed(LATENCY ? 2 : 0)} ${unit}`);
  }
}
console.log(`\nsubject: median (runs), ${unit}`);
for (const [name, values] of results) {
  const digits = LATENCY ? 2 : 0;
  console.log(`${name}: ${median(values).toFixed(digits)} (${values.map((v) => v.toFixed(digits)).join(', ')})`);
}
