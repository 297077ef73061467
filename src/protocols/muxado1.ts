/**
 * muxado v1 frame codec: the framing of github.com/inconshreveable/muxado as of the 2014 snapshot (Debian's
 * golang-github-inconshreveable-muxado-dev 0.0~git20140312), which is what ethransom/tcp-relay's services speak.
 * Pure: it knows bytes, never sockets. The session that gives frames their meaning lives in src/engines/relay/muxado1/.
 *
 * Every frame starts with an 8-byte header, big-endian (proto/frame/header.go, types.go):
 *
 *   offset 0  length    u16  low 14 bits (mask 0x3FFF): body bytes that follow; the top 2 bits are ignored on read
 *   offset 2  flags     u8   FIN 0x1, PRIORITY 0x2 (SYN only), TYPE 0x4 (SYN only)
 *   offset 3  type      u8   low 5 bits (mask 0x1F): 1 SYN, 2 RST, 3 DATA, 4 WNDINC, 6 GOAWAY; top 3 bits ignored
 *   offset 4  streamId  u32  low 31 bits; clients open odd ids starting at 3, servers even ids starting at 2; 0 = session
 *
 * Bodies:
 *   SYN     [priority u32 if PRIORITY][streamType u32 if TYPE]; length must be exactly 0, 4 or 8 to match the flags
 *   DATA    payload, 0..16383 bytes; FIN half-closes the sender's side (an empty DATA+FIN is the usual close)
 *   RST     errorCode u32; length must be 4
 *   WNDINC  increment u32 (low 31 bits); length must be 4
 *   GOAWAY  lastStreamId u32 (low 31 bits), errorCode u32, debug text
 *
 * Quirks of the reference implementation that the wire forces on us:
 * - Type 5 (STREAM_PRI) is defined but muxado's reader rejects it as an illegal frame type; so do we.
 * - muxado's GOAWAY writer puts `debug length + 16` in the length field but sends only `8 + debug length` body bytes
 *   (goaway.go: SetAll(TypeGoAway, len(debug)+goAwayFrameSize, ...) where goAwayFrameSize counts the header). Its
 *   session sends one before closing the connection on every Close(). We therefore read a GOAWAY whose length is >= 16 as
 *   muxado writes it (length - 8 body bytes) and one whose length is 8..15 literally. muxado's *reader* takes the length
 *   literally, so the GOAWAY we write has no debug text and length 8, which both readings agree on.
 */
import { FrameError } from '../errors.js';
import { type ByteQueue, type DecodeStep, QueueDecoder } from './framing.js';

/** length(2) + flags(1) + type(1) + streamId(4). */
export const HEADER_SIZE = 8;
/** The length field has 14 bits (types.go lengthMask 0x3FFF): no frame body is longer, and muxado splits writes to fit. */
export const MAX_FRAME_BODY = 0x3fff;
export const LENGTH_MASK = 0x3fff;
export const TYPE_MASK = 0x1f;
export const STREAM_ID_MASK = 0x7fff_ffff;
export const MAX_STREAM_ID = 0x7fff_ffff;
export const MAX_PRIORITY = 0x7fff_ffff;
export const WINDOW_INCREMENT_MASK = 0x7fff_ffff;
/** Every stream's window in both directions; there is no negotiation (proto/session.go defaultWindowSize 0x10000). */
export const DEFAULT_WINDOW = 0x1_0000;
/** Stream types at or above this are extension streams, routed to extensions instead of Accept() (session.go). */
export const MIN_EXTENSION_TYPE = 0xffff_ffff - 0x100;
/** The heartbeat extension's stream type: the first extension type (proto/ext/const.go). */
export const HEARTBEAT_STREAM_TYPE = MIN_EXTENSION_TYPE;
/** Heartbeat streams are opened with the highest priority (proto/ext/heartbeat.go). */
export const HEARTBEAT_PRIORITY = 0x7fff_ffff;
/** A heartbeat is a 4-byte big-endian id that the other side echoes unchanged (muxado itself always sends 0). */
export const HEARTBEAT_ID_SIZE = 4;
/** muxado's client and server both run the heartbeat with these (heartbeat.go NewDefaultHeartbeat). */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 3_000;
export const DEFAULT_HEARTBEAT_TOLERANCE_MS = 10_000;
/** A session's first stream id per side (session.go: lastId starts at 1 for a client and 0 for a server, then += 2). */
export const FIRST_CLIENT_STREAM_ID = 3;
export const FIRST_SERVER_STREAM_ID = 2;

