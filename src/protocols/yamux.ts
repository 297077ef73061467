/**
 * hashicorp yamux frame codec (spec.md and const.go of github.com/hashicorp/yamux). Pure: it knows bytes, never sockets.
 * The session that gives frames their meaning lives in src/engines/relay/yamux/.
 *
 * Every frame starts with a 12-byte header, all fields big-endian (spec "Framing"):
 *
 *   offset 0  version   u8   always 0
 *   offset 1  type      u8   0 data, 1 window update, 2 ping, 3 go away
 *   offset 2  flags     u16  SYN 0x1, ACK 0x2, FIN 0x4, RST 0x8
 *   offset 4  streamId  u32  odd from the client, even from the server, 0 for the session (ping, go away)
 *   offset 8  length    u32  data: payload bytes that follow; window update: window delta; ping: opaque value echoed
 *                            back; go away: error code
 *
 * Only data frames carry a payload.
 */
import { ErrorCodes, FrameError } from '../errors.js';

/** The only protocol version (spec "Version Field"). */
export const YAMUX_VERSION = 0;

/** version(1) + type(1) + flags(2) + streamId(4) + length(4). */
export const HEADER_SIZE = 12;

export const FrameType = {
  /** Payload of `length` bytes follows; may be empty when it only carries flags. */
  Data: 0,
  /** `length` is a delta added to the sender's window for the stream. */
  WindowUpdate: 1,
  /** Keepalive / RTT; `length` is an opaque value the peer echoes back with ACK. Stream id 0. */
  Ping: 2,
  /** Session termination; `length` is a GoAwayCode. Stream id 0. */
  GoAway: 3,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const Flag = {
  /** Opens a stream (with data or window update); on a ping: a request. */
  SYN: 0x1,
  /** Accepts a stream; on a ping: the response. */
  ACK: 0x2,
  /** Half-close: the sender will send no more data on the stream. */
  FIN: 0x4,
  /** Hard close (or refusal) of a stream. */
  RST: 0x8,
} as const;

export const GoAwayCode = {
  Normal: 0,
  ProtocolError: 1,
  InternalError: 2,
} as const;
export type GoAwayCode = (typeof GoAwayCode)[keyof typeof GoAwayCode];

/** Stream id of session-level frames (ping, go away). */
export const SESSION_STREAM_ID = 0;
/** Largest stream id (u32). */
export const MAX_STREAM_ID = 0xffff_ffff;
/** Largest value of the u32 length field (window deltas, ping opaque values). */
export const MAX_LENGTH_FIELD = 0xffff_ffff;
/** Every stream starts with this receive window in both directions (spec "Flow Control"): 256 KiB. */
export const INITIAL_STREAM_WINDOW = 256 * 1024;
/**
 * Default bound on a data frame's payload. A peer may send a frame as large as the window we granted it, so a session
 * passes its own window here; this constant bounds the largest window switchboard ever grants.
 */
export const MAX_DATA_FRAME_BYTES = 16 * 1024 * 1024;

export interface FrameHeader {
  version: number;
  type: FrameType;
  flags: number;
  streamId: number;
  length: number;
}

export interface YamuxFrame {
  header: FrameHeader;
  /** The data frame's payload (`header.length` bytes); empty for every other type. */
  payload: Buffer;
}

export interface DecodeResult {
  frames: YamuxFrame[];
  /** Set when the bytes cannot be yamux; the decoder then stays failed and the session must close. */
  error?: FrameError;
}

const EMPTY = Buffer.alloc(0);

/** Reads a header from 12 bytes at `offset`; no validation (see YamuxDecoder for that). */
export function readHeader(source: Buffer, offset = 0): FrameHeader {
  return {
    version: source.readUInt8(offset),
    type: source.readUInt8(offset + 1) as FrameType,
    flags: source.readUInt16BE(offset + 2),
    streamId: source.readUInt32BE(offset + 4),
    length: source.readUInt32BE(offset + 8),
  };
}

/** Writes a 12-byte header into `target` at `offset` and returns the offset after it. */
export function writeHeader(
  target: Buffer,
  offset: number,
  type: FrameType,
  flags: number,
  streamId: number,
  length: number,
): number {
  target.writeUInt8(YAMUX_VERSION, offset);
  target.writeUInt8(type, offset + 1);
  target.writeUInt16BE(flags, offset + 2);
  target.writeUInt32BE(streamId, offset + 4);
  target.writeUInt32BE(length, offset + 8);
  return offset + HEADER_SIZE;
}

/** A standalone header in a fresh 12-byte Buffer. */
export function encodeHeader(type: FrameType, flags: number, streamId: number, length: number): Buffer {
  const header = Buffer.allocUnsafe(HEADER_SIZE);
  writeHeader(header, 0, type, flags, streamId, length);
  return header;
}

/** Header of a data frame; the caller writes the `length` payload bytes right after it. */
export function encodeDataHeader(streamId: number, flags: number, length: number): Buffer {
  return encodeHeader(FrameType.Data, flags, streamId, length);
}

/** A whole data frame (header and payload) in one Buffer, for small frames and tests. */
export function encodeDataFrame(streamId: number, flags: number, payload: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_SIZE + payload.length);
  writeHeader(frame, 0, FrameType.Data, flags, streamId, payload.length);
  payload.copy(frame, HEADER_SIZE);
  return frame;
}

