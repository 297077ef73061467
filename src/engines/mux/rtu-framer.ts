/**
 * `TARGET=rtu:host:port` (DESIGN §5): clients speak Modbus TCP, the target is an RS-485 gateway in transparent mode that
 * puts our bytes on the bus as they are and sends back what the bus answers, so the target speaks Modbus RTU over TCP.
 * switchboard translates: MBAP dropped and CRC16 appended on the way up, CRC checked and MBAP restored (the client's own
 * transaction id and unit id) on the way back.
 *
 * RTU has no transaction id, so the dispatcher runs one exchange at a time (`correlated: false`) and a reply is accepted
 * only if its unit id and function code match. Three rules come from the serial line (Modbus over Serial Line V1.02):
 * - The reply's length must be derivable from its function code, or the frame end cannot be found on a byte stream:
 *   requests whose reply cannot be framed (user-defined codes, 43 other than MEI 14, e.g. 43/13) get 0x01 and are never sent.
 * - Unit 0 is a broadcast (§2.2): no device answers it. Writes are sent and answered here with the normal write response,
 *   then the bus gets a turnaround delay (§2.4.1, RTU_BROADCAST_TURNAROUND_MS) to process it; anything else to unit 0 (a
 *   read expects an answer nobody will give) gets 0x0B at once.
 * - After a timeout, the device may still answer. The connection is kept (gateways often take one connection, and a new
 *   one would not stop the bus reply anyway) but nothing is sent for a quiet gap, and whatever arrives in it is discarded,
 *   so the late reply cannot be taken for the next request's. See RTU_QUIET_GAP_MS.
 */
import type { MuxConfig } from '../../config/modes/mux.js';
import { encodeRtu, RTU_BROADCAST_ADDRESS, RtuResponseDecoder, rtuResponseLengthKnown } from '../../protocols/modbus-rtu.js';
import {
  encodeModbusTcp,
  ExceptionCode,
  exceptionResponse,
  isException,
  isResponseTo,
  ModbusTcpDecoder,
  writeResponsePdu,
  type ModbusTcpFrame,
} from '../../protocols/modbus-tcp.js';
import type { MuxFrame, MuxFramer } from './framers.js';

/**
 * The quiet gap after a timeout: a quarter of UPSTREAM_TIMEOUT_MS, between 100 ms and 1 s. A device that missed a 2 s
 * timeout is usually late by less than half a second (its cycle time); a 256-byte frame at 9600 baud takes 270 ms. A
 * reply later than the gap can still arrive during the next exchange; then its unit id and function code must also match
 * the next request and its CRC be valid for it to be taken, which is the residual risk of any RTU master.
 */
export function rtuQuietGapMs(upstreamTimeoutMs: number): number {
  return Math.min(1000, Math.max(100, Math.round(upstreamTimeoutMs / 4)));
}

/** Modbus over Serial Line V1.02 §2.4.1: after a broadcast, a turnaround delay of typically 100 to 200 ms. */
export const RTU_BROADCAST_TURNAROUND_MS = 150;

const tcp = (frame: MuxFrame) => frame as ModbusTcpFrame;

export function rtuTargetFramer(config: Pick<MuxConfig, 'upstreamTimeoutMs'>): MuxFramer {
  return {
    protocol: 'modbus',
    correlated: false,
    clientDecoder: () => new ModbusTcpDecoder(),
    upstreamDecoder: () => new RtuResponseDecoder(),
    encodeRequest: (request, _upstreamId, upstreamUnit) => encodeRtu(upstreamUnit, tcp(request).pdu),
    encodeReply: (request, reply) => encodeModbusTcp(request.transactionId!, request.unitId!, tcp(reply).pdu),
    matches: (request, reply, upstreamUnit) =>
      isResponseTo({ unitId: upstreamUnit, functionCode: request.functionCode! }, tcp(reply)),
    isException: (reply) => isException(reply.functionCode!),
    failure: (request, code) => exceptionResponse(tcp(request), code),
    frameErrorReply: () => undefined,
    refuse: (request, upstreamUnit) => {
      const { pdu } = tcp(request);
      if (upstreamUnit === RTU_BROADCAST_ADDRESS) {
        // A broadcast write is answered locally (localReply); nothing else to unit 0 will ever get an answer.
        return writeResponsePdu(pdu) === undefined ? ExceptionCode.GATEWAY_TARGET_FAILED_TO_RESPOND : undefined;
      }
      return rtuResponseLengthKnown(request.functionCode!, pdu[1]) ? undefined : ExceptionCode.ILLEGAL_FUNCTION;
    },
    localReply: (request, upstreamUnit) => {
      if (upstreamUnit !== RTU_BROADCAST_ADDRESS) return undefined;
      const response = writeResponsePdu(tcp(request).pdu);
      return response && encodeModbusTcp(request.transactionId!, request.unitId!, response);
    },
    quietAfterTimeoutMs: rtuQuietGapMs(config.upstreamTimeoutMs),
    quietAfterLocalReplyMs: RTU_BROADCAST_TURNAROUND_MS,
  };
}
