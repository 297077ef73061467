/**
 * What mux mode needs to know about each PROTOCOL (DESIGN §5), on top of the pure codecs in src/protocols/: how to frame
 * both directions, whether replies carry the request's id, whether a reply can answer a request, and what a client is told
 * when the gateway fails (a Modbus exception, or nothing: the client is closed, because skipping one answer would shift
 * every later answer onto the wrong request).
 */
import type { MuxConfig, MuxProtocol } from '../../config/modes/mux.js';
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
import { rtuTargetFramer } from './rtu-framer.js';

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
   * any doubt (or, with quietAfterTimeoutMs, given a quiet gap).
   */
  readonly correlated: boolean;
  clientDecoder(): FrameDecoder<MuxFrame>;
  upstreamDecoder(): FrameDecoder<MuxFrame>;
  /**
   * The bytes to send upstream. `upstreamId` is the rewritten transaction id (correlated framers only); `upstreamUnit` is
   * the unit id the device must see (UNIT_MAP applied; the request's own unit id when unmapped).
   */
  encodeRequest(request: MuxFrame, upstreamId: number, upstreamUnit: number): Buffer;
  /** The bytes to send the client, with its own ids back (its own transaction id and its own, unmapped, unit id). */
  encodeReply(request: MuxFrame, reply: MuxFrame): Buffer;
  /**
   * Whether `reply` can be the answer to `request` sent as `upstreamUnit` (DESIGN §5: unit id, function code or
   * code | 0x80; the unit id compared is the mapped one the device saw).
   */
  matches(request: MuxFrame, reply: MuxFrame, upstreamUnit: number): boolean;
  /** A device exception (passed through unchanged, counted as outcome `exception`). */
  isException(reply: MuxFrame): boolean;
  /**
   * The answer for a gateway failure or a refusal (a Modbus exception code: 0x0A, 0x0B, 0x06, or 0x01 for a refused
   * request), or undefined when the protocol has none and the client is closed instead.
   */
  failure(request: MuxFrame, code: number): Buffer | undefined;
  /** What a client whose framing broke is sent before it is closed (RTU: 0x01 for a function code with no length). */
  frameErrorReply(error: FrameError): Buffer | undefined;
  /**
   * Optional: a Modbus exception code to answer `request` with at once instead of queueing it (e.g. an RTU target cannot
   * carry a function whose reply length is unknown). Checked after READ_ONLY/WRITE_ALLOW; the answer is
   * failure(request, code) and the outcome `rejected`. The request never reaches the device.
   */
  refuse?(request: MuxFrame, upstreamUnit: number): number | undefined;
  /**
   * Optional: when this returns bytes, the request is still written upstream at its turn (encodeRequest), but no reply
   * is awaited: it is completed at once with these bytes, which go to the client exactly as returned (so they carry the
   * client's own transaction id and unit id), outcome `ok`. The exchange counts as ended when it is written
   * (REQUEST_GAP_MS and the quiet gap still apply). RTU broadcasts: unit 0 writes get the normal write response locally.
   */
  localReply?(request: MuxFrame, upstreamUnit: number): Buffer | undefined;
  /**
   * Optional, uncorrelated framers only: after an upstream timeout the connection is kept, nothing is sent for this
   * long, and every byte the upstream sends meanwhile is discarded (counted in stray_replies_total once per quiet period
   * that received any); then a fresh upstream decoder starts. Without it a timeout resets the connection. Malformed
   * replies and closes reset either way; UPSTREAM_MAX_TIMEOUTS consecutive timeouts still reset.
   */
  readonly quietAfterTimeoutMs?: number;
  /**
   * Optional: the same quiet period after a request answered by localReply (an RTU broadcast): the serial line's
   * "turnaround delay", during which every device on the bus processes the broadcast and none can take a request.
   */
  readonly quietAfterLocalReplyMs?: number;
}

const modbusFields = (frame: MuxFrame) => frame as ModbusTcpFrame;

/** isResponseTo() with the unit id the device was asked as (UNIT_MAP applied). */
const matchesAsUnit = (request: MuxFrame, reply: MuxFrame, upstreamUnit: number) =>
  isResponseTo({ unitId: upstreamUnit, functionCode: request.functionCode! }, modbusFields(reply));

/** Modbus TCP both ways: transaction ids rewritten upstream and restored on the way back. */
const modbus: MuxFramer = {
  protocol: 'modbus',
  correlated: true,
  clientDecoder: () => new ModbusTcpDecoder(),
  upstreamDecoder: () => new ModbusTcpDecoder(),
  // The frame owns its raw bytes (framing.ts), so rewriting in place saves a copy; its parsed fields keep the client's ids.
  encodeRequest: (request, upstreamId, upstreamUnit) =>
    rewriteIds(modbusFields(request), upstreamId, upstreamUnit, { inPlace: true }).raw,
  // The client's own transaction id and unit id (UNIT_MAP is undone here: the device answered as the mapped unit).
  encodeReply: (request, reply) =>
    rewriteIds(modbusFields(reply), request.transactionId!, request.unitId!, { inPlace: true }).raw,
  matches: (request, reply, upstreamUnit) => matchesAsUnit(request, reply, upstreamUnit),
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
  matches: (request, reply, upstreamUnit) => matchesAsUnit(request, reply, upstreamUnit),
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
  matches: (request, reply, upstreamUnit) => matchesAsUnit(request, reply, upstreamUnit),
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

/** The framer for a mux configuration: PROTOCOL, and for modbus the TARGET kind (an `rtu:` target translates). */
export function framerFor(config: Pick<MuxConfig, 'protocol' | 'target' | 'upstreamTimeoutMs'>): MuxFramer {
  const { protocol } = config;
  switch (protocol) {
    case 'modbus':
      return config.target.kind === 'rtu' ? rtuTargetFramer(config) : modbus;
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
      // Unreachable: engines/index.ts gives PROTOCOL=http its own streaming engine (engines/mux/http/).
      throw new Error('PROTOCOL=http is served by HttpMuxEngine, not by a message framer');
  }
}
