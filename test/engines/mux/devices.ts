/**
 * Small fake devices and clients for mux tests, on loopback. The Modbus device knows fixed register values
 * (registerValue), answers FC 3/4 reads and FC 6 writes, and lets a test decide per request what happens (answer, stay
 * silent, answer late, send a stray first, close mid-reply, answer with the wrong unit). The framed device answers each
 * frame of the uncorrelated protocols with a reply derived from it.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { FrameDecoder, RawFrame } from '../../../src/protocols/framing.js';
import {
  encodeModbusTcp,
  exceptionPdu,
  ModbusTcpDecoder,
  type ModbusTcpFrame,
} from '../../../src/protocols/modbus-tcp.js';
import { connectTcp, LOOPBACK, sleep } from '../../helpers.js';

/** The value of holding/input register `address` of `unit`: distinct per unit and address, so a mix-up shows. */
export function registerValue(unit: number, address: number): number {
  return (unit * 7919 + address * 31) & 0xffff;
}

export type DeviceAction =
  | { kind: 'answer'; delayMs?: number }
  | { kind: 'silent' }
  | { kind: 'late'; delayMs: number }
  | { kind: 'stray-then-answer' }
  | { kind: 'wrong-unit' }
  | { kind: 'wrong-function' }
  | { kind: 'close-mid-reply' }
  | { kind: 'garbage' };

/** The PDU a correct device answers `request` with. */
export function replyPdu(unitId: number, pdu: Buffer): Buffer {
  const fc = pdu[0]!;
  if (fc === 3 || fc === 4) {
    const address = pdu.readUInt16BE(1);
    const quantity = pdu.readUInt16BE(3);
    const out = Buffer.alloc(2 + quantity * 2);
    out[0] = fc;
    out[1] = quantity * 2;
    for (let i = 0; i < quantity; i++) out.writeUInt16BE(registerValue(unitId, address + i), 2 + i * 2);
    return out;
  }
  if (fc === 6) return Buffer.from(pdu);
  return exceptionPdu(fc, 0x01);
}

export interface ModbusDeviceOptions {
  /** What to do with each request (default: answer at once). */
  action?: (frame: ModbusTcpFrame, index: number) => DeviceAction;
  /** Answer several outstanding requests concurrently (each after its own delay), like a device that pipelines. */
  pipelined?: boolean;
}

export class ModbusDevice {
  readonly server: Server;
  connections = 0;
  open = new Set<Socket>();
  requests: ModbusTcpFrame[] = [];
  /** Most requests seen outstanding at once. */
  maxOutstanding = 0;
  private outstanding = 0;

  constructor(private readonly options: ModbusDeviceOptions = {}) {
    this.server = createServer((socket) => this.accept(socket));
  }

  static async start(options: ModbusDeviceOptions = {}, port = 0): Promise<ModbusDevice> {
    const device = new ModbusDevice(options);
    device.server.listen(port, LOOPBACK);
    await once(device.server, 'listening');
    return device;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get target(): string {
    return `${LOOPBACK}:${this.port}`;
  }

  async stop(): Promise<void> {
    for (const socket of this.open) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    this.connections++;
    this.open.add(socket);
    socket.setNoDelay(true);
    socket.on('error', () => {});
    socket.on('close', () => this.open.delete(socket));
    const decoder = new ModbusTcpDecoder();
    let chain = Promise.resolve();
    socket.on('data', (chunk: Buffer) => {
      for (const frame of decoder.push(chunk).frames) {
        const index = this.requests.push(frame) - 1;
        const action = this.options.action?.(frame, index) ?? { kind: 'answer' };
        this.outstanding++;
        this.maxOutstanding = Math.max(this.maxOutstanding, this.outstanding);
        const run = () => this.perform(socket, frame, action).finally(() => this.outstanding--);
        if (this.options.pipelined) void run();
        else chain = chain.then(run);
      }
    });
  }

  private async perform(socket: Socket, frame: ModbusTcpFrame, action: DeviceAction): Promise<void> {
    const reply = encodeModbusTcp(frame.transactionId, frame.unitId, replyPdu(frame.unitId, frame.pdu));
    switch (action.kind) {
      case 'answer':
        if (action.delayMs) await sleep(action.delayMs);
        socket.write(reply);
        return;
      case 'silent':
        return;
      case 'late':
        // Answered after the gateway gave up; the serial chain is not held up meanwhile.
        setTimeout(() => socket.writable && socket.write(reply), action.delayMs);
        return;
      case 'stray-then-answer':
        socket.write(encodeModbusTcp((frame.transactionId + 5000) & 0xffff, frame.unitId, replyPdu(frame.unitId, frame.pdu)));
        socket.write(reply);
        return;
      case 'wrong-unit':
        socket.write(encodeModbusTcp(frame.transactionId, (frame.unitId + 1) & 0xff, replyPdu(frame.unitId, frame.pdu)));
        return;
      case 'wrong-function':
        socket.write(encodeModbusTcp(frame.transactionId, frame.unitId, exceptionPdu(0x10, 0x02)));
        return;
      case 'close-mid-reply':
        socket.end(reply.subarray(0, 5));
        return;
      case 'garbage':
        socket.write(Buffer.from([0, 1, 0, 9, 0, 3, 1, 3]));
        return;
    }
  }
}

/** A Modbus TCP client that pipelines freely and matches answers by transaction id. */
export class ModbusClient {
  private readonly decoder = new ModbusTcpDecoder();
  private readonly waiting = new Map<number, (frame: ModbusTcpFrame) => void>();
  readonly received: ModbusTcpFrame[] = [];
  closed = false;
  private nextId = 1;

