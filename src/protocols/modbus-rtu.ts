/**
 * Modbus RTU framing over a byte stream: CRC16, frame lengths derived from the function code, request and response
 * decoders, and conversion to and from Modbus TCP.
 *
 * ADU (Modbus over serial line V1.02 §2.5.1): address (u8) + PDU + CRC (u16, LOW byte first, §2.5.1.2). At most 256
 * bytes (§2.5.1.1). Address 0 is a broadcast that no server answers; 1-247 are servers (§2.2).
 *
 * On a serial line, frames are delimited by silence (3.5 character times, §2.5.1.1). Over TCP there is no silence, so the
 * only way to find a frame's end is to derive its length from the function code and its byte-count fields, as every
 * RTU-over-TCP gateway does. A function whose length cannot be derived (user-defined codes, FC 43 with MEI 13) cannot be
 * framed at all: rtuResponseLengthKnown() tells the engine to refuse such requests with exception 0x01 before sending.
 *
 * Which tcp-multiplexer name is which (read from ingmarstein/tcp-multiplexer pkg/message/modbus.go):
 *  - `modbus-serial` (ModbusSerialMessageReader) is raw RTU: address + PDU + CRC, no MBAP. This file's decoders serve it:
 *    RtuRequestDecoder on the client side, RtuResponseDecoder on the upstream side. tcp-multiplexer uses one reader for
 *    both directions and tells a request from a response by trying both lengths and keeping the one whose CRC matches,
 *    for FC 1-6, 15, 16 and exceptions only; everything else is an error there.
 *  - `modbus-rtu` (ModbusRTUMessageReader) is NOT raw RTU: it is an MBAP header + unit id + PDU + CRC, with the MBAP
 *    length counting the CRC too. See mbap-crc.ts.
 */
import { ErrorCodes, FrameError } from '../errors.js';
import { type ByteQueue, type DecodeStep, QueueDecoder, type RawFrame } from './framing.js';
import {
  EXCEPTION_BIT,
  FunctionCode,
  MeiType,
  MODBUS_MAX_PDU_BYTES,
  type ModbusTcpFrame,
  encodeModbusTcp,
  exceptionPdu,
} from './modbus-tcp.js';

/** Largest RTU ADU (serial line V1.02 §2.5.1.1; Application Protocol V1.1b3 §4.1). */
export const RTU_MAX_ADU_BYTES = 256;
/** Address + function code + CRC: the shortest ADU there is (e.g. FC 7, 11, 12, 17 requests). */
export const RTU_MIN_ADU_BYTES = 4;
export const RTU_ADDRESS_BYTES = 1;
export const RTU_CRC_BYTES = 2;
/** Address 0 is a broadcast: servers act on writes and never answer (serial line V1.02 §2.2). */
export const RTU_BROADCAST_ADDRESS = 0;
/** Address + exception function code + exception code + CRC (V1.1b3 §7). */
export const RTU_EXCEPTION_ADU_BYTES = 5;

/** CRC-16/MODBUS: reflected polynomial 0xA001, initial value 0xFFFF (serial line V1.02 §6.2.2). */
const CRC_POLYNOMIAL = 0xa001;
const CRC_INITIAL = 0xffff;
const CRC_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ CRC_POLYNOMIAL : crc >>> 1;
    table[byte] = crc;
  }
  return table;
})();

/** The Modbus CRC16 of data[start, end). Written to the wire low byte first, i.e. with writeUInt16LE. */
export function crc16(data: Uint8Array, start = 0, end = data.length): number {
  let crc = CRC_INITIAL;
  for (let i = start; i < end; i++) crc = (crc >>> 8) ^ (CRC_TABLE[(crc ^ (data[i] as number)) & 0xff] as number);
  return crc;
}

/** Whether the last two bytes of `adu` are the CRC of the rest. */
export function hasValidCrc(adu: Uint8Array): boolean {
  if (adu.length < RTU_CRC_BYTES + 1) return false;
  const end = adu.length - RTU_CRC_BYTES;
  return crc16(adu, 0, end) === ((adu[end] as number) | ((adu[end + 1] as number) << 8));
}

/**
 * What the length rules say about a frame's first bytes: its total size in bytes, `'incomplete'` when a byte count that
 * decides it has not arrived yet, or `'unknown'` when the function code gives no way to find the end.
 */
export type RtuLength = number | 'incomplete' | 'unknown';

