/**
 * A simulator device behind a switchboard in mux mode (PROTOCOL=modbus) and clients to it, for the issue 6 tests
 * (read-only, unit map, coalescing, cache). Everything opened is closed when the body ends.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { encodeModbusTcp, ModbusTcpDecoder, type ModbusTcpFrame } from '../../../../src/protocols/modbus-tcp.js';
import { LOOPBACK, startApp, waitFor } from '../../../helpers.js';
import { ModbusClient, ModbusDevice, replyPdu, type ModbusDeviceOptions } from '../devices.js';

export type App = Awaited<ReturnType<typeof startApp>>;

export interface Setup {
  device: ModbusDevice;
  app: App;
  client(): Promise<ModbusClient>;
  status(): Record<string, unknown>;
}

/** A switchboard in front of `target` (up before `body` runs) and clients to it; all closed afterwards. */
async function withMux(
  target: string,
  env: Record<string, string>,
  body: (app: App, client: () => Promise<ModbusClient>) => Promise<void>,
): Promise<void> {
  const app = await startApp({ TARGET: target, PROTOCOL: 'modbus', LISTEN_PORT: '0', RECONNECT_MIN_MS: '100', RECONNECT_MAX_MS: '200', ...env });
  const clients: ModbusClient[] = [];
  try {
    await waitFor(() => (app.engine.status() as { upstream: { state: string } }).upstream.state === 'up', 'upstream up');
    await body(app, async () => {
      const c = await ModbusClient.connect(app.port('tcp'));
      clients.push(c);
      return c;
    });
  } finally {
    for (const c of clients) c.close();
    await app.stop();
  }
}

export async function withModbusSetup(
  deviceOptions: ModbusDeviceOptions,
  env: Record<string, string>,
  body: (setup: Setup) => Promise<void>,
): Promise<void> {
  const device = await ModbusDevice.start(deviceOptions);
  try {
    await withMux(device.target, env, (app, client) =>
      body({
        device,
        app,
        client,
        status: () => app.engine.status(),
      }),
    );
  } finally {
    await device.stop();
  }
}

/** A write multiple registers PDU (FC 16) of `values` from `address`. */
export function writeRegistersPdu(address: number, values: number[]): Buffer {
  const pdu = Buffer.alloc(6 + values.length * 2);
  pdu[0] = 0x10;
  pdu.writeUInt16BE(address, 1);
  pdu.writeUInt16BE(values.length, 3);
  pdu[5] = values.length * 2;
  values.forEach((value, i) => pdu.writeUInt16BE(value, 6 + i * 2));
  return pdu;
}

/** A write single register PDU (FC 6). */
export function writeRegisterPdu(address: number, value: number): Buffer {
  const pdu = Buffer.alloc(5);
  pdu[0] = 0x06;
  pdu.writeUInt16BE(address, 1);
  pdu.writeUInt16BE(value, 3);
  return pdu;
}

/**
 * A pipelining device that reads its registers when a request ARRIVES and answers after a per-request delay, like a
 * device that samples and then takes its time: a read answered late carries the value from before a write that overtook
 * it. (The project's simulator computes a delayed reply when it sends it, which would hide a stale answer.) FC 3 reads and
 * FC 6 writes; unit and address give the known values (registerValue) until written.
 */
export class SamplingDevice {
  readonly server: Server;
  readonly requests: ModbusTcpFrame[] = [];
  readonly written = new Map<string, number>();
  private readonly sockets = new Set<Socket>();

  constructor(private readonly delayFor: (frame: ModbusTcpFrame, index: number) => number) {
    this.server = createServer((socket) => {
      this.sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => this.sockets.delete(socket));
      const decoder = new ModbusTcpDecoder();
      socket.on('data', (chunk: Buffer) => {
        for (const frame of decoder.push(chunk).frames) {
          const index = this.requests.push(frame) - 1;
          const reply = encodeModbusTcp(frame.transactionId, frame.unitId, replyPdu(frame.unitId, frame.pdu, this.written));
          if (frame.functionCode === 0x06) this.written.set(`${frame.unitId}:r:${frame.pdu.readUInt16BE(1)}`, frame.pdu.readUInt16BE(3));
          const delay = this.delayFor(frame, index);
          if (delay > 0) setTimeout(() => socket.writable && socket.write(reply), delay);
          else socket.write(reply);
        }
      });
    });
  }

  static async start(delayFor: (frame: ModbusTcpFrame, index: number) => number): Promise<SamplingDevice> {
    const device = new SamplingDevice(delayFor);
    device.server.listen(0, LOOPBACK);
    await once(device.server, 'listening');
    return device;
  }

  get target(): string {
    return `${LOOPBACK}:${(this.server.address() as AddressInfo).port}`;
  }

  reads(unit: number, address: number, quantity: number): number {
    return this.requests.filter(
      (r) => r.functionCode === 3 && r.unitId === unit && r.pdu.readUInt16BE(1) === address && r.pdu.readUInt16BE(3) === quantity,
    ).length;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** withModbusSetup() for a SamplingDevice. */
export async function withSamplingSetup(
  delayFor: (frame: ModbusTcpFrame, index: number) => number,
  env: Record<string, string>,
  body: (setup: { device: SamplingDevice; app: App; client(): Promise<ModbusClient> }) => Promise<void>,
): Promise<void> {
  const device = await SamplingDevice.start(delayFor);
  try {
    await withMux(device.target, env, (app, client) => body({ device, app, client }));
  } finally {
    await device.stop();
  }
}
