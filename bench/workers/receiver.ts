/**
 * Load receiver: `connections` TCP connections that (optionally) join a group and count what arrives. Every 100 ms it
 * prints a JSON line {t, bytes} (cumulative, all connections); with `latency` it parses the sender's framed messages and,
 * at the end, prints {latencies: {count, p50, p99, max}} in ms. `stalled` connections never read.
 * With `listen` and `echoRequests`, a connection whose first byte is REQUEST_MARK ('R', from bench/workers/requester.ts)
 * is echoed, not counted: one service process then serves a request/response probe beside bulk streams (bench/relay.ts).
 * argv: JSON { host, port, joinLine?, connections, stalled?, latency?, durationMs, listen?, echoRequests? }.
 */
import { connect, createServer, type Socket } from 'node:net';

const options = JSON.parse(process.argv[2]!) as {
  host: string;
  port: number;
  joinLine?: string;
  connections: number;
  stalled?: number;
  latency?: boolean;
  durationMs: number;
  /** Listen on `port` instead of connecting (the "generator alone" baseline: sender → receiver directly). */
  listen?: boolean;
  echoRequests?: boolean;
};

/** First byte of every request of bench/workers/requester.ts. */
const REQUEST_MARK = 0x52;
let bytes = 0;
const latenciesNs: number[] = [];
const sockets: Socket[] = [];
if (options.listen) {
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.setNoDelay(true);
    socket.once('data', (first: Buffer) => {
      if (options.echoRequests && first[0] === REQUEST_MARK) {
        socket.write(first);
        socket.on('data', (chunk: Buffer) => socket.write(chunk));
        return;
      }
      bytes += first.length;
      socket.on('data', (chunk: Buffer) => (bytes += chunk.length));
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(options.port, options.host, resolve));
}
for (let i = 0; i < (options.listen ? 0 : options.connections); i++) {
  const socket = connect({ host: options.host, port: options.port });
  socket.setNoDelay(true);
  socket.on('error', () => {});
  if (options.joinLine) socket.write(options.joinLine);
  const stalled = i < (options.stalled ?? 0);
  if (stalled) {
    socket.pause();
  } else if (options.latency) {
    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      const now = process.hrtime.bigint();
      bytes += chunk.length;
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      while (pending.length >= 16) {
        const size = pending.readUInt32LE(0);
        if (pending.length < size) break;
        latenciesNs.push(Number(now - pending.readBigUInt64LE(8)));
        pending = pending.subarray(size);
      }
    });
  } else {
    socket.on('data', (chunk: Buffer) => (bytes += chunk.length));
  }
  sockets.push(socket);
  if (i % 100 === 99) await new Promise((resolve) => setTimeout(resolve, 5));
}
console.log(JSON.stringify({ connected: sockets.length }));
const started = Date.now();
const timer = setInterval(() => {
  console.log(JSON.stringify({ t: Date.now(), bytes }));
  if (Date.now() - started > options.durationMs) {
    clearInterval(timer);
    if (options.latency) {
      const sorted = latenciesNs.sort((a, b) => a - b);
      const pick = (q: number) => (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN) / 1e6;
      console.log(JSON.stringify({ latencies: { count: sorted.length, p50: pick(0.5), p99: pick(0.99), max: pick(1) } }));
    }
    for (const s of sockets) s.destroy();
    process.exit(0);
  }
}, 100);
