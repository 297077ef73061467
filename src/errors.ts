/**
 * Every error switchboard raises or reports carries a stable `code` (fastify's FST_ERR_… style), so tests assert codes and
 * operators can grep logs for them. Message text is for people and may change; codes may not.
 */
export const ErrorCodes = {
  /** A setting is missing, malformed or contradicts another one. */
  CONFIG: 'SWB_ERR_CONFIG',
  /** Bytes from the network do not form a valid frame of the protocol (bad header, bad checksum, bad field). */
  FRAME: 'SWB_ERR_FRAME',
  /** A frame, line or header announces or reaches a size beyond its bound. */
  FRAME_TOO_LARGE: 'SWB_ERR_FRAME_TOO_LARGE',
  /** A groups-mode client's first line is not a valid join line. */
  JOIN: 'SWB_ERR_JOIN',
  /** A receiver fell too far behind (SLOW_CLIENT). */
  SLOW_CLIENT: 'SWB_ERR_SLOW_CLIENT',
  /** A listener could not bind its address. */
  LISTEN: 'SWB_ERR_LISTEN',
  /** An outgoing connection (upstream, dialled member, relay) failed. */
  CONNECT: 'SWB_ERR_CONNECT',
  /** A protocol peer broke the rules of a session (yamux, muxado, control messages). */
  PROTOCOL: 'SWB_ERR_PROTOCOL',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class SwitchboardError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SwitchboardError';
    this.code = code;
  }
}

/**
 * What a pure codec returns instead of throwing when network bytes are bad. Decoders never throw on input from the network;
 * the engine turns a FrameError into a reply (a Modbus exception, an HTTP 400) or a close.
 */
export class FrameError extends SwitchboardError {
  constructor(message: string, code: typeof ErrorCodes.FRAME | typeof ErrorCodes.FRAME_TOO_LARGE = ErrorCodes.FRAME) {
    super(code, message);
    this.name = 'FrameError';
  }
}
