/**
 * A Modbus TCP device simulator (issue 5): what tests, benchmarks and compose put behind switchboard instead of an
 * inverter. Like a real inverter it serves one connection at a time, answers from known register values (a deterministic
 * function of unit and address, exported so a client can check every answer), and lets its user inject the faults a
 * gateway must survive: a silent unit, refused connections, late replies, stray frames, a close in the middle of a reply,
 * replies with the wrong unit or function code, malformed replies. With `pipelined` it answers outstanding requests
 * concurrently (the MAX_INFLIGHT benchmark); otherwise one at a time, in order, like most devices.
 *
 * Slow mode (`connectDelayMs`, `minGapMs`) imitates a Huawei SUN2000 and its SDongle, which need 1-2 s after a connect and a
 * pause between requests, and answers only the units in `units` (a SUN2000 reached over its own WLAN/LAN answers unit 0):
 * see SlowMode. Counters say what reached the device and what it served, so a test can assert "one upstream request per
 * round" (readRequests) or "nothing was rejected" (rejectedRequests).
 *
 * The socket side lives here; the bytes come from the pure codec in src/protocols/modbus-tcp.ts.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import {
  encodeModbusTcp,
  ExceptionCode,
  exceptionPdu,
  FunctionCode,
  MAX_ADDRESS,
  MAX_READ_BITS,
  MAX_READ_REGISTERS,
  MAX_WRITE_COILS,
  MAX_WRITE_REGISTERS,
  ModbusTcpDecoder,
  type ModbusTcpFrame,
} from '../protocols/modbus-tcp.js';

/** The value of holding and input register `address` of `unit`: distinct per unit and address, so a mix-up shows. */
export function registerValue(unit: number, address: number): number {
  return (unit * 7919 + address * 31) & 0xffff;
}

/** The value of coil and discrete input `address` of `unit`. */
export function coilValue(unit: number, address: number): boolean {
  return (unit + address) % 3 === 0;
}

/** registerValue() for `quantity` registers from `address`: what a read of them must return. */
export function expectedRegisters(unit: number, address: number, quantity: number): number[] {
  return Array.from({ length: quantity }, (_, i) => registerValue(unit, address + i));
}

/** What the simulator does with one request. */
export type DeviceAction =
  /** The correct reply, after delayMs (default: the simulator's latencyMs). */
  | { kind: 'answer'; delayMs?: number }
  /** No reply at all (a unit that does not exist behind a gateway, a device that lost the request). */
  | { kind: 'silent' }
  /** The correct reply after delayMs, without holding up the requests behind it (a reply the gateway gave up on). */
  | { kind: 'late'; delayMs: number }
  /** A reply with a transaction id nobody asked for, then the correct reply. */
  | { kind: 'stray-then-answer' }
  /** The reply with unit id + 1. */
  | { kind: 'wrong-unit' }
  /** An exception reply for another function code (0x90). */
  | { kind: 'wrong-function' }
  /** The first 5 bytes of the reply, then FIN. */
  | { kind: 'close-mid-reply' }
  /** A frame with protocol id 9, which no Modbus peer may accept. */
  | { kind: 'garbage' };

/** Faults chosen by configuration (the CLI's), applied when no `action` callback decides. */
export interface DeviceFaults {
  /** Units that never answer. */
  silentUnits: readonly number[];
  /** Every Nth request (N, 2N, …) is answered `lateMs` late; 0 = never. */
  lateEvery: number;
  lateMs: number;
  /** Every Nth reply is preceded by a stray frame; 0 = never. */
  strayEvery: number;
  /** Every Nth request gets half a reply and a close; 0 = never. */
  closeMidReplyEvery: number;
}

/**
 * What the device does with a request that comes too early (slow mode). Huawei inverters do both, depending on firmware and
 * on whether the SDongle is in between: right after a connect the request is often swallowed (no answer: the client's
 * timeout runs), while a request that comes too close to the previous one is answered with exception 0x06 (Server Device
 * Busy; huawei-solar's SlaveBusyException, Home Assistant's "Slave busy"). The default is 'busy': it shows the same
 * problem and lets a test see it at once instead of after a timeout.
 */
export type TooEarlyReply = 'busy' | 'silent';

