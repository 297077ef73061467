/**
 * `iso8583` framing: a 2-byte big-endian length header, then that many bytes of ISO 8583 message; the header does not
 * count itself (the common TCP framing of ISO 8583 hosts, e.g. j8583's "2-byte binary length header").
 *
 * tcp-multiplexer (pkg/message/iso8583.go) reads header and body with a single conn.Read each, so a message split across
 * TCP segments is cut short and the stream desynchronises. Here frames are assembled from any chunking. A length of 0 is
 * valid framing (some hosts send it as a keep-alive) unless minPayloadBytes says otherwise; note that such a message
 * usually gets no reply.
 */
import { ErrorCodes, FrameError } from '../errors.js';
import { type ByteQueue, type DecodeStep, QueueDecoder, type RawFrame } from './framing.js';

export const ISO8583_HEADER_BYTES = 2;
/** The most a 2-byte length can announce. */
export const ISO8583_MAX_PAYLOAD_BYTES = 0xffff;

export interface Iso8583DecoderOptions {
  /** Largest message accepted (header excluded); at most ISO8583_MAX_PAYLOAD_BYTES. */
  maxPayloadBytes: number;
  /** Smallest message accepted (header excluded); a shorter announced length is an error. */
  minPayloadBytes: number;
}

export const DEFAULT_ISO8583_DECODER_OPTIONS: Iso8583DecoderOptions = {
  maxPayloadBytes: ISO8583_MAX_PAYLOAD_BYTES,
  minPayloadBytes: 0,
};

export interface Iso8583Frame extends RawFrame {
  /** The message without its length header: a view into raw. */
  readonly payload: Buffer;
}

export class Iso8583Decoder extends QueueDecoder<Iso8583Frame> {
  readonly #options: Iso8583DecoderOptions;

  constructor(options: Partial<Iso8583DecoderOptions> = {}) {
    super();
    this.#options = { ...DEFAULT_ISO8583_DECODER_OPTIONS, ...options };
    const { minPayloadBytes, maxPayloadBytes } = this.#options;
    if (!Number.isInteger(maxPayloadBytes) || maxPayloadBytes < 0 || maxPayloadBytes > ISO8583_MAX_PAYLOAD_BYTES) {
      throw new RangeError(`maxPayloadBytes must be 0..${ISO8583_MAX_PAYLOAD_BYTES}, got ${maxPayloadBytes}`);
    }
    if (!Number.isInteger(minPayloadBytes) || minPayloadBytes < 0 || minPayloadBytes > maxPayloadBytes) {
      throw new RangeError(`minPayloadBytes must be 0..maxPayloadBytes, got ${minPayloadBytes}`);
    }
  }

  protected decodeNext(queue: ByteQueue): DecodeStep<Iso8583Frame> {
    const header = queue.peek(ISO8583_HEADER_BYTES);
    if (header === undefined) return undefined;
    const length = header.readUInt16BE(0);
    if (length > this.#options.maxPayloadBytes) {
      return new FrameError(
        `ISO 8583 length ${length} exceeds ${this.#options.maxPayloadBytes}`,
        ErrorCodes.FRAME_TOO_LARGE,
      );
    }
    if (length < this.#options.minPayloadBytes) {
      return new FrameError(`ISO 8583 length ${length} is below ${this.#options.minPayloadBytes}`);
    }
    const size = ISO8583_HEADER_BYTES + length;
    if (queue.length < size) return undefined;
    const raw = queue.take(size);
    return { raw, payload: raw.subarray(ISO8583_HEADER_BYTES) };
  }
}

/** Header + payload in a Buffer of exactly that size. */
export function encodeIso8583(payload: Buffer): Buffer {
  if (payload.length > ISO8583_MAX_PAYLOAD_BYTES) {
    throw new RangeError(`ISO 8583 payload of ${payload.length} bytes exceeds ${ISO8583_MAX_PAYLOAD_BYTES}`);
  }
  const out = Buffer.allocUnsafe(ISO8583_HEADER_BYTES + payload.length);
  out.writeUInt16BE(payload.length, 0);
  payload.copy(out, ISO8583_HEADER_BYTES);
  return out;
}