/** A byte count at `offset` adds to a fixed part of `fixed` bytes (address, fc, fields and CRC). */
function countedLength(head: Buffer, offset: number, fixed: number): RtuLength {
  const count = head[offset];
  return count === undefined ? 'incomplete' : fixed + count;
}

/**
 * Total ADU size of an RTU request from its first bytes (at least 2 for an answer other than 'incomplete').
 * Sizes from V1.1b3 §6, plus address (1) and CRC (2):
 *   FC 1-6: fc, address/sub-field u16, quantity/value u16               -> 8
 *   FC 7, 11, 12, 17: fc only                                            -> 4
 *   FC 8: fc, sub-function u16, data u16                                 -> 8 (§6.8: sub-function 0x00 may echo N x 2
 *         bytes, which RTU cannot delimit; like libmodbus and pymodbus we frame only the common 2-byte data form)
 *   FC 15, 16: fc, address, quantity, byte count N at offset 6, N bytes -> 9 + N
 *   FC 20, 21: fc, byte count N at offset 2, N bytes                     -> 5 + N
 *   FC 22: fc, address, and-mask, or-mask                                -> 10
 *   FC 23: fc, read address, read qty, write address, write qty, byte count N at offset 10, N bytes -> 13 + N
 *   FC 24: fc, FIFO pointer address u16                                  -> 6
 *   FC 43 / MEI 14: fc, MEI, read device id code, object id              -> 7
 *   FC 43 / MEI 13 and user-defined codes                                -> 'unknown'
 */
export function rtuRequestLength(head: Buffer): RtuLength {
  const functionCode = head[1];
  switch (functionCode) {
    case undefined:
      return 'incomplete';
    case FunctionCode.READ_COILS:
    case FunctionCode.READ_DISCRETE_INPUTS:
    case FunctionCode.READ_HOLDING_REGISTERS:
    case FunctionCode.READ_INPUT_REGISTERS:
    case FunctionCode.WRITE_SINGLE_COIL:
    case FunctionCode.WRITE_SINGLE_REGISTER:
    case FunctionCode.DIAGNOSTICS:
      return 8;
    case FunctionCode.READ_EXCEPTION_STATUS:
    case FunctionCode.GET_COMM_EVENT_COUNTER:
    case FunctionCode.GET_COMM_EVENT_LOG:
    case FunctionCode.REPORT_SERVER_ID:
      return 4;
    case FunctionCode.WRITE_MULTIPLE_COILS:
    case FunctionCode.WRITE_MULTIPLE_REGISTERS:
      return countedLength(head, 6, 9);
    case FunctionCode.READ_FILE_RECORD:
    case FunctionCode.WRITE_FILE_RECORD:
      return countedLength(head, 2, 5);
    case FunctionCode.MASK_WRITE_REGISTER:
      return 10;
    case FunctionCode.READ_WRITE_MULTIPLE_REGISTERS:
      return countedLength(head, 10, 13);
    case FunctionCode.READ_FIFO_QUEUE:
      return 6;
    case FunctionCode.ENCAPSULATED_INTERFACE_TRANSPORT: {
      const meiType = head[2];
      if (meiType === undefined) return 'incomplete';
      return meiType === MeiType.READ_DEVICE_IDENTIFICATION ? 7 : 'unknown';
    }
    default:
      return 'unknown';
  }
}

/**
 * Offsets in a Read Device Identification response (V1.1b3 §6.21): address, fc, MEI, read device id code, conformity
 * level, more follows, next object id, number of objects, then objects of (id u8, length u8, value).
 */
const DEVICE_ID_OBJECT_COUNT_OFFSET = 7;
const DEVICE_ID_FIRST_OBJECT_OFFSET = 8;

function deviceIdentificationLength(head: Buffer): RtuLength {
  const objectCount = head[DEVICE_ID_OBJECT_COUNT_OFFSET];
  if (objectCount === undefined) return 'incomplete';
  let offset = DEVICE_ID_FIRST_OBJECT_OFFSET;
  for (let i = 0; i < objectCount; i++) {
    const valueLength = head[offset + 1];
    if (valueLength === undefined) return 'incomplete';
    offset += 2 + valueLength;
    // Past the bound already: report the size now rather than wait for bytes that can never form a frame.
    if (offset + RTU_CRC_BYTES > RTU_MAX_ADU_BYTES) return offset + RTU_CRC_BYTES;
  }
  return offset + RTU_CRC_BYTES;
}