/** Slow mode: when a request is too early. 0 = no limit. */
export interface SlowMode {
  /** A request arriving sooner than this after the connection was accepted is rejected. */
  connectDelayMs: number;
  /**
   * A request arriving sooner than this after the previous reply on its connection was sent, or while the device is still
   * working on an earlier one, is rejected. A rejection is not a reply: it does not restart the gap.
   */
  minGapMs: number;
  tooEarly: TooEarlyReply;
}

export interface ModbusDeviceOptions {
  /** Delay before each reply (default 0: answer at once). */
  latencyMs?: number;
  /** Slow mode (default: off); see SlowMode. Rejected requests are counted in rejectedRequests. */
  connectDelayMs?: number;
  minGapMs?: number;
  tooEarly?: TooEarlyReply;
  /**
   * The only unit ids the device answers (default: every unit). A request to another unit gets no reply, as a device on
   * a bus that is not addressed stays silent; behind switchboard the client then gets 0x0B after UPSTREAM_TIMEOUT_MS.
   */
  units?: readonly number[];
  /**
   * Serve one connection at a time, like most inverters (default true): a connection arriving while another is open is
   * reset (after ONE_CONNECTION_GRACE_MS, unless the open one closes meanwhile) and counted in `rejectedConnections`.
   */
  oneConnection?: boolean;
  /** Answer outstanding requests concurrently, each after its own delay, instead of one at a time in order. */
  pipelined?: boolean;
  /** Configured faults; see DeviceFaults. */
  faults?: Partial<DeviceFaults>;
  /**
   * Keep every request in `requests` and count reads per key in `readCounts` (default true, for tests); a long-running
   * simulator or a benchmark turns it off and reads `requestCount`, `requestsServed` and `rejectedRequests`.
   */
  recordRequests?: boolean;
  /** Decides per request (index counts from 0 over the device's life); overrides latencyMs and faults. */
  action?: (frame: ModbusTcpFrame, index: number) => DeviceAction;
}

export const DEFAULT_FAULTS: DeviceFaults = { silentUnits: [], lateEvery: 0, lateMs: 0, strayEvery: 0, closeMidReplyEvery: 0 };

export const DEFAULT_SLOW_MODE: SlowMode = { connectDelayMs: 0, minGapMs: 0, tooEarly: 'busy' };

/** The key of readRequests(): one read of `quantity` items from `address` of `unit` with function code `fc`. */
export function readKey(unit: number, fc: number, address: number, quantity: number): string {
  return `${unit}:${fc}:${address}:${quantity}`;
}

/** Slow-mode bookkeeping of one connection. */
interface Pacing {
  /** performance.now() when the connection was accepted. */
  acceptedAt: number;
  /** performance.now() when the last reply was written; -Infinity before the first. */
  lastReplyAt: number;
  /** Requests the device is working on (accepted, reply not written yet). */
  working: number;
}

const ANSWER: DeviceAction = { kind: 'answer' };

/** How long a new connection may wait for the open one to finish closing before it is reset (oneConnection). */
const ONE_CONNECTION_GRACE_MS = 100;

/** Offset added to the transaction id of a stray frame, so it matches no request the gateway has outstanding. */
const STRAY_TRANSACTION_OFFSET = 5000;

/**
 * The reply PDU a correct device gives to `pdu` of `unit`: register and coil reads from the known values (or from
 * `written`), the normal response to writes, and the exceptions of V1.1b3 §6 for bad quantities and ranges.
 */
