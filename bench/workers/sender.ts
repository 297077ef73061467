/**
 * Load generator: one TCP connection that (optionally) joins a group, then sends for `durationMs`, either as fast as the
 * socket takes (bulk) or `rate` messages of `size` bytes per second, each carrying its sequence number and send time
 * (process.hrtime, CLOCK_MONOTONIC: comparable across processes on one machine) because TCP merges writes.
 * With `connections` > 1 (bulk only) it opens that many connections and sends on all of them at once.
 * argv: JSON { host, port, joinLine?, durationMs, chunkBytes?, rate?, size?, connections? }. Prints one JSON line with what
 * it sent.
 */
import { connect, type Socket } from 'node:net';

const options = JSON.parse(process.argv[2]!) as {
  host: string;
  port: number;
  joinLine?: string;
  durationMs: number;
  chunkBytes?: number;
  rate?: number;
  size?: number;
  startDelayMs?: number;
  connections?: number;
};

const socket = connect({ host: options.host, port: options.port });
socket.setNoDelay(true);
socket.on('error', (error) => {
  console.error(`sender: ${error.message}`);
  process.exit(1);
});
await new Promise((resolve) => socket.once('connect', resolve));
if (options.joinLine) socket.write(options.joinLine);
await new Promise((resolve) => setTimeout(resolve, options.startDelayMs ?? 300));

// The orchestrator measures from here: starting a worker process takes a variable while, so its own clock cannot tell.
console.log(JSON.stringify({ sendingAt: Date.now() }));
const end = Date.now() + options.durationMs;
let sent = 0;
let messages = 0;
if (options.rate) {
  // Paced messages: [u32 size][u32 seq][u64 hrtime ns] + padding.
  const size = options.size ?? 100;
  const intervalNs = 1e9 / options.rate;
  const startNs = process.hrtime.bigint();
  while (Date.now() < end) {
    const due = startNs + BigInt(Math.round(messages * intervalNs));
    const now = process.hrtime.bigint();
    if (now < due) {
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, Number(due - now) / 1e6 - 0.2)));
      continue;
    }
    const message = Buffer.alloc(size);
    message.writeUInt32LE(size, 0);
    message.writeUInt32LE(messages, 4);
    message.writeBigUInt64LE(process.hrtime.bigint(), 8);
    socket.write(message);
    messages++;
    sent += size;
  }
} else {
  const chunk = Buffer.alloc(options.chunkBytes ?? 65536, 0x5a);
  const more: Socket[] = [];
  for (let i = 1; i < (options.connections ?? 1); i++) {
    const extra = connect({ host: options.host, port: options.port });
    extra.setNoDelay(true);
    extra.on('error', (error) => {
      console.error(`sender: ${error.message}`);
      process.exit(1);
    });
    more.push(extra);
  }
  await Promise.all(more.map((extra) => new Promise((resolve) => extra.once('connect', resolve))));
  const pump = async (target: Socket): Promise<void> => {
    while (Date.now() < end) {
      sent += chunk.length;
      if (!target.write(chunk)) await new Promise((resolve) => target.once('drain', resolve));
    }
    target.end();
  };
  await Promise.all([socket, ...more].map(pump));
}
socket.end();
console.log(JSON.stringify({ sent, messages }));
process.exit(0);