export const FrameType = {
  SYN: 0x1,
  RST: 0x2,
  DATA: 0x3,
  WNDINC: 0x4,
  /** Defined by muxado but rejected by its reader. */
  PRI: 0x5,
  GOAWAY: 0x6,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const Flag = {
  /** DATA (or SYN): the sender will send nothing more on this stream. */
  FIN: 0x1,
  /** SYN: a 4-byte priority follows. */
  PRIORITY: 0x2,
  /** SYN: a 4-byte stream type follows (after the priority if both are set). */
  TYPE: 0x4,
} as const;

/** Error codes carried by RST and GOAWAY (proto/frame/error.go). muxado refuses to write a RST with a code >= 8. */
export const ResetCode = {
  NO_ERROR: 0,
  PROTOCOL_ERROR: 1,
  INTERNAL_ERROR: 2,
  FLOW_CONTROL_ERROR: 3,
  STREAM_CLOSED: 4,
  FRAME_SIZE_ERROR: 5,
  REFUSED_STREAM: 6,
  CANCEL: 7,
} as const;
export type ResetCode = (typeof ResetCode)[keyof typeof ResetCode];

const RST_BODY_SIZE = 4;
const WNDINC_BODY_SIZE = 4;
const GOAWAY_FIXED_BODY_SIZE = 8;
const SYN_FIELD_SIZE = 4;

export interface SynFrame {
  readonly kind: 'syn';
  readonly streamId: number;
  /** 0 when the PRIORITY flag is absent. muxado ignores priorities. */
  readonly priority: number;
  /** 0 when the TYPE flag is absent; >= MIN_EXTENSION_TYPE for extension streams. */
  readonly streamType: number;
  /** The opener half-closed the stream at once. */
  readonly fin: boolean;
}

export interface DataFrame {
  readonly kind: 'data';
  readonly streamId: number;
  readonly payload: Buffer;
  readonly fin: boolean;
}

export interface RstFrame {
  readonly kind: 'rst';
  readonly streamId: number;
  readonly errorCode: number;
}

export interface WndIncFrame {
  readonly kind: 'wndinc';
  readonly streamId: number;
  readonly increment: number;
}

export interface GoAwayFrame {
  readonly kind: 'goaway';
  /** The last stream id the sender accepted from us: our streams above it were never seen and are dead. */
  readonly lastStreamId: number;
  readonly errorCode: number;
  /** Free text from the sender (muxado puts the reason for closing here, e.g. "Session Close()"). */
  readonly debug: Buffer;
}

export type Muxado1Frame = SynFrame | DataFrame | RstFrame | WndIncFrame | GoAwayFrame;

const EMPTY = Buffer.alloc(0);

/** Writes an 8-byte header into `target` at `offset`; the caller guarantees the ranges. */
export function writeHeader(
  target: Buffer,
  offset: number,
  type: FrameType,
  flags: number,
  streamId: number,
  length: number,
): void {
  target.writeUInt16BE(length, offset);
  target.writeUInt8(flags, offset + 2);
  target.writeUInt8(type, offset + 3);
  target.writeUInt32BE(streamId, offset + 4);
}

function checkStreamId(streamId: number): void {
  if (!Number.isInteger(streamId) || streamId < 0 || streamId > MAX_STREAM_ID) {
    throw new RangeError(`muxado stream id ${streamId} out of range`);
  }
}

function checkU32(name: string, value: number, max = 0xffff_ffff): void {
  if (!Number.isInteger(value) || value < 0 || value > max) throw new RangeError(`muxado ${name} ${value} out of range`);
}

// Encoders throw RangeError only for arguments our own code chose; they never see bytes from the network.

/** SYN: opens `streamId`. Priority and type are only written when non-zero, as muxado does (syn.go). */
export function encodeSyn(streamId: number, options: { priority?: number; streamType?: number; fin?: boolean } = {}): Buffer {
  const { priority = 0, streamType = 0, fin = false } = options;
  checkStreamId(streamId);
  checkU32('priority', priority, MAX_PRIORITY);
  checkU32('stream type', streamType);
  let flags = fin ? Flag.FIN : 0;
  let length = 0;
  if (priority !== 0) {
    flags |= Flag.PRIORITY;
    length += SYN_FIELD_SIZE;
  }
  if (streamType !== 0) {
    flags |= Flag.TYPE;
    length += SYN_FIELD_SIZE;
  }
  const frame = Buffer.allocUnsafe(HEADER_SIZE + length);
  writeHeader(frame, 0, FrameType.SYN, flags, streamId, length);
  let offset = HEADER_SIZE;
  if (priority !== 0) offset = frame.writeUInt32BE(priority, offset);
  if (streamType !== 0) frame.writeUInt32BE(streamType, offset);
  return frame;
}

/** The 8-byte header of a DATA frame; the payload is written after it as is (no copy). */
export function encodeDataHeader(streamId: number, length: number, fin = false): Buffer {
  checkStreamId(streamId);
  if (!Number.isInteger(length) || length < 0 || length > MAX_FRAME_BODY) {
    throw new RangeError(`muxado DATA length ${length} out of range (max ${MAX_FRAME_BODY})`);
  }
  const header = Buffer.allocUnsafe(HEADER_SIZE);
  writeHeader(header, 0, FrameType.DATA, fin ? Flag.FIN : 0, streamId, length);
  return header;
}

/** A whole DATA frame in one Buffer (copies the payload; the session writes header and payload separately instead). */
export function encodeData(streamId: number, payload: Buffer, fin = false): Buffer {
  const header = encodeDataHeader(streamId, payload.length, fin);
  return Buffer.concat([header, payload], HEADER_SIZE + payload.length);
}

export function encodeRst(streamId: number, errorCode: number): Buffer {
  checkStreamId(streamId);
  checkU32('error code', errorCode);
  const frame = Buffer.allocUnsafe(HEADER_SIZE + RST_BODY_SIZE);
  writeHeader(frame, 0, FrameType.RST, 0, streamId, RST_BODY_SIZE);
  frame.writeUInt32BE(errorCode, HEADER_SIZE);
  return frame;
}

export function encodeWndInc(streamId: number, increment: number): Buffer {
  checkStreamId(streamId);
  checkU32('window increment', increment, WINDOW_INCREMENT_MASK);
  const frame = Buffer.allocUnsafe(HEADER_SIZE + WNDINC_BODY_SIZE);
  writeHeader(frame, 0, FrameType.WNDINC, 0, streamId, WNDINC_BODY_SIZE);
  frame.writeUInt32BE(increment, HEADER_SIZE);
  return frame;
}

/**
 * GOAWAY with no debug text and length 8: the one form that muxado's reader and its writer's length convention agree on
 * (see the file comment), so it is read the same by muxado and by our own decoder.
 */
export function encodeGoAway(lastStreamId: number, errorCode: number): Buffer {
  checkStreamId(lastStreamId);
  checkU32('error code', errorCode);
  const frame = Buffer.allocUnsafe(HEADER_SIZE + GOAWAY_FIXED_BODY_SIZE);
  writeHeader(frame, 0, FrameType.GOAWAY, 0, 0, GOAWAY_FIXED_BODY_SIZE);
  frame.writeUInt32BE(lastStreamId, HEADER_SIZE);
  frame.writeUInt32BE(errorCode, HEADER_SIZE + 4);
  return frame;
}

/** Encodes any frame (tests, simulators). A GOAWAY's debug text is not sent: see encodeGoAway. */
export function encodeFrame(frame: Muxado1Frame): Buffer {
  switch (frame.kind) {
    case 'syn':
      return encodeSyn(frame.streamId, frame);
    case 'data':
      return encodeData(frame.streamId, frame.payload, frame.fin);
    case 'rst':
      return encodeRst(frame.streamId, frame.errorCode);
    case 'wndinc':
      return encodeWndInc(frame.streamId, frame.increment);
    case 'goaway':
      return encodeGoAway(frame.lastStreamId, frame.errorCode);
  }
}

/**
 * Incremental decoder: push() whatever the socket read, get back the complete frames. Never throws on network bytes: a
 * malformed frame ends the stream with a FrameError (SWB_ERR_FRAME), after which the decoder stays dead. Holds at most
 * one frame (8 + 16383 bytes): the 14-bit length field cannot announce more.
 */
export class Muxado1Decoder extends QueueDecoder<Muxado1Frame> {
  protected decodeNext(queue: ByteQueue): DecodeStep<Muxado1Frame> {
    const header = queue.peek(HEADER_SIZE);
    if (header === undefined) return undefined;
    const length = header.readUInt16BE(0) & LENGTH_MASK;
    const flags = header.readUInt8(2);
    const type = header.readUInt8(3) & TYPE_MASK;
    const streamId = header.readUInt32BE(4) & STREAM_ID_MASK;

    // Structural checks that need only the header come first, so a bad frame fails without waiting for its body.
    let bodyLength = length;
    switch (type) {
      case FrameType.SYN: {
        const expected =
          (flags & Flag.PRIORITY ? SYN_FIELD_SIZE : 0) + (flags & Flag.TYPE ? SYN_FIELD_SIZE : 0);
        // syn.go parseFields: "Expected length %d for flags %v"
        if (length !== expected) return new FrameError(`muxado SYN length ${length}, flags 0x${flags.toString(16)} need ${expected}`);
        break;
      }
      case FrameType.DATA:
        break;
      case FrameType.RST:
        // rst.go: "STREAM_RST length must be 4"
        if (length !== RST_BODY_SIZE) return new FrameError(`muxado RST length ${length}, must be ${RST_BODY_SIZE}`);
        break;
      case FrameType.WNDINC:
        if (length !== WNDINC_BODY_SIZE) return new FrameError(`muxado WNDINC length ${length}, must be ${WNDINC_BODY_SIZE}`);
        break;
      case FrameType.GOAWAY:
        if (length < GOAWAY_FIXED_BODY_SIZE) {
          return new FrameError(`muxado GOAWAY length ${length}, at least ${GOAWAY_FIXED_BODY_SIZE}`);
        }
        // muxado's writer counts the 8 header bytes in a GOAWAY's length (see the file comment).
        if (length >= HEADER_SIZE + GOAWAY_FIXED_BODY_SIZE) bodyLength = length - HEADER_SIZE;
        break;
      default:
        // transport.go ReadFrame: "Illegal frame type" (this includes type 5, STREAM_PRI).
        return new FrameError(`muxado frame type ${type} is not one muxado v1 reads`);
    }

    if (queue.length < HEADER_SIZE + bodyLength) return undefined;
    const whole = queue.take(HEADER_SIZE + bodyLength);
    const body = whole.subarray(HEADER_SIZE);
    const fin = (flags & Flag.FIN) !== 0;

    switch (type) {
      case FrameType.SYN: {
        let offset = 0;
        let priority = 0;
        let streamType = 0;
        if (flags & Flag.PRIORITY) {
          priority = body.readUInt32BE(offset);
          offset += SYN_FIELD_SIZE;
        }
        if (flags & Flag.TYPE) streamType = body.readUInt32BE(offset);
        return { kind: 'syn', streamId, priority, streamType, fin };
      }
      case FrameType.DATA:
        return { kind: 'data', streamId, payload: body.length === 0 ? EMPTY : body, fin };
      case FrameType.RST:
        return { kind: 'rst', streamId, errorCode: body.readUInt32BE(0) };
      case FrameType.WNDINC:
        return { kind: 'wndinc', streamId, increment: body.readUInt32BE(0) & WINDOW_INCREMENT_MASK };
      default:
        return {
          kind: 'goaway',
          lastStreamId: body.readUInt32BE(0) & STREAM_ID_MASK,
          errorCode: body.readUInt32BE(4),
          debug: body.subarray(GOAWAY_FIXED_BODY_SIZE),
        };
    }
  }
}
