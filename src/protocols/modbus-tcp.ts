/**
 * Modbus TCP: the MBAP header and the PDU rules mux mode needs (coalescing reads, allow-listing writes, exceptions).
 *
 * Wire layout (MODBUS Messaging on TCP/IP Implementation Guide V1.0b §3.1.3; Modbus Application Protocol V1.1b3 §4.1):
 *
 *   offset 0  transaction id  u16 BE  copied by the server into its response
 *   offset 2  protocol id     u16 BE  0 = Modbus; anything else is not ours
 *   offset 4  length          u16 BE  number of FOLLOWING bytes: the unit id plus the PDU
 *   offset 6  unit id         u8
 *   offset 7  PDU             function code (u8) + data, 1..253 bytes
 *
 * The PDU is limited to 253 bytes because the serial-line ADU is at most 256 bytes (address + PDU + CRC,
 * V1.1b3 §4.1), so the MBAP length is 2..254 (unit id + function code at least) and a TCP ADU at most 260 bytes.
 * All multi-byte fields are big-endian (V1.1b3 §4.2).
 */
import { ErrorCodes, FrameError } from '../errors.js';
import { type ByteQueue, type DecodeStep, QueueDecoder, type RawFrame } from './framing.js';

/** transaction id + protocol id + length: what must arrive before the frame's size is known. */
export const MBAP_PREFIX_BYTES = 6;
/** The MBAP header proper, unit id included (Implementation Guide §3.1.3). */
export const MBAP_HEADER_BYTES = 7;
export const MODBUS_PROTOCOL_ID = 0;
/** Unit id + function code: a PDU cannot be empty (V1.1b3 §4.1). */
export const MBAP_MIN_LENGTH = 2;
/** Unit id + the largest PDU (V1.1b3 §4.1: 256-byte serial ADU minus address and CRC). */
export const MBAP_MAX_LENGTH = 254;
export const MODBUS_MAX_PDU_BYTES = 253;
export const MODBUS_TCP_MAX_ADU_BYTES = MBAP_PREFIX_BYTES + MBAP_MAX_LENGTH; // 260
/** A response whose function code has this bit set is an exception response (V1.1b3 §7). */
export const EXCEPTION_BIT = 0x80;

/** Public function codes (V1.1b3 §5.1, §6). */
export const FunctionCode = {
  READ_COILS: 0x01,
  READ_DISCRETE_INPUTS: 0x02,
  READ_HOLDING_REGISTERS: 0x03,
  READ_INPUT_REGISTERS: 0x04,
  WRITE_SINGLE_COIL: 0x05,
  WRITE_SINGLE_REGISTER: 0x06,
  READ_EXCEPTION_STATUS: 0x07,
  DIAGNOSTICS: 0x08,
  GET_COMM_EVENT_COUNTER: 0x0b,
  GET_COMM_EVENT_LOG: 0x0c,
  WRITE_MULTIPLE_COILS: 0x0f,
  WRITE_MULTIPLE_REGISTERS: 0x10,
  REPORT_SERVER_ID: 0x11,
  READ_FILE_RECORD: 0x14,
  WRITE_FILE_RECORD: 0x15,
  MASK_WRITE_REGISTER: 0x16,
  READ_WRITE_MULTIPLE_REGISTERS: 0x17,
  READ_FIFO_QUEUE: 0x18,
  ENCAPSULATED_INTERFACE_TRANSPORT: 0x2b,
} as const;

/** MEI types carried by function code 43 (V1.1b3 §6.19-6.21). */
export const MeiType = {
  CANOPEN_GENERAL_REFERENCE: 0x0d,
  READ_DEVICE_IDENTIFICATION: 0x0e,
} as const;