export function encodeWindowUpdate(streamId: number, flags: number, delta: number): Buffer {
  return encodeHeader(FrameType.WindowUpdate, flags, streamId, delta);
}

/** A ping request (`Flag.SYN`) or response (`Flag.ACK`, echoing the request's opaque value). */
export function encodePing(flags: number, opaque: number): Buffer {
  return encodeHeader(FrameType.Ping, flags, SESSION_STREAM_ID, opaque);
}

export function encodeGoAway(code: GoAwayCode): Buffer {
  return encodeHeader(FrameType.GoAway, 0, SESSION_STREAM_ID, code);
}

export interface YamuxDecoderOptions {
  /** Largest data payload accepted; a longer one is a FRAME_TOO_LARGE error. Default MAX_DATA_FRAME_BYTES. */
  maxDataBytes?: number;
}

/**
 * Incremental, socket-free decoder: `push(chunk)` returns every frame completed by the chunk. Payloads that lie inside one
 * chunk are zero-copy slices of it; a payload split across chunks is copied once into a Buffer of its exact size.
 * Bad bytes yield a typed FrameError (never a throw), after which the decoder stays failed: yamux has no way to resync.
 */
export class YamuxDecoder {
  readonly maxDataBytes: number;
  private readonly chunks: Buffer[] = [];
  private bufferedBytes = 0;
  /** Header of the data frame whose payload is still arriving. */
  private pendingHeader: FrameHeader | undefined;
  private failure: FrameError | undefined;

  constructor(options: YamuxDecoderOptions = {}) {
    this.maxDataBytes = options.maxDataBytes ?? MAX_DATA_FRAME_BYTES;
  }

  /** Bytes received but not yet returned as frames (bounded by HEADER_SIZE + maxDataBytes). */
  get buffered(): number {
    return this.bufferedBytes;
  }

  push(chunk: Buffer): DecodeResult {
    if (this.failure) return { frames: [], error: this.failure };
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.bufferedBytes += chunk.length;
    }
    const frames: YamuxFrame[] = [];
    for (;;) {
      if (!this.pendingHeader) {
        if (this.bufferedBytes < HEADER_SIZE) break;
        const header = readHeader(this.take(HEADER_SIZE));
        const error = this.validate(header);
        if (error) {
          this.failure = error;
          this.chunks.length = 0;
          this.bufferedBytes = 0;
          return { frames, error };
        }
        if (header.type !== FrameType.Data || header.length === 0) {
          frames.push({ header, payload: EMPTY });
          continue;
        }
        this.pendingHeader = header;
      }
      const header = this.pendingHeader;
      if (this.bufferedBytes < header.length) break;
      frames.push({ header, payload: this.take(header.length) });
      this.pendingHeader = undefined;
    }
    return { frames };
  }

  private validate(header: FrameHeader): FrameError | undefined {
    if (header.version !== YAMUX_VERSION) {
      return new FrameError(`yamux: unsupported version ${header.version}`);
    }
    if (header.type > FrameType.GoAway) {
      return new FrameError(`yamux: unknown frame type ${header.type}`);
    }
    if (header.type === FrameType.Data && header.length > this.maxDataBytes) {
      return new FrameError(
        `yamux: data frame of ${header.length} bytes exceeds ${this.maxDataBytes}`,
        ErrorCodes.FRAME_TOO_LARGE,
      );
    }
    return undefined;
  }

  /** Removes `size` buffered bytes (size <= bufferedBytes): a slice when one chunk holds them, else one copy. */
  private take(size: number): Buffer {
    this.bufferedBytes -= size;
    const first = this.chunks[0] as Buffer;
    if (first.length > size) {
      this.chunks[0] = first.subarray(size);
      return first.subarray(0, size);
    }
    if (first.length === size) {
      this.chunks.shift();
      return first;
    }
    const out = Buffer.allocUnsafe(size);
    let written = 0;
    while (written < size) {
      const chunk = this.chunks[0] as Buffer;
      const wanted = size - written;
      if (chunk.length <= wanted) {
        chunk.copy(out, written);
        written += chunk.length;
        this.chunks.shift();
      } else {
        chunk.copy(out, written, 0, wanted);
        this.chunks[0] = chunk.subarray(wanted);
        written += wanted;
      }
    }
    return out;
  }
}
