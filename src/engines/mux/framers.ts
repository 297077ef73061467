/**
 * What mux mode needs to know about each PROTOCOL (DESIGN §5), on top of the pure codecs in src/protocols/: how to frame
 * both directions, whether replies carry the request's id, whether a reply can answer a request, and what a client is told
 * when the gateway fails (a Modbus exception, or nothing: the client is closed, because skipping one answer would shift
 * every later answer onto the wrong request).
 */
import type { MuxProtocol } from '../../config/modes/mux.js';
import type { FrameError } from '../../errors.js';
import type { FrameDecoder, RawFrame } from '../../protocols/framing.js';
import { Iso8583Decoder } from '../../protocols/iso8583.js';
import { LineDecoder } from '../../protocols/lines.js';
import { encodeMbapCrc, MbapCrcDecoder } from '../../protocols/mbap-crc.js';
import { RtuRequestDecoder, RtuResponseDecoder, rtuExceptionResponse, UnknownFunctionError } from '../../protocols/modbus-rtu.js';
import {
  ExceptionCode,
  exceptionPdu,
  exceptionResponse,
  isException,
  isResponseTo,
  ModbusTcpDecoder,
  rewriteIds,
  type ModbusTcpFrame,
} from '../../protocols/modbus-tcp.js';
import { MpuDecoder } from '../../protocols/mpu.js';

/** Any frame of any mux protocol; the Modbus fields are present for the Modbus framers. */
export type MuxFrame = RawFrame & {
  readonly transactionId?: number;
  readonly unitId?: number;
  readonly functionCode?: number;
};

/** Gateway failures a client can be told about (Modbus V1.1b3 §7 codes). */
export type GatewayFailure =
  | typeof ExceptionCode.GATEWAY_PATH_UNAVAILABLE
  | typeof ExceptionCode.GATEWAY_TARGET_FAILED_TO_RESPOND
  | typeof ExceptionCode.SERVER_DEVICE_BUSY;

export interface MuxFramer {
  readonly protocol: MuxProtocol;
  /**
   * Replies carry the request's id (the Modbus TCP transaction id), so several requests can be outstanding and a late or
   * stray reply is recognised and dropped. Without it there is one exchange at a time and the upstream is redialled after
   * any doubt.
   */
  readonly correlated: boolean;
  clientDecoder(): FrameDecoder<MuxFrame>;
  upstreamDecoder(): FrameDecoder<MuxFrame>;
  /** The bytes to send upstream; `upstreamId` is the rewritten transaction id (correlated framers only). */
  encodeRequest(request: MuxFrame, upstreamId: number): Buffer;
  /** The bytes to send the client, with its own ids back. */
  encodeReply(request: MuxFrame, reply: MuxFrame): Buffer;
  /** Whether `reply` can be the answer to `request` (DESIGN §5: unit id, function code or code | 0x80). */
  matches(request: MuxFrame, reply: MuxFrame): boolean;
  /** A device exception (passed through unchanged, counted as outcome `exception`). */
  isException(reply: MuxFrame): boolean;
  /** The answer for a gateway failure, or undefined when the protocol has none and the client is closed instead. */
  failure(request: MuxFrame, code: GatewayFailure): Buffer | undefined;
  /** What a client whose framing broke is sent before it is closed (RTU: 0x01 for a function code with no length). */
  frameErrorReply(error: FrameError): Buffer | undefined;
}

const modbusFields = (frame: MuxFrame) => frame as ModbusTcpFrame;

/** Modbus TCP both ways: transaction ids rewritten upstream and restored on the way back. */
const modbus: MuxFramer = {
  protocol: 'modbus',
  correlated: true,
  clientDecoder: () => new ModbusTcpDecoder(),
  upstreamDecoder: () => new ModbusTcpDecoder(),
  // The frame owns its raw bytes (framing.ts), so rewriting in place saves a copy; its parsed fields keep the client's ids.
  encodeRequest: (request, upstreamId) => rewriteIds(modbusFields(request), upstreamId, request.unitId!, { inPlace: true }).raw,
  encodeReply: (request, reply) =>
    rewriteIds(modbusFields(reply), request.transactionId!, request.unitId!, { inPlace: true }).raw,
  matches: (request, reply) => isResponseTo(modbusFields(request), modbusFields(reply)),
  isException: (reply) => isException(reply.functionCode!),
  failure: (request, code) => exceptionResponse(modbusFields(request), code),
  frameErrorReply: () => undefined,
};

/** tcp-multiplexer's `modbus-serial`: raw RTU frames (address, PDU, CRC) both ways, one exchange at a time. */
const modbusSerial: MuxFramer = {
  protocol: 'modbus-serial',
  correlated: false,
  clientDecoder: () => new RtuRequestDecoder(),
  upstreamDecoder: () => new RtuResponseDecoder(),
  encodeRequest: (request) => request.raw,
  encodeReply: (_request, reply) => reply.raw,
  matches: (request, reply) => isResponseTo(modbusFields(request), modbusFields(reply)),
  isException: (reply) => isException(reply.functionCode!),
  failure: (request, code) => rtuExceptionResponse({ unitId: request.unitId!, functionCode: request.functionCode! }, code),
  frameErrorReply: (error) =>
    error instanceof UnknownFunctionError
      ? rtuExceptionResponse({ unitId: error.unitId, functionCode: error.functionCode }, ExceptionCode.ILLEGAL_FUNCTION)
      : undefined,
};

/**
 * tcp-multiplexer's `modbus-rtu`: MBAP + PDU + CRC both ways. tcp-multiplexer forwards these unchanged and never looks at
 * the transaction id; so do we (one exchange at a time), but unit id and function code must match.
 */
const modbusRtu: MuxFramer = {
  protocol: 'modbus-rtu',
  correlated: false,
  clientDecoder: () => new MbapCrcDecoder(),
  upstreamDecoder: () => new MbapCrcDecoder(),
  encodeRequest: (request) => request.raw,
  encodeReply: (_request, reply) => reply.raw,
  matches: (request, reply) => isResponseTo(modbusFields(request), modbusFields(reply)),
  isException: (reply) => isException(reply.functionCode!),
  failure: (request, code) => encodeMbapCrc(request.transactionId!, request.unitId!, exceptionPdu(request.functionCode!, code)),
  frameErrorReply: () => undefined,
};

/** Framers whose messages carry no ids and have no error message: echo lines, ISO 8583, MPU. */
function opaque(protocol: MuxProtocol, decoder: () => FrameDecoder<MuxFrame>): MuxFramer {
  return {
    protocol,
    correlated: false,
    clientDecoder: decoder,
    upstreamDecoder: decoder,
    encodeRequest: (request) => request.raw,
    encodeReply: (_request, reply) => reply.raw,
    matches: () => true,
    isException: () => false,
    failure: () => undefined,
    frameErrorReply: () => undefined,
  };
}

export function framerFor(protocol: MuxProtocol): MuxFramer {
  switch (protocol) {
    case 'modbus':
      return modbus;
    case 'modbus-serial':
      return modbusSerial;
    case 'modbus-rtu':
      return modbusRtu;
    case 'echo':
      return opaque('echo', () => new LineDecoder());
    case 'iso8583':
      return opaque('iso8583', () => new Iso8583Decoder());
    case 'mpu':
      return opaque('mpu', () => new MpuDecoder());
    case 'http':
      throw new Error('PROTOCOL=http has no mux framer in this build (issue 7)');
  }
}