/** Exception codes (V1.1b3 §7). */
export const ExceptionCode = {
  ILLEGAL_FUNCTION: 0x01,
  ILLEGAL_DATA_ADDRESS: 0x02,
  ILLEGAL_DATA_VALUE: 0x03,
  SERVER_DEVICE_FAILURE: 0x04,
  ACKNOWLEDGE: 0x05,
  SERVER_DEVICE_BUSY: 0x06,
  MEMORY_PARITY_ERROR: 0x08,
  GATEWAY_PATH_UNAVAILABLE: 0x0a,
  GATEWAY_TARGET_FAILED_TO_RESPOND: 0x0b,
} as const;

export type ExceptionCodeValue = (typeof ExceptionCode)[keyof typeof ExceptionCode];

/** Quantity bounds of the request PDUs (V1.1b3 §6.1-6.4, §6.11, §6.12, §6.17). */
export const MAX_READ_BITS = 2000; // FC 1, 2: 0x07D0
export const MAX_READ_REGISTERS = 125; // FC 3, 4, and the read half of FC 23: 0x007D
export const MAX_WRITE_COILS = 1968; // FC 15: 0x07B0
export const MAX_WRITE_REGISTERS = 123; // FC 16: 0x007B
export const MAX_READ_WRITE_WRITE_REGISTERS = 121; // write half of FC 23: 0x0079
/** Highest data address; a range may not run past it (addresses are u16, V1.1b3 §4.3). */
export const MAX_ADDRESS = 0xffff;

/** One Modbus TCP ADU, request or response (the framing is the same both ways). */
export interface ModbusTcpFrame extends RawFrame {
  readonly transactionId: number;
  readonly unitId: number;
  /** pdu[0]; with EXCEPTION_BIT set on an exception response. */
  readonly functionCode: number;
  /** Function code + data: a view into raw from offset 7. */
  readonly pdu: Buffer;
}

function frameOf(raw: Buffer): ModbusTcpFrame {
  return {
    raw,
    transactionId: raw.readUInt16BE(0),
    unitId: raw[6] as number,
    functionCode: raw[7] as number,
    pdu: raw.subarray(MBAP_HEADER_BYTES),
  };
}

/**
 * Checks an MBAP prefix (at least 6 bytes) and returns the whole ADU's size, or the error that ends the stream.
 * Shared with the MBAP+CRC framer, which has the same header but counts two more bytes.
 */
export function mbapAduLength(prefix: Buffer, minLength: number, maxLength: number): number | FrameError {
  const protocolId = prefix.readUInt16BE(2);
  if (protocolId !== MODBUS_PROTOCOL_ID) {
    return new FrameError(`MBAP protocol id ${protocolId} is not 0 (Modbus)`);
  }
  const length = prefix.readUInt16BE(4);
  if (length > maxLength) {
    return new FrameError(`MBAP length ${length} exceeds ${maxLength}`, ErrorCodes.FRAME_TOO_LARGE);
  }
  if (length < minLength) return new FrameError(`MBAP length ${length} is below ${minLength}`);
  return MBAP_PREFIX_BYTES + length;
}

/** Splits a Modbus TCP byte stream (client requests or server responses) into ADUs. */
export class ModbusTcpDecoder extends QueueDecoder<ModbusTcpFrame> {
  protected decodeNext(queue: ByteQueue): DecodeStep<ModbusTcpFrame> {
    const prefix = queue.peek(MBAP_PREFIX_BYTES);
    if (prefix === undefined) return undefined;
    const size = mbapAduLength(prefix, MBAP_MIN_LENGTH, MBAP_MAX_LENGTH);
    if (typeof size !== 'number') return size;
    if (queue.length < size) return undefined;
    return frameOf(queue.take(size));
  }
}

