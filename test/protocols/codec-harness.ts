/**
 * Shared pieces of the codec tests: hex tables, feeding a decoder, and the three properties every framer must have
 * (chunking does not matter, arbitrary bytes never throw and stay bounded, a dead decoder stays dead).
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { FrameDecoder, RawFrame } from '../../src/protocols/framing.js';
import type { FrameError } from '../../src/errors.js';

/** Fixed seed and run count: the properties are deterministic and quick. */
export const PROPERTY_RUNS = { seed: 0x5b0a4d, numRuns: 200 } as const;

/** `hex('00 01 | 00 00')`: spaces and `|` are separators for readability in tables. */
export function hex(text: string): Buffer {
  return Buffer.from(text.replace(/[\s|]/g, ''), 'hex');
}

export interface Fed<F> {
  frames: F[];
  error: FrameError | undefined;
  /** Largest bufferedBytes seen after any push. */
  maxBuffered: number;
}

export function feed<F>(decoder: FrameDecoder<F>, chunks: readonly Buffer[]): Fed<F> {
  const frames: F[] = [];
  let error: FrameError | undefined;
  let maxBuffered = 0;
  for (const chunk of chunks) {
    const result = decoder.push(chunk);
    frames.push(...result.frames);
    error ??= result.error;
    maxBuffered = Math.max(maxBuffered, decoder.bufferedBytes);
  }
  return { frames, error, maxBuffered };
}

/** Splits `bytes` at the given cut points (taken modulo its length + 1, so any integers will do). */
export function splitAt(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const point of points) {
    chunks.push(bytes.subarray(start, point));
    start = point;
  }
  chunks.push(bytes.subarray(start));
  return chunks;
}

/** Cut points for splitAt, including runs of single bytes. */
export const cutsArb = fc.array(fc.nat({ max: 100_000 }), { maxLength: 40 });

/**
 * Frames produced from a concatenation of valid wire frames are the same, byte for byte, whatever the chunking, and
 * equal to the frames that went in.
 */
export function assertChunkingIrrelevant<F extends RawFrame>(
  makeDecoder: () => FrameDecoder<F>,
  wireFrameArb: fc.Arbitrary<Buffer>,
): void {
  fc.assert(
    fc.property(fc.array(wireFrameArb, { minLength: 1, maxLength: 8 }), cutsArb, (wireFrames, cuts) => {
      const stream = Buffer.concat(wireFrames);
      const { frames, error } = feed(makeDecoder(), splitAt(stream, cuts));
      assert.equal(error, undefined);
      assert.deepEqual(
        frames.map((frame) => frame.raw.toString('hex')),
        wireFrames.map((wire) => wire.toString('hex')),
      );
    }),
    PROPERTY_RUNS,
  );
}

/**
 * Arbitrary bytes in arbitrary chunks never make push() throw; bufferedBytes never exceeds `bound`; once an error is
 * returned, every later push returns that same error, no frames, and nothing buffered.
 */
export function assertRobust<F>(makeDecoder: () => FrameDecoder<F>, bound: number, bytesArb?: fc.Arbitrary<Buffer>): void {
  const arb = bytesArb ?? fc.uint8Array({ maxLength: 2048 }).map((bytes) => Buffer.from(bytes));
  fc.assert(
    fc.property(arb, cutsArb, (bytes, cuts) => {
      const decoder = makeDecoder();
      let dead: FrameError | undefined;
      for (const chunk of splitAt(bytes, cuts)) {
        const result = decoder.push(chunk);
        if (dead !== undefined) {
          assert.equal(result.error, dead);
          assert.equal(result.frames.length, 0);
        }
        dead ??= result.error;
        assert.ok(decoder.bufferedBytes <= bound, `bufferedBytes ${decoder.bufferedBytes} > ${bound}`);
        if (dead !== undefined) {
          assert.equal(decoder.error, dead);
          assert.equal(decoder.bufferedBytes, 0);
        }
      }
      if (dead !== undefined) assert.equal(decoder.push(Buffer.from([1, 2, 3])).error, dead);
    }),
    PROPERTY_RUNS,
  );
}

/** Pushes `bytes` whole and returns the result, for the byte tables. */
export function decodeOnce<F>(decoder: FrameDecoder<F>, bytes: Buffer): Fed<F> {
  return feed(decoder, [bytes]);
}
