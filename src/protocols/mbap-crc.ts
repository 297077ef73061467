/**
 * tcp-multiplexer's `modbus-rtu` protocol: an MBAP header followed by unit id + PDU + CRC, on both sides.
 *
 * Despite the name this is not raw RTU (raw RTU is tcp-multiplexer's `modbus-serial`; see modbus-rtu.ts). What its
 * source (ingmarstein/tcp-multiplexer pkg/message/modbus.go, ModbusRTUMessageReader) does, and what we match:
 *  - the 6-byte MBAP prefix, protocol id must be 0;
 *  - the MBAP length counts everything after it: unit id + PDU + the 2 CRC bytes, so it is 2 more than in Modbus TCP and
 *    the frame is at most 262 bytes (its modbusRTUMaxFrameLength = 260 + 2);
 *  - the length must be at least 4 (unit id, function code, CRC);
 *  - the CRC is the Modbus CRC16 over unit id + PDU, low byte first, exactly as on a serial line (serial line V1.02
 *    §2.5.1.2), and a mismatch is an error.
 * Frames are forwarded unchanged; the transaction id is not interpreted by tcp-multiplexer, which runs one exchange at a
 * time.
 */
import { FrameError } from '../errors.js';
import { type ByteQueue, type DecodeStep, QueueDecoder } from './framing.js';
import { crc16, hasValidCrc, RTU_CRC_BYTES } from './modbus-rtu.js';
import {
  MBAP_HEADER_BYTES,
  MBAP_MAX_LENGTH,
  MBAP_PREFIX_BYTES,
  MODBUS_MAX_PDU_BYTES,
  MODBUS_PROTOCOL_ID,
  type ModbusTcpFrame,
  mbapAduLength,
} from './modbus-tcp.js';

/** Unit id + function code + CRC. */
export const MBAP_CRC_MIN_LENGTH = 4;
/** Unit id + the largest PDU (253) + CRC. */
export const MBAP_CRC_MAX_LENGTH = MBAP_MAX_LENGTH + RTU_CRC_BYTES; // 256
export const MBAP_CRC_MAX_ADU_BYTES = MBAP_PREFIX_BYTES + MBAP_CRC_MAX_LENGTH; // 262

/** Same shape as a Modbus TCP frame; raw ends with the CRC, pdu does not include it. */
export type MbapCrcFrame = ModbusTcpFrame;

function frameOf(raw: Buffer): MbapCrcFrame {
  return {
    raw,
    transactionId: raw.readUInt16BE(0),
    unitId: raw[6] as number,
    functionCode: raw[7] as number,
    pdu: raw.subarray(MBAP_HEADER_BYTES, raw.length - RTU_CRC_BYTES),
  };
}

export class MbapCrcDecoder extends QueueDecoder<MbapCrcFrame> {
  protected decodeNext(queue: ByteQueue): DecodeStep<MbapCrcFrame> {
    const prefix = queue.peek(MBAP_PREFIX_BYTES);
    if (prefix === undefined) return undefined;
    const size = mbapAduLength(prefix, MBAP_CRC_MIN_LENGTH, MBAP_CRC_MAX_LENGTH);
    if (typeof size !== 'number') return size;
    if (queue.length < size) return undefined;
    const raw = queue.take(size);
    // The CRC covers unit id + PDU, i.e. everything after the 6-byte prefix.
    if (!hasValidCrc(raw.subarray(MBAP_PREFIX_BYTES))) {
      return new FrameError(`MBAP+CRC frame ${raw.readUInt16BE(0)}: CRC mismatch`);
    }
    return frameOf(raw);
  }
}

/** Writes MBAP (length including the CRC) + unit id + PDU + CRC into a Buffer of exactly that size. */
export function encodeMbapCrc(transactionId: number, unitId: number, pdu: Buffer): Buffer {
  if (pdu.length < 1 || pdu.length > MODBUS_MAX_PDU_BYTES) {
    throw new RangeError(`PDU of ${pdu.length} bytes; Modbus allows 1..${MODBUS_MAX_PDU_BYTES}`);
  }
  const crcOffset = MBAP_HEADER_BYTES + pdu.length;
  const out = Buffer.allocUnsafe(crcOffset + RTU_CRC_BYTES);
  out.writeUInt16BE(transactionId, 0);
  out.writeUInt16BE(MODBUS_PROTOCOL_ID, 2);
  out.writeUInt16BE(1 + pdu.length + RTU_CRC_BYTES, 4);
  out.writeUInt8(unitId, 6);
  pdu.copy(out, MBAP_HEADER_BYTES);
  out.writeUInt16LE(crc16(out, MBAP_PREFIX_BYTES, crcOffset), crcOffset);
  return out;
}

/** Parses one complete MBAP+CRC ADU, e.g. a test vector. */
export function parseMbapCrc(adu: Buffer): MbapCrcFrame | FrameError {
  if (adu.length < MBAP_PREFIX_BYTES) return new FrameError(`${adu.length} bytes cannot hold an MBAP header`);
  const size = mbapAduLength(adu, MBAP_CRC_MIN_LENGTH, MBAP_CRC_MAX_LENGTH);
  if (typeof size !== 'number') return size;
  if (size !== adu.length) return new FrameError(`MBAP announces ${size} bytes, buffer has ${adu.length}`);
  if (!hasValidCrc(adu.subarray(MBAP_PREFIX_BYTES))) return new FrameError('MBAP+CRC frame: CRC mismatch');
  return frameOf(Buffer.from(adu));
}