/** Writes one ADU into a Buffer of exactly its size. Throws RangeError on arguments no frame can carry (a bug, not input). */
export function encodeModbusTcp(transactionId: number, unitId: number, pdu: Buffer): Buffer {
  if (pdu.length < 1 || pdu.length > MODBUS_MAX_PDU_BYTES) {
    throw new RangeError(`PDU of ${pdu.length} bytes; Modbus allows 1..${MODBUS_MAX_PDU_BYTES}`);
  }
  const out = Buffer.allocUnsafe(MBAP_HEADER_BYTES + pdu.length);
  out.writeUInt16BE(transactionId, 0);
  out.writeUInt16BE(MODBUS_PROTOCOL_ID, 2);
  out.writeUInt16BE(pdu.length + 1, 4); // MBAP length counts the unit id (Implementation Guide §3.1.3)
  out.writeUInt8(unitId, 6);
  pdu.copy(out, MBAP_HEADER_BYTES);
  return out;
}

/** Parses one complete ADU from a Buffer (e.g. a test vector or a frame built elsewhere). */
export function parseModbusTcp(adu: Buffer): ModbusTcpFrame | FrameError {
  if (adu.length < MBAP_PREFIX_BYTES) return new FrameError(`${adu.length} bytes cannot hold an MBAP header`);
  const size = mbapAduLength(adu, MBAP_MIN_LENGTH, MBAP_MAX_LENGTH);
  if (typeof size !== 'number') return size;
  if (size !== adu.length) return new FrameError(`MBAP announces ${size} bytes, buffer has ${adu.length}`);
  return frameOf(Buffer.from(adu));
}

/** The exception PDU answering a request: its function code with EXCEPTION_BIT, then the code (V1.1b3 §7). */
export function exceptionPdu(functionCode: number, code: number): Buffer {
  return Buffer.from([(functionCode | EXCEPTION_BIT) & 0xff, code]);
}

/** An exception response ADU to `request`, with its transaction id and unit id. */
export function exceptionResponse(
  request: Pick<ModbusTcpFrame, 'transactionId' | 'unitId' | 'functionCode'>,
  code: number,
): Buffer {
  return encodeModbusTcp(request.transactionId, request.unitId, exceptionPdu(request.functionCode, code));
}

/**
 * The same frame with another transaction id and unit id (mux rewrites both on the way up and restores them on the way
 * back). By default the bytes are copied; with `inPlace` they are written into frame.raw, which saves an allocation but
 * changes the bytes every holder of that frame sees, so use it only on a frame nobody else holds. Either way the returned
 * object is new: read the ids from it, not from the old one.
 */
export function rewriteIds(
  frame: ModbusTcpFrame,
  transactionId: number,
  unitId: number,
  options: { inPlace?: boolean } = {},
): ModbusTcpFrame {
  const raw = options.inPlace === true ? frame.raw : Buffer.from(frame.raw);
  raw.writeUInt16BE(transactionId, 0);
  raw.writeUInt8(unitId, 6);
  return frameOf(raw);
}

export function isException(functionCode: number): boolean {
  return (functionCode & EXCEPTION_BIT) !== 0;
}

/**
 * Whether `response` can be the answer to `request`: same unit id and the same function code, or that code with
 * EXCEPTION_BIT (V1.1b3 §7). Works for TCP and RTU frames alike. Transaction ids are the engine's business.
 */
export function isResponseTo(
  request: { readonly unitId: number; readonly functionCode: number },
  response: { readonly unitId: number; readonly functionCode: number },
): boolean {
  return (
    response.unitId === request.unitId &&
    (response.functionCode === request.functionCode || response.functionCode === (request.functionCode | EXCEPTION_BIT))
  );
}

/**
 * Functions that only read (READ_ONLY lets them through): FC 1-4, 7, 11, 12, 17, 20, 24 and 43 with MEI 14 (Read
 * Device Identification). FC 8 is left out because some diagnostics sub-functions restart the device or clear counters;
 * FC 23 writes as well as reads.
 */
