/**
 * Request/response probe: one TCP connection, one small request at a time (16 bytes: 'R', padding, u64 send time from
 * process.hrtime), each answered by an echo (bench/workers/receiver.ts in listen mode echoes connections that start with
 * 'R'); the round trip of every answer is one sample. Requests are paced `intervalMs` apart (or sent on the answer when
 * that is late). Samples from the first `warmupMs` are dropped. At the end it prints
 * {latencies: {count, p50, p99, max}} in ms.
 * argv: JSON { host, port, durationMs, warmupMs?, intervalMs?, startDelayMs? }.
 */
import { connect } from 'node:net';

const REQUEST_BYTES = 16;
const options = JSON.parse(process.argv[2]!) as {
  host: string;
  port: number;
  durationMs: number;
  warmupMs?: number;
  intervalMs?: number;
  startDelayMs?: number;
};

const socket = connect({ host: options.host, port: options.port });
socket.setNoDelay(true);
socket.on('error', (error) => {
  console.error(`requester: ${error.message}`);
  process.exit(1);
});
await new Promise((resolve) => socket.once('connect', resolve));
await new Promise((resolve) => setTimeout(resolve, options.startDelayMs ?? 300));

const started = Date.now();
const end = started + options.durationMs;
const warmEnd = started + (options.warmupMs ?? 0);
const intervalMs = options.intervalMs ?? 1;
const samplesNs: number[] = [];
let pending: Buffer = Buffer.alloc(0);
let answered: (() => void) | undefined;
socket.on('data', (chunk: Buffer) => {
  const now = process.hrtime.bigint();
  pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
  while (pending.length >= REQUEST_BYTES) {
    if (Date.now() >= warmEnd) samplesNs.push(Number(now - pending.readBigUInt64LE(8)));
    pending = pending.subarray(REQUEST_BYTES);
    answered?.();
  }
});

while (Date.now() < end) {
  const request = Buffer.alloc(REQUEST_BYTES);
  request[0] = 0x52; // 'R'
  request.writeBigUInt64LE(process.hrtime.bigint(), 8);
  const answer = new Promise<void>((resolve) => (answered = resolve));
  socket.write(request);
  await Promise.race([answer, new Promise((resolve) => setTimeout(resolve, 1000))]);
  await new Promise((resolve) => setTimeout(resolve, intervalMs));
}
socket.destroy();
const sorted = samplesNs.sort((a, b) => a - b);
const pick = (q: number) => (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN) / 1e6;
console.log(JSON.stringify({ latencies: { count: sorted.length, p50: pick(0.5), p99: pick(0.99), max: pick(1) } }));
process.exit(0);