export function replyPdu(unit: number, pdu: Buffer, written?: ReadonlyMap<string, number>): Buffer {
  const functionCode = pdu[0] ?? 0;
  switch (functionCode) {
    // fc, address, quantity -> fc, byte count, values (V1.1b3 §6.1-6.4)
    case FunctionCode.READ_COILS:
    case FunctionCode.READ_DISCRETE_INPUTS:
    case FunctionCode.READ_HOLDING_REGISTERS:
    case FunctionCode.READ_INPUT_REGISTERS: {
      if (pdu.length !== 5) return exceptionPdu(functionCode, ExceptionCode.ILLEGAL_DATA_VALUE);
      const address = pdu.readUInt16BE(1);
      const quantity = pdu.readUInt16BE(3);
      const bits = functionCode <= FunctionCode.READ_DISCRETE_INPUTS;
      if (quantity < 1 || quantity > (bits ? MAX_READ_BITS : MAX_READ_REGISTERS)) {
        return exceptionPdu(functionCode, ExceptionCode.ILLEGAL_DATA_VALUE);
      }
      if (address + quantity - 1 > MAX_ADDRESS) return exceptionPdu(functionCode, ExceptionCode.ILLEGAL_DATA_ADDRESS);
      if (bits) {
        const out = Buffer.alloc(2 + Math.ceil(quantity / 8));
        out[0] = functionCode;
        out[1] = out.length - 2;
        for (let i = 0; i < quantity; i++) {
          const stored = written?.get(`${unit}:c:${address + i}`);
          if (stored === undefined ? coilValue(unit, address + i) : stored !== 0) out[2 + (i >> 3)]! |= 1 << (i & 7);
        }
        return out;
      }
      const out = Buffer.allocUnsafe(2 + quantity * 2);
      out[0] = functionCode;
      out[1] = quantity * 2;
      // The hot path of the benchmarks: no lookups unless something was written.
      if (written === undefined) for (let i = 0; i < quantity; i++) out.writeUInt16BE(registerValue(unit, address + i), 2 + i * 2);
      else for (let i = 0; i < quantity; i++) out.writeUInt16BE(written.get(`${unit}:r:${address + i}`) ?? registerValue(unit, address + i), 2 + i * 2);
      return out;
    }
    // echo of the request (V1.1b3 §6.5, §6.6)
    case FunctionCode.WRITE_SINGLE_COIL:
    case FunctionCode.WRITE_SINGLE_REGISTER:
      return pdu.length === 5 ? Buffer.from(pdu) : exceptionPdu(functionCode, ExceptionCode.ILLEGAL_DATA_VALUE);
    // fc, address, quantity (V1.1b3 §6.11, §6.12)
    case FunctionCode.WRITE_MULTIPLE_COILS:
    case FunctionCode.WRITE_MULTIPLE_REGISTERS: {
      if (pdu.length < 6) return exceptionPdu(functionCode, ExceptionCode.ILLEGAL_DATA_VALUE);
      const quantity = pdu.readUInt16BE(3);
      const coils = functionCode === FunctionCode.WRITE_MULTIPLE_COILS;
      const byteCount = coils ? Math.ceil(quantity / 8) : quantity * 2;
      if (quantity < 1 || quantity > (coils ? MAX_WRITE_COILS : MAX_WRITE_REGISTERS) || pdu[5] !== byteCount || pdu.length !== 6 + byteCount) {
        return exceptionPdu(functionCode, ExceptionCode.ILLEGAL_DATA_VALUE);
      }
      if (pdu.readUInt16BE(1) + quantity - 1 > MAX_ADDRESS) return exceptionPdu(functionCode, ExceptionCode.ILLEGAL_DATA_ADDRESS);
      return Buffer.from(pdu.subarray(0, 5));
    }
    default:
      return exceptionPdu(functionCode, ExceptionCode.ILLEGAL_FUNCTION);
  }
}

/** Records what a write request changes in `written`, once replyPdu() accepted it. */
function applyWrite(unit: number, pdu: Buffer, written: Map<string, number>): void {
  const address = pdu.length >= 3 ? pdu.readUInt16BE(1) : 0;
  switch (pdu[0]) {
    case FunctionCode.WRITE_SINGLE_COIL:
      written.set(`${unit}:c:${address}`, pdu.readUInt16BE(3) === 0xff00 ? 1 : 0); // ON is 0xFF00 (V1.1b3 §6.5)
      return;
    case FunctionCode.WRITE_SINGLE_REGISTER:
      written.set(`${unit}:r:${address}`, pdu.readUInt16BE(3));
      return;
    case FunctionCode.WRITE_MULTIPLE_COILS:
      for (let i = 0; i < pdu.readUInt16BE(3); i++) written.set(`${unit}:c:${address + i}`, (pdu[6 + (i >> 3)]! >> (i & 7)) & 1);
      return;
    case FunctionCode.WRITE_MULTIPLE_REGISTERS:
      for (let i = 0; i < pdu.readUInt16BE(3); i++) written.set(`${unit}:r:${address + i}`, pdu.readUInt16BE(6 + i * 2));
      return;
  }
}