export function isReadFunction(functionCode: number, meiType?: number): boolean {
  switch (functionCode) {
    case FunctionCode.READ_COILS:
    case FunctionCode.READ_DISCRETE_INPUTS:
    case FunctionCode.READ_HOLDING_REGISTERS:
    case FunctionCode.READ_INPUT_REGISTERS:
    case FunctionCode.READ_EXCEPTION_STATUS:
    case FunctionCode.GET_COMM_EVENT_COUNTER:
    case FunctionCode.GET_COMM_EVENT_LOG:
    case FunctionCode.REPORT_SERVER_ID:
    case FunctionCode.READ_FILE_RECORD:
    case FunctionCode.READ_FIFO_QUEUE:
      return true;
    case FunctionCode.ENCAPSULATED_INTERFACE_TRANSPORT:
      return meiType === MeiType.READ_DEVICE_IDENTIFICATION;
    default:
      return false;
  }
}

/** isReadFunction() for a request PDU (takes the MEI type of FC 43 from pdu[1]). */
export function isReadRequest(pdu: Buffer): boolean {
  const functionCode = pdu[0];
  return functionCode !== undefined && isReadFunction(functionCode, pdu[1]);
}

/** The writes WRITE_ALLOW can admit: FC 5, 6, 15, 16, 22, 23. */
export function isWriteFunction(functionCode: number): boolean {
  switch (functionCode) {
    case FunctionCode.WRITE_SINGLE_COIL:
    case FunctionCode.WRITE_SINGLE_REGISTER:
    case FunctionCode.WRITE_MULTIPLE_COILS:
    case FunctionCode.WRITE_MULTIPLE_REGISTERS:
    case FunctionCode.MASK_WRITE_REGISTER:
    case FunctionCode.READ_WRITE_MULTIPLE_REGISTERS:
      return true;
    default:
      return false;
  }
}

/** A read of FC 1-4: the coalescing key besides the unit id. */
export interface ReadRequest {
  readonly functionCode: 1 | 2 | 3 | 4;
  readonly address: number;
  readonly quantity: number;
}

/**
 * The address and quantity of an FC 1-4 request PDU (fc, address u16, quantity u16: V1.1b3 §6.1-6.4), or undefined when
 * the PDU is another function or is not exactly 5 bytes. The quantity is not range-checked: the device answers 0x03 to a
 * bad one, and coalescing identical bad reads is harmless.
 */
export function parseReadRequest(pdu: Buffer): ReadRequest | undefined {
  const functionCode = pdu[0];
  if (functionCode === undefined || functionCode < 1 || functionCode > 4 || pdu.length !== 5) return undefined;
  return {
    functionCode: functionCode as 1 | 2 | 3 | 4,
    address: pdu.readUInt16BE(1),
    quantity: pdu.readUInt16BE(3),
  };
}

/** A string identifying an identical read (same unit, function, address, quantity), or undefined if not an FC 1-4 read. */
export function readRequestKey(unitId: number, pdu: Buffer): string | undefined {
  const read = parseReadRequest(pdu);
  return read === undefined ? undefined : `${unitId}:${read.functionCode}:${read.address}:${read.quantity}`;
}

export type WriteTable = 'coils' | 'holdingRegisters';

/** The addresses a write touches, inclusive. */
export interface WriteRange {
  readonly functionCode: number;
  readonly table: WriteTable;
  readonly first: number;
  readonly last: number;
}

/**
 * The address range a write request touches, for WRITE_ALLOW. Undefined when the PDU is not one of FC 5, 6, 15, 16, 22,
 * 23, or when it is malformed (wrong size, quantity out of the spec's bounds, byte count not matching the quantity, or a
 * range running past 0xFFFF): a write whose reach cannot be told must be refused, so the engine should refuse a write
 * function for which this returns undefined.
 */
