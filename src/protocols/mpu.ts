/**
 * `mpu` framing (MPU switch flavour of ISO 8583): 4 ASCII decimal digits giving the message length, then the message;
 * the header does not count itself.
 *
 * tcp-multiplexer (pkg/message/mpu.go) parses the header with Go's strconv.Atoi, which also accepts "+123" and "-123";
 * a negative length then reaches make([]byte, length) and panics the whole process. It also reads with a single
 * conn.Read, losing frames split across segments. Here only the bytes '0'-'9' are a length; anything else is an error.
 */
import { ErrorCodes, FrameError } from '../errors.js';
import { type ByteQueue, type DecodeStep, QueueDecoder, type RawFrame } from './framing.js';

export const MPU_HEADER_BYTES = 4;
/** The most 4 decimal digits can announce. */
export const MPU_MAX_PAYLOAD_BYTES = 9999;

const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

export interface MpuDecoderOptions {
  /** Largest message accepted (header excluded); at most MPU_MAX_PAYLOAD_BYTES. */
  maxPayloadBytes: number;
  /** Smallest message accepted (header excluded). "0000" is valid framing by default. */
  minPayloadBytes: number;
}

export const DEFAULT_MPU_DECODER_OPTIONS: MpuDecoderOptions = {
  maxPayloadBytes: MPU_MAX_PAYLOAD_BYTES,
  minPayloadBytes: 0,
};

export interface MpuFrame extends RawFrame {
  /** The message without its length header: a view into raw. */
  readonly payload: Buffer;
}

/** The length in a 4-byte header, or undefined if any byte is not an ASCII digit. */
export function parseMpuLength(header: Buffer): number | undefined {
  let length = 0;
  for (let i = 0; i < MPU_HEADER_BYTES; i++) {
    const byte = header[i];
    if (byte === undefined || byte < DIGIT_0 || byte > DIGIT_9) return undefined;
    length = length * 10 + (byte - DIGIT_0);
  }
  return length;
}

export class MpuDecoder extends QueueDecoder<MpuFrame> {
  readonly #options: MpuDecoderOptions;

  constructor(options: Partial<MpuDecoderOptions> = {}) {
    super();
    this.#options = { ...DEFAULT_MPU_DECODER_OPTIONS, ...options };
    const { minPayloadBytes, maxPayloadBytes } = this.#options;
    if (!Number.isInteger(maxPayloadBytes) || maxPayloadBytes < 0 || maxPayloadBytes > MPU_MAX_PAYLOAD_BYTES) {
      throw new RangeError(`maxPayloadBytes must be 0..${MPU_MAX_PAYLOAD_BYTES}, got ${maxPayloadBytes}`);
    }
    if (!Number.isInteger(minPayloadBytes) || minPayloadBytes < 0 || minPayloadBytes > maxPayloadBytes) {
      throw new RangeError(`minPayloadBytes must be 0..maxPayloadBytes, got ${minPayloadBytes}`);
    }
  }

  protected decodeNext(queue: ByteQueue): DecodeStep<MpuFrame> {
    const header = queue.peek(MPU_HEADER_BYTES);
    if (header === undefined) return undefined;
    const length = parseMpuLength(header);
    if (length === undefined) {
      return new FrameError(`MPU length header ${JSON.stringify(header.toString('latin1'))} is not 4 ASCII digits`);
    }
    if (length > this.#options.maxPayloadBytes) {
      return new FrameError(`MPU length ${length} exceeds ${this.#options.maxPayloadBytes}`, ErrorCodes.FRAME_TOO_LARGE);
    }
    if (length < this.#options.minPayloadBytes) {
      return new FrameError(`MPU length ${length} is below ${this.#options.minPayloadBytes}`);
    }
    const size = MPU_HEADER_BYTES + length;
    if (queue.length < size) return undefined;
    const raw = queue.take(size);
    return { raw, payload: raw.subarray(MPU_HEADER_BYTES) };
  }
}

/** Zero-padded 4-digit length + payload, in a Buffer of exactly that size. */
export function encodeMpu(payload: Buffer): Buffer {
  if (payload.length > MPU_MAX_PAYLOAD_BYTES) {
    throw new RangeError(`MPU payload of ${payload.length} bytes exceeds ${MPU_MAX_PAYLOAD_BYTES}`);
  }
  const out = Buffer.allocUnsafe(MPU_HEADER_BYTES + payload.length);
  let length = payload.length;
  for (let i = MPU_HEADER_BYTES - 1; i >= 0; i--) {
    out[i] = DIGIT_0 + (length % 10);
    length = Math.floor(length / 10);
  }
  payload.copy(out, MPU_HEADER_BYTES);
  return out;
}