/**
 * Total ADU size of an RTU response from its first bytes. The response's own function code decides (V1.1b3 §6, §7):
 *   exception (fc | 0x80): fc, exception code                               -> 5
 *   FC 1-4, 12, 17, 20, 21, 23: fc, byte count N at offset 2, N bytes       -> 5 + N
 *   FC 5, 6, 8, 15, 16: fc + 4 bytes (echo, or address and quantity)        -> 8
 *   FC 7: fc, output data                                                   -> 5
 *   FC 11: fc, status u16, event count u16                                  -> 8
 *   FC 22: echo of the request                                              -> 10
 *   FC 24: fc, byte count u16 at offset 2 (counts FIFO count + values)      -> 6 + N
 *   FC 43 / MEI 14: object list walked object by object                     -> 8 + objects + 2
 *   anything else                                                           -> 'unknown'
 */
export function rtuResponseLength(head: Buffer): RtuLength {
  const functionCode = head[1];
  if (functionCode === undefined) return 'incomplete';
  if ((functionCode & EXCEPTION_BIT) !== 0) return RTU_EXCEPTION_ADU_BYTES;
  switch (functionCode) {
    case FunctionCode.READ_COILS:
    case FunctionCode.READ_DISCRETE_INPUTS:
    case FunctionCode.READ_HOLDING_REGISTERS:
    case FunctionCode.READ_INPUT_REGISTERS:
    case FunctionCode.GET_COMM_EVENT_LOG:
    case FunctionCode.REPORT_SERVER_ID:
    case FunctionCode.READ_FILE_RECORD:
    case FunctionCode.WRITE_FILE_RECORD:
    case FunctionCode.READ_WRITE_MULTIPLE_REGISTERS:
      return countedLength(head, 2, 5);
    case FunctionCode.WRITE_SINGLE_COIL:
    case FunctionCode.WRITE_SINGLE_REGISTER:
    case FunctionCode.DIAGNOSTICS:
    case FunctionCode.GET_COMM_EVENT_COUNTER:
    case FunctionCode.WRITE_MULTIPLE_COILS:
    case FunctionCode.WRITE_MULTIPLE_REGISTERS:
      return 8;
    case FunctionCode.READ_EXCEPTION_STATUS:
      return 5;
    case FunctionCode.MASK_WRITE_REGISTER:
      return 10;
    case FunctionCode.READ_FIFO_QUEUE:
      return head.length < 4 ? 'incomplete' : 6 + head.readUInt16BE(2);
    case FunctionCode.ENCAPSULATED_INTERFACE_TRANSPORT: {
      const meiType = head[2];
      if (meiType === undefined) return 'incomplete';
      return meiType === MeiType.READ_DEVICE_IDENTIFICATION ? deviceIdentificationLength(head) : 'unknown';
    }
    default:
      return 'unknown';
  }
}

/**
 * Whether the reply to a request with this function code (and, for FC 43, MEI type) can be framed on RTU. When false,
 * the engine answers exception 0x01 itself instead of sending the request.
 */
export function rtuResponseLengthKnown(functionCode: number, meiType?: number): boolean {
  const head = Buffer.from([RTU_BROADCAST_ADDRESS, functionCode, meiType ?? 0]);
  return rtuResponseLength(head) !== 'unknown' && rtuRequestLength(head) !== 'unknown';
}

/** One RTU ADU. */
export interface RtuFrame extends RawFrame {
  /** The server address (the unit id of Modbus TCP). */
  readonly unitId: number;
  readonly functionCode: number;
  /** Function code + data, without address and CRC: a view into raw. */
  readonly pdu: Buffer;
}

function rtuFrameOf(raw: Buffer): RtuFrame {
  return {
    raw,
    unitId: raw[0] as number,
    functionCode: raw[1] as number,
    pdu: raw.subarray(RTU_ADDRESS_BYTES, raw.length - RTU_CRC_BYTES),
  };
}

/**
 * The stream cannot be framed because a function code gives no length. Carries the unit id and function code so the
 * engine can answer exception 0x01 (illegal function) before it closes the connection.
 */
export class UnknownFunctionError extends FrameError {
  readonly unitId: number;
  readonly functionCode: number;
  constructor(unitId: number, functionCode: number) {
    super(`RTU function code ${functionCode} has no derivable length`);
    this.name = 'UnknownFunctionError';
    this.unitId = unitId;
    this.functionCode = functionCode;
  }
}