export function parseWriteRange(pdu: Buffer): WriteRange | undefined {
  const functionCode = pdu[0];
  const range = (table: WriteTable, first: number, quantity: number): WriteRange | undefined =>
    functionCode === undefined || first + quantity - 1 > MAX_ADDRESS
      ? undefined
      : { functionCode, table, first, last: first + quantity - 1 };

  switch (functionCode) {
    // fc, address, value (V1.1b3 §6.5, §6.6)
    case FunctionCode.WRITE_SINGLE_COIL:
      return pdu.length === 5 ? range('coils', pdu.readUInt16BE(1), 1) : undefined;
    case FunctionCode.WRITE_SINGLE_REGISTER:
      return pdu.length === 5 ? range('holdingRegisters', pdu.readUInt16BE(1), 1) : undefined;
    // fc, address, quantity, byte count, values (V1.1b3 §6.11: N = ceil(quantity / 8))
    case FunctionCode.WRITE_MULTIPLE_COILS: {
      if (pdu.length < 6) return undefined;
      const quantity = pdu.readUInt16BE(3);
      const byteCount = pdu[5] as number;
      if (quantity < 1 || quantity > MAX_WRITE_COILS || byteCount !== Math.ceil(quantity / 8)) return undefined;
      if (pdu.length !== 6 + byteCount) return undefined;
      return range('coils', pdu.readUInt16BE(1), quantity);
    }
    // fc, address, quantity, byte count, values (V1.1b3 §6.12: N = 2 x quantity)
    case FunctionCode.WRITE_MULTIPLE_REGISTERS: {
      if (pdu.length < 6) return undefined;
      const quantity = pdu.readUInt16BE(3);
      const byteCount = pdu[5] as number;
      if (quantity < 1 || quantity > MAX_WRITE_REGISTERS || byteCount !== 2 * quantity) return undefined;
      if (pdu.length !== 6 + byteCount) return undefined;
      return range('holdingRegisters', pdu.readUInt16BE(1), quantity);
    }
    // fc, address, and-mask, or-mask (V1.1b3 §6.16)
    case FunctionCode.MASK_WRITE_REGISTER:
      return pdu.length === 7 ? range('holdingRegisters', pdu.readUInt16BE(1), 1) : undefined;
    // fc, read address, read quantity, write address, write quantity, byte count, values (V1.1b3 §6.17);
    // only the write half is a write.
    case FunctionCode.READ_WRITE_MULTIPLE_REGISTERS: {
      if (pdu.length < 10) return undefined;
      const readQuantity = pdu.readUInt16BE(3);
      const writeQuantity = pdu.readUInt16BE(7);
      const byteCount = pdu[9] as number;
      if (readQuantity < 1 || readQuantity > MAX_READ_REGISTERS) return undefined;
      if (writeQuantity < 1 || writeQuantity > MAX_READ_WRITE_WRITE_REGISTERS) return undefined;
      if (byteCount !== 2 * writeQuantity || pdu.length !== 10 + byteCount) return undefined;
      return range('holdingRegisters', pdu.readUInt16BE(5), writeQuantity);
    }
    default:
      return undefined;
  }
}

/**
 * The normal response PDU a device gives to a successful write, for answering RTU broadcasts locally: FC 5, 6 and 22
 * echo the request (V1.1b3 §6.5, §6.6, §6.16); FC 15 and 16 answer fc, address, quantity (§6.11, §6.12). Undefined for
 * anything else (FC 23 also reads, so it has no local answer) and for a malformed write.
 */
export function writeResponsePdu(requestPdu: Buffer): Buffer | undefined {
  if (parseWriteRange(requestPdu) === undefined) return undefined;
  switch (requestPdu[0]) {
    case FunctionCode.WRITE_SINGLE_COIL:
    case FunctionCode.WRITE_SINGLE_REGISTER:
    case FunctionCode.MASK_WRITE_REGISTER:
      return Buffer.from(requestPdu);
    case FunctionCode.WRITE_MULTIPLE_COILS:
    case FunctionCode.WRITE_MULTIPLE_REGISTERS:
      return Buffer.from(requestPdu.subarray(0, 5));
    default:
      return undefined;
  }
}
