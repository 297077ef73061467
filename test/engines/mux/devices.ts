/**
 * Devices and clients for mux tests, on loopback. The Modbus device is the project's simulator (src/sim/modbus-device.ts):
 * known register values (registerValue), and a test decides per request what happens (answer, stay silent, answer late,
 * send a stray first, close mid-reply, answer with the wrong unit). The framed device, kept here because the simulator
 * speaks only Modbus TCP, answers each frame of the uncorrelated protocols with a reply derived from it.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { FrameDecoder, RawFrame } from '../../../src/protocols/framing.js';
import { encodeModbusTcp, ModbusTcpDecoder, type ModbusTcpFrame } from '../../../src/protocols/modbus-tcp.js';
import { connectTcp, LOOPBACK } from '../../helpers.js';

export {
  expectedRegisters,
  ModbusDevice,
  registerValue,
  replyPdu,
  type DeviceAction,
  type ModbusDeviceOptions,
} from '../../../src/sim/modbus-device.js';

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
