/**
 * Modbus TCP load generator for bench/modbus.ts, in its own process: `clients` connections, each keeping `pipeline`
 * reads outstanding (1: the next read leaves when the answer is in; CLIENT_QUEUE: a flooder), optionally paced to one
 * read every `intervalMs` (a poller). Reads are FC 3 from `reads`, taken in turn (or at random with `random`, so clients
 * often ask for the same range at the same moment). Every answer is checked: its transaction id must be one this
 * connection has outstanding, its unit id and function code those of the request, and its registers the simulator's known
 * values (expectedRegisters); exceptions are counted by code (0x0B after a timeout is a correct answer, not an error).
 *
 * Prints {connected} once connected, then one JSON line at the end: reads answered in the measured window (after the
 * warm-up) with their latency percentiles, and over the whole run the counts of wrong ids, wrong payloads, exceptions and
 * reads never answered within `timeoutMs`.
 * argv: JSON ModbusClientOptions.
 */
import { connect, type Socket } from 'node:net';
import { encodeModbusTcp, ModbusTcpDecoder, type ModbusTcpFrame } from '../../src/protocols/modbus-tcp.js';
import { registerValue } from '../../src/sim/modbus-device.js';
import { quantile } from '../lib.js';

export interface Read {
  unit: number;
  address: number;
  quantity: number;
}

export interface ModbusClientOptions {
  host: string;
  port: number;
  clients: number;
  pipeline: number;
  /** Per connection, the least time between the starts of two reads; 0 = as fast as the answers come. */
  intervalMs: number;
  reads: Read[];
  random?: boolean;
  /** Before it starts (after connecting), so every generator process is connected. */
  startDelayMs: number;
  warmupMs: number;
  durationMs: number;
  /** A read unanswered after this is counted lost (switchboard answers every request within REQUEST_DEADLINE_MS). */
  timeoutMs: number;
}

export interface ModbusClientResult {
  /** Reads sent and answered within the measured window. */
  requests: number;
  rate: number;
  p50: number;
  p99: number;
  max: number;
  /** Every answer of the run, warm-up included. */
  answered: number;
  wrongId: number;
  wrongPayload: number;
  exceptions: Record<string, number>;
  lost: number;
  /** Answers to reads already counted lost. */
  afterLost: number;
}

const options = JSON.parse(process.argv[2]!) as ModbusClientOptions;

interface Outstanding {
  read: Read;
  sentAt: number;
}

const sockets: Socket[] = [];
for (let i = 0; i < options.clients; i++) {
  const socket = connect({ host: options.host, port: options.port });
  socket.setNoDelay(true);
  socket.on('error', (error) => {
    console.error(`modbus-client: ${error.message}`);
    process.exit(1);
  });
  await new Promise((resolve) => socket.once('connect', resolve));
  sockets.push(socket);
}
console.log(JSON.stringify({ connected: sockets.length }));
await new Promise((resolve) => setTimeout(resolve, options.startDelayMs));

const start = performance.now();
const measureFrom = start + options.warmupMs;
const end = measureFrom + options.durationMs;
const latencies: number[] = [];
const result: ModbusClientResult = {
  requests: 0,
  rate: 0,
  p50: 0,
  p99: 0,
  max: 0,
  answered: 0,
  wrongId: 0,
  wrongPayload: 0,
  exceptions: {},
  lost: 0,
  afterLost: 0,
};

/** Whether `frame` is the correct answer to `read`: its unit, FC 3, and the known register values. */
function correct(frame: ModbusTcpFrame, read: Read): boolean {
  if (frame.unitId !== read.unit || frame.functionCode !== 3 || frame.pdu[1] !== read.quantity * 2 || frame.pdu.length !== 2 + read.quantity * 2) {
    return false;
  }
  for (let i = 0; i < read.quantity; i++) if (frame.pdu.readUInt16BE(2 + i * 2) !== registerValue(read.unit, read.address + i)) return false;
  return true;
}

const connections = sockets.map(
  (socket, k) =>
    new Promise<void>((resolve) => {
      const decoder = new ModbusTcpDecoder();
      const outstanding = new Map<number, Outstanding>();
      const givenUp = new Set<number>();
      let nextId = 1 + k * 1000;
      let turn = k;
      let lastStart = 0;
      let sending = true;
      let pacingTimer: NodeJS.Timeout | undefined;
      const finishIfDone = () => {
        if (!sending && outstanding.size === 0) {
          clearInterval(sweep);
          resolve();
        }
      };
      const send = () => {
        const now = performance.now();
        if (now >= end) {
          sending = false;
          finishIfDone();
          return;
        }
        const wait = lastStart + options.intervalMs - now;
        if (wait > 0) {
          pacingTimer ??= setTimeout(() => {
            pacingTimer = undefined;
            send();
          }, wait);
          return;
        }
        lastStart = now;
        const read = options.random ? options.reads[Math.floor(Math.random() * options.reads.length)]! : options.reads[turn++ % options.reads.length]!;
        const id = nextId;
        nextId = (nextId % 0xffff) + 1;
        outstanding.set(id, { read, sentAt: now });
        const pdu = Buffer.from([3, read.address >> 8, read.address & 0xff, read.quantity >> 8, read.quantity & 0xff]);
        socket.write(encodeModbusTcp(id, read.unit, pdu));
      };
      // Reads nobody answers: counted, and their slot is used again.
      const sweep = setInterval(() => {
        const now = performance.now();
        for (const [id, entry] of outstanding) {
          if (now - entry.sentAt < options.timeoutMs) continue;
          outstanding.delete(id);
          givenUp.add(id);
          result.lost++;
          send();
        }
        finishIfDone();
      }, 100);
      socket.on('data', (chunk: Buffer) => {
        for (const frame of decoder.push(chunk).frames) {
          const now = performance.now();
          const entry = outstanding.get(frame.transactionId);
          if (entry === undefined) {
            if (givenUp.delete(frame.transactionId)) result.afterLost++;
            else result.wrongId++;
            continue;
          }
          outstanding.delete(frame.transactionId);
          result.answered++;
          if ((frame.functionCode & 0x80) !== 0 && frame.unitId === entry.read.unit && frame.functionCode === 0x83) {
            const code = `0x${(frame.pdu[1] ?? 0).toString(16).padStart(2, '0')}`;
            result.exceptions[code] = (result.exceptions[code] ?? 0) + 1;
          } else if (!correct(frame, entry.read)) {
            result.wrongPayload++;
          } else if (entry.sentAt >= measureFrom && entry.sentAt < end) {
            result.requests++;
            latencies.push(now - entry.sentAt);
          }
          send();
        }
        finishIfDone();
      });
      for (let i = 0; i < options.pipeline; i++) send();
    }),
);
await Promise.all(connections);

latencies.sort((a, b) => a - b);
Object.assign(result, {
  rate: result.requests / (options.durationMs / 1000),
  p50: quantile(latencies, 0.5),
  p99: quantile(latencies, 0.99),
  max: quantile(latencies, 1),
});
console.log(JSON.stringify(result));
for (const socket of sockets) socket.destroy();
process.exit(0);