/** Node timers fire up to a millisecond or two late; the simulator waits out the last stretch of a delay on setImmediate. */
const TIMER_SLACK_MS = 2;

/**
 * Waits `ms` as exactly as the event loop allows, so a device with a 10 ms service time answers after 10 ms, not the 11-12
 * a bare setTimeout gives (benchmarks compare switchboard's latency against that service time). The precision costs at
 * most TIMER_SLACK_MS of event-loop spinning per delay.
 */
function sleep(ms: number): Promise<void> {
  const until = performance.now() + ms;
  return new Promise((resolve) => {
    const spin = () => (performance.now() >= until ? resolve() : setImmediate(spin));
    if (ms > TIMER_SLACK_MS) setTimeout(spin, ms - TIMER_SLACK_MS);
    else spin();
  });
}

export class ModbusDevice {
  readonly server: Server;
  /** Connections that reached the device, rejected ones included. */
  connections = 0;
  /** Connections reset because another one was open (oneConnection). */
  rejectedConnections = 0;
  readonly open = new Set<Socket>();
  /** Every request received, in order (with recordRequests). */
  readonly requests: ModbusTcpFrame[] = [];
  /** Requests received, rejected ones included. */
  requestCount = 0;
  /** Requests answered with their own correct reply (late ones included, when they are written). */
  requestsServed = 0;
  /** Slow mode: requests rejected for coming too early (tooEarlyAfterConnect + tooSoonAfterReply). */
  rejectedRequests = 0;
  /** Slow mode: requests rejected because they came sooner than connectDelayMs after the connection was accepted. */
  tooEarlyAfterConnect = 0;
  /** Slow mode: requests rejected because they came sooner than minGapMs after the previous reply, or before it. */
  tooSoonAfterReply = 0;
  /** Reads (FC 1-4) received, rejected ones included, by readKey(unit, fc, address, quantity) (with recordRequests). */
  readonly readCounts = new Map<string, number>();
  /** Most requests seen outstanding at once. */
  maxOutstanding = 0;
  /** Values written by FC 5, 6, 15, 16, by `unit:r|c:address`; reads return them instead of the known values. */
  readonly written = new Map<string, number>();
  private outstanding = 0;
  private readonly faults: DeviceFaults;
  private readonly hasFaults: boolean;
  private readonly latencyMs: number;
  private readonly oneConnection: boolean;
  private readonly slow: SlowMode;
  private readonly units: ReadonlySet<number> | undefined;
  private listenAt: { port: number; host: string } | undefined;

  constructor(private readonly options: ModbusDeviceOptions = {}) {
    this.faults = { ...DEFAULT_FAULTS, ...options.faults };
    const f = this.faults;
    this.hasFaults = f.silentUnits.length > 0 || f.lateEvery > 0 || f.strayEvery > 0 || f.closeMidReplyEvery > 0;
    this.latencyMs = options.latencyMs ?? 0;
    this.oneConnection = options.oneConnection ?? true;
    this.slow = {
      connectDelayMs: options.connectDelayMs ?? DEFAULT_SLOW_MODE.connectDelayMs,
      minGapMs: options.minGapMs ?? DEFAULT_SLOW_MODE.minGapMs,
      tooEarly: options.tooEarly ?? DEFAULT_SLOW_MODE.tooEarly,
    };
    this.units = options.units !== undefined && options.units.length > 0 ? new Set(options.units) : undefined;
    this.server = createServer((socket) => this.accept(socket));
  }

  /** A device listening on host:port (port 0: any free port). */
  static async start(options: ModbusDeviceOptions = {}, port = 0, host = '127.0.0.1'): Promise<ModbusDevice> {
    const device = new ModbusDevice(options);
    await device.listen(port, host);
    return device;
  }