  constructor(readonly socket: Socket) {
    socket.on('error', () => {});
    socket.on('close', () => (this.closed = true));
    socket.on('data', (chunk: Buffer) => {
      for (const frame of this.decoder.push(chunk).frames) {
        this.received.push(frame);
        const resolve = this.waiting.get(frame.transactionId);
        this.waiting.delete(frame.transactionId);
        resolve?.(frame);
      }
    });
  }

  static async connect(port: number): Promise<ModbusClient> {
    return new ModbusClient(await connectTcp(port));
  }

  /** Sends a request and resolves with its answer (or rejects after timeoutMs). */
  request(unitId: number, pdu: Buffer, options: { transactionId?: number; timeoutMs?: number } = {}): Promise<ModbusTcpFrame> {
    const transactionId = options.transactionId ?? this.nextId++ & 0xffff;
    const timeoutMs = options.timeoutMs ?? 5000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(transactionId);
        reject(new Error(`no answer to transaction ${transactionId} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(transactionId, (frame) => {
        clearTimeout(timer);
        resolve(frame);
      });
      this.socket.write(encodeModbusTcp(transactionId, unitId, pdu));
    });
  }

  read(unitId: number, address: number, quantity: number, options: { transactionId?: number; timeoutMs?: number; fc?: number } = {}) {
    return this.request(unitId, readPdu(options.fc ?? 3, address, quantity), options);
  }

  close(): void {
    this.socket.destroy();
  }
}

export function readPdu(fc: number, address: number, quantity: number): Buffer {
  const pdu = Buffer.alloc(5);
  pdu[0] = fc;
  pdu.writeUInt16BE(address, 1);
  pdu.writeUInt16BE(quantity, 3);
  return pdu;
}

/** The register values in a read answer. */
export function registersOf(frame: ModbusTcpFrame): number[] {
  const values: number[] = [];
  for (let i = 0; i < frame.pdu[1]! / 2; i++) values.push(frame.pdu.readUInt16BE(2 + i * 2));
  return values;
}

export function expectedRegisters(unit: number, address: number, quantity: number): number[] {
  return Array.from({ length: quantity }, (_, i) => registerValue(unit, address + i));
}

/** The exception code of an exception answer, or undefined. */
export function exceptionOf(frame: ModbusTcpFrame): number | undefined {
  return (frame.functionCode & 0x80) !== 0 ? frame.pdu[1] : undefined;
}

export interface FramedDeviceOptions<F extends RawFrame> {
  decoder: () => FrameDecoder<F>;
  /** The reply to one request frame; undefined = stay silent. */
  reply: (frame: F, index: number) => Buffer | undefined;
  /** Delay before answering request `index`. */
  delayMs?: (index: number) => number;
}

/** A device for the uncorrelated protocols: one exchange at a time per connection, replies in order. */
export class FramedDevice<F extends RawFrame> {
  readonly server: Server;
  connections = 0;
  requests: F[] = [];
  open = new Set<Socket>();

  constructor(private readonly options: FramedDeviceOptions<F>) {
    this.server = createServer((socket) => this.accept(socket));
  }

  static async start<F extends RawFrame>(options: FramedDeviceOptions<F>): Promise<FramedDevice<F>> {
    const device = new FramedDevice(options);
    device.server.listen(0, LOOPBACK);
    await once(device.server, 'listening');
    return device;
  }

  get target(): string {
    return `${LOOPBACK}:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const socket of this.open) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    this.connections++;
    this.open.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => this.open.delete(socket));
    const decoder = this.options.decoder();
    socket.on('data', (chunk: Buffer) => {
      for (const frame of decoder.push(chunk).frames) {
        const index = this.requests.push(frame) - 1;
        const reply = this.options.reply(frame, index);
        const delay = this.options.delayMs?.(index) ?? 0;
        if (reply === undefined) continue;
        // Late replies are written even if the gateway gave up: that is the fault under test.
        if (delay > 0) setTimeout(() => socket.writable && socket.write(reply), delay);
        else socket.write(reply);
      }
    });
  }
}