abstract class RtuDecoder extends QueueDecoder<RtuFrame> {
  protected abstract lengthOf(head: Buffer): RtuLength;

  protected decodeNext(queue: ByteQueue): DecodeStep<RtuFrame> {
    // Frames are at most 256 bytes, so looking at all of what is queued (up to that) is cheap and lets the length rules
    // read any byte count they need, including the object list of a device identification response.
    const head = queue.peek(Math.min(queue.length, RTU_MAX_ADU_BYTES));
    if (head === undefined || head.length < 2) return undefined;
    const size = this.lengthOf(head);
    if (size === 'incomplete') return undefined;
    if (size === 'unknown') return new UnknownFunctionError(head[0] as number, head[1] as number);
    if (size > RTU_MAX_ADU_BYTES) {
      return new FrameError(`RTU frame of ${size} bytes exceeds ${RTU_MAX_ADU_BYTES}`, ErrorCodes.FRAME_TOO_LARGE);
    }
    if (queue.length < size) return undefined;
    const raw = queue.take(size);
    if (!hasValidCrc(raw)) return new FrameError(`RTU CRC mismatch (unit ${raw[0]}, function ${raw[1]})`);
    return rtuFrameOf(raw);
  }
}

/** Frames what a client sends to an RTU server (the client side of `modbus-serial`). */
export class RtuRequestDecoder extends RtuDecoder {
  protected lengthOf(head: Buffer): RtuLength {
    return rtuRequestLength(head);
  }
}

/**
 * Frames what an RTU server sends back (the upstream side of `rtu:` targets and of `modbus-serial`). The length comes from
 * the response's own function code and byte counts, so the decoder does not need to know the request; whether the
 * response matches the request (isResponseTo) is the engine's check.
 */
export class RtuResponseDecoder extends RtuDecoder {
  protected lengthOf(head: Buffer): RtuLength {
    return rtuResponseLength(head);
  }
}

/** Writes address + PDU + CRC into a Buffer of exactly that size. Throws RangeError on a PDU no frame can carry. */
export function encodeRtu(unitId: number, pdu: Buffer): Buffer {
  if (pdu.length < 1 || pdu.length > MODBUS_MAX_PDU_BYTES) {
    throw new RangeError(`PDU of ${pdu.length} bytes; Modbus allows 1..${MODBUS_MAX_PDU_BYTES}`);
  }
  const out = Buffer.allocUnsafe(RTU_ADDRESS_BYTES + pdu.length + RTU_CRC_BYTES);
  out.writeUInt8(unitId, 0);
  pdu.copy(out, RTU_ADDRESS_BYTES);
  const end = RTU_ADDRESS_BYTES + pdu.length;
  out.writeUInt16LE(crc16(out, 0, end), end); // CRC low byte first (serial line V1.02 §2.5.1.2)
  return out;
}

/** Parses one complete RTU ADU (CRC checked), e.g. a test vector. */
export function parseRtu(adu: Buffer): RtuFrame | FrameError {
  if (adu.length < RTU_MIN_ADU_BYTES) return new FrameError(`${adu.length} bytes cannot hold an RTU frame`);
  if (adu.length > RTU_MAX_ADU_BYTES) {
    return new FrameError(`RTU frame of ${adu.length} bytes exceeds ${RTU_MAX_ADU_BYTES}`, ErrorCodes.FRAME_TOO_LARGE);
  }
  if (!hasValidCrc(adu)) return new FrameError('RTU CRC mismatch');
  return rtuFrameOf(Buffer.from(adu));
}

/** An RTU exception response to `request` (address, fc | 0x80, code, CRC). */
export function rtuExceptionResponse(request: Pick<RtuFrame, 'unitId' | 'functionCode'>, code: number): Buffer {
  return encodeRtu(request.unitId, exceptionPdu(request.functionCode, code));
}

/** A Modbus TCP frame as the RTU request to send to an `rtu:` target: MBAP dropped, CRC appended. */
export function mbapToRtu(frame: Pick<ModbusTcpFrame, 'unitId' | 'pdu'>): Buffer {
  return encodeRtu(frame.unitId, frame.pdu);
}

/** An RTU reply as the Modbus TCP ADU for the client: CRC dropped, MBAP added with the given transaction id. */
export function rtuToMbap(frame: Pick<RtuFrame, 'unitId' | 'pdu'>, transactionId: number): Buffer {
  return encodeModbusTcp(transactionId, frame.unitId, frame.pdu);
}