  async listen(port: number, host: string): Promise<void> {
    this.server.listen(port, host);
    await once(this.server, 'listening');
    this.listenAt = { port: this.port, host };
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** host:port as TARGET takes it. */
  get target(): string {
    const address = this.server.address() as AddressInfo;
    return address.family === 'IPv6' ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`;
  }

  /** Reads of `quantity` items from `address` of `unit` with function code `fc` that reached the device (with recordRequests). */
  readRequests(unit: number, fc: number, address: number, quantity: number): number {
    return this.readCounts.get(readKey(unit, fc, address, quantity)) ?? 0;
  }

  /** Refused connections: stops listening and drops open connections (a device switched off); acceptConnections() undoes it. */
  async refuseConnections(): Promise<void> {
    await this.stop();
  }

  /** Listens again on the same port (a device back from a reboot). */
  async acceptConnections(): Promise<void> {
    if (this.server.listening) return;
    if (this.listenAt === undefined) throw new Error('the device never listened');
    await this.listen(this.listenAt.port, this.listenAt.host);
  }

  async stop(): Promise<void> {
    for (const socket of this.open) socket.destroy();
    if (!this.server.listening) return;
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    this.connections++;
    const acceptedAt = performance.now();
    socket.on('error', () => {});
    if (!this.oneConnection || this.open.size === 0) {
      this.serve(socket, acceptedAt);
      return;
    }
    // A client that redials closes its old connection first, but the close and the new connection can reach this
    // process in either order; a device handling its one socket sequentially would have seen the FIN first.
    let rejected = false;
    const timer = setTimeout(() => {
      rejected = true;
      this.rejectedConnections++;
      socket.resetAndDestroy();
    }, ONE_CONNECTION_GRACE_MS);
    const previous = [...this.open];
    void Promise.all(previous.map((old) => (old.closed ? undefined : once(old, 'close')))).then(() => {
      if (rejected || socket.destroyed) return;
      clearTimeout(timer);
      if (this.open.size === 0) this.serve(socket, acceptedAt);
      else {
        this.rejectedConnections++;
        socket.resetAndDestroy();
      }
    });
  }

  private serve(socket: Socket, acceptedAt: number): void {
    this.open.add(socket);
    socket.setNoDelay(true);
    socket.on('close', () => this.open.delete(socket));
    const decoder = new ModbusTcpDecoder();
    const pacing: Pacing = { acceptedAt, lastReplyAt: -Infinity, working: 0 };
    let chain: Promise<void> = Promise.resolve();
    let queued = 0; // requests of this connection waiting in `chain`
    socket.on('data', (chunk: Buffer) => {
      const result = decoder.push(chunk);
      // Replies that need no waiting are written in one batch per chunk, so a pipelining poller costs one write.
      const immediate: Buffer[] = [];
      const flush = () => {
        if (immediate.length > 0 && socket.writable) socket.write(immediate.length === 1 ? immediate[0]! : Buffer.concat(immediate));
        immediate.length = 0;
      };
      for (const frame of result.frames) {
        const index = this.requestCount++;
        if (this.options.recordRequests !== false) {
          this.requests.push(frame);
          this.countRead(frame);
        }
        if (this.tooEarly(pacing)) {
          if (this.slow.tooEarly === 'busy') immediate.push(encodeModbusTcp(frame.transactionId, frame.unitId, exceptionPdu(frame.functionCode, ExceptionCode.SERVER_DEVICE_BUSY)));
          continue;
        }
        const action = this.actionFor(frame, index);
        if (action.kind === 'answer' && !(action.delayMs ?? this.latencyMs) && (this.options.pipelined || queued === 0)) {
          this.maxOutstanding = Math.max(this.maxOutstanding, this.outstanding + 1);
          immediate.push(this.reply(frame));
          this.replied(pacing, true);
          continue;
        }
        flush(); // earlier replies first
        this.outstanding++;
        pacing.working++;
        this.maxOutstanding = Math.max(this.maxOutstanding, this.outstanding);
        const run = () =>
          this.perform(socket, frame, action, pacing).finally(() => {
            this.outstanding--;
            pacing.working--;
          });
        if (this.options.pipelined) void run();
        else {
          queued++;
          chain = chain.then(run).finally(() => queued--);
        }
      }
      flush();
      // A stream that is not Modbus cannot be resynchronised; a device drops the connection.
      if (result.error !== undefined) socket.destroy();
    });
  }

  /** Slow mode: whether a request arriving now on this connection is rejected (and counts it). */
  private tooEarly(pacing: Pacing): boolean {
    const { connectDelayMs, minGapMs } = this.slow;
    if (connectDelayMs === 0 && minGapMs === 0) return false;
    const now = performance.now();
    if (now - pacing.acceptedAt < connectDelayMs) {
      this.tooEarlyAfterConnect++;
    } else if (minGapMs > 0 && (pacing.working > 0 || now - pacing.lastReplyAt < minGapMs)) {
      this.tooSoonAfterReply++;
    } else {
      return false;
    }
    this.rejectedRequests++;
    return true;
  }

  private countRead(frame: ModbusTcpFrame): void {
    if (frame.functionCode < FunctionCode.READ_COILS || frame.functionCode > FunctionCode.READ_INPUT_REGISTERS || frame.pdu.length !== 5) return;
    const key = readKey(frame.unitId, frame.functionCode, frame.pdu.readUInt16BE(1), frame.pdu.readUInt16BE(3));
    this.readCounts.set(key, (this.readCounts.get(key) ?? 0) + 1);
  }

  /** A reply (its own correct one, or a faulty one) was just written on the connection. */
  private replied(pacing: Pacing, served: boolean): void {
    pacing.lastReplyAt = performance.now();
    if (served) this.requestsServed++;
  }

  private actionFor(frame: ModbusTcpFrame, index: number): DeviceAction {
    if (this.units !== undefined && !this.units.has(frame.unitId)) return { kind: 'silent' };
    if (this.options.action !== undefined) return this.options.action(frame, index);
    if (!this.hasFaults) return ANSWER;
    const nth = (every: number) => every > 0 && (index + 1) % every === 0;
    const faults = this.faults;
    if (faults.silentUnits.includes(frame.unitId)) return { kind: 'silent' };
    if (nth(faults.closeMidReplyEvery)) return { kind: 'close-mid-reply' };
    if (nth(faults.lateEvery)) return { kind: 'late', delayMs: faults.lateMs };
    if (nth(faults.strayEvery)) return { kind: 'stray-then-answer' };
    return ANSWER;
  }

  /** The correct reply ADU to `frame`; a write it accepts is stored. */
  private reply(frame: ModbusTcpFrame): Buffer {
    const pdu = replyPdu(frame.unitId, frame.pdu, this.written.size > 0 ? this.written : undefined);
    if ((pdu[0]! & 0x80) === 0) applyWrite(frame.unitId, frame.pdu, this.written);
    return encodeModbusTcp(frame.transactionId, frame.unitId, pdu);
  }

  private async perform(socket: Socket, frame: ModbusTcpFrame, action: DeviceAction, pacing: Pacing): Promise<void> {
    const write = (bytes: Buffer, served: boolean) => {
      if (!socket.writable) return;
      socket.write(bytes);
      this.replied(pacing, served);
    };
    switch (action.kind) {
      case 'answer': {
        const delayMs = action.delayMs ?? this.latencyMs;
        if (delayMs > 0) await sleep(delayMs);
        write(this.reply(frame), true);
        return;
      }
      case 'silent':
        return;
      case 'late':
        // Answered after the gateway gave up; the requests behind it are not held up meanwhile.
        setTimeout(() => write(this.reply(frame), true), action.delayMs);
        return;
      case 'stray-then-answer': {
        const reply = this.reply(frame);
        write(encodeModbusTcp((frame.transactionId + STRAY_TRANSACTION_OFFSET) & 0xffff, frame.unitId, reply.subarray(7)), false);
        if (this.latencyMs > 0) await sleep(this.latencyMs);
        write(reply, true);
        return;
      }
      case 'wrong-unit':
        write(encodeModbusTcp(frame.transactionId, (frame.unitId + 1) & 0xff, replyPdu(frame.unitId, frame.pdu, this.written)), false);
        return;
      case 'wrong-function':
        write(encodeModbusTcp(frame.transactionId, frame.unitId, exceptionPdu(FunctionCode.WRITE_MULTIPLE_REGISTERS, ExceptionCode.ILLEGAL_DATA_ADDRESS)), false);
        return;
      case 'close-mid-reply':
        if (socket.writable) socket.end(this.reply(frame).subarray(0, 5));
        return;
      case 'garbage':
        write(Buffer.from([0, 1, 0, 9, 0, 3, 1, 3]), false); // protocol id 9
        return;
    }
  }
}
