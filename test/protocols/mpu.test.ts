import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ErrorCodes } from '../../src/errors.js';
import { MPU_MAX_PAYLOAD_BYTES, MpuDecoder, encodeMpu, parseMpuLength } from '../../src/protocols/mpu.js';
import { PROPERTY_RUNS, assertChunkingIrrelevant, assertRobust, decodeOnce, feed } from './codec-harness.js';

const text = (s: string) => Buffer.from(s, 'latin1');
const payloadArb = (max: number) => fc.uint8Array({ maxLength: max }).map((b) => Buffer.from(b));

describe('MPU 4-digit length: byte table', () => {
  it('decodes "0005hello": the header excludes itself', () => {
    const { frames, error } = decodeOnce(new MpuDecoder(), text('0005hello'));
    assert.equal(error, undefined);
    assert.deepEqual(frames[0]?.raw, text('0005hello'));
    assert.deepEqual(frames[0]?.payload, text('hello'));
  });

  it('keeps what follows a message as the start of the next one', () => {
    const decoder = new MpuDecoder();
    const { frames } = decoder.push(Buffer.concat([text('0124'), Buffer.alloc(124, 0x61), text('0015another')]));
    assert.equal(frames.length, 1);
    assert.equal(frames[0]?.payload.length, 124);
    assert.equal(decoder.bufferedBytes, '0015another'.length);
    assert.deepEqual(decoder.push(text(' message')).frames[0]?.payload, text('another message'));
  });

  it('reads the bytes after a message as the next header (tcp-multiplexer\'s test appends bare "another message")', () => {
    const { frames, error } = decodeOnce(new MpuDecoder(), Buffer.concat([text('0003abc'), text('another message')]));
    assert.equal(frames.length, 1);
    assert.equal(error?.code, ErrorCodes.FRAME);
  });

  it('"0000" is an empty message by default, an error with minPayloadBytes 1', () => {
    assert.deepEqual(decodeOnce(new MpuDecoder(), text('0000')).frames[0]?.payload, Buffer.alloc(0));
    assert.equal(decodeOnce(new MpuDecoder({ minPayloadBytes: 1 }), text('0000')).error?.code, ErrorCodes.FRAME);
  });

  it('"9999" is the largest length', () => {
    const { frames, error } = decodeOnce(new MpuDecoder(), encodeMpu(Buffer.alloc(MPU_MAX_PAYLOAD_BYTES)));
    assert.equal(error, undefined);
    assert.equal(frames[0]?.payload.length, MPU_MAX_PAYLOAD_BYTES);
  });

  const invalid: Array<[string, string]> = [
    ['a sign (Atoi accepts "-123", and tcp-multiplexer then panics)', '-123'],
    ['a plus sign', '+123'],
    ['a leading space', ' 123'],
    ['a trailing space', '123 '],
    ['hex digits', '00AF'],
    ['a NUL byte', '12\u00003'],
    ['binary length', '\u0000\u0000\u0000\u0005'],
  ];
  for (const [name, header] of invalid) {
    it(`refuses a header with ${name}`, () => {
      const decoder = new MpuDecoder();
      const { error } = decoder.push(Buffer.concat([text(header), text('payload')]));
      assert.equal(error?.code, ErrorCodes.FRAME);
      assert.equal(decoder.bufferedBytes, 0);
      assert.equal(decoder.push(text('0001a')).error, error);
    });
  }

  it('a length above maxPayloadBytes is refused at once', () => {
    assert.equal(decodeOnce(new MpuDecoder({ maxPayloadBytes: 100 }), text('0101')).error?.code, ErrorCodes.FRAME_TOO_LARGE);
  });

  it('parseMpuLength and encodeMpu agree on zero padding', () => {
    assert.equal(parseMpuLength(text('0042')), 42);
    assert.equal(parseMpuLength(text('004')), undefined);
    assert.deepEqual(encodeMpu(text('ab')), text('0002ab'));
    assert.throws(() => encodeMpu(Buffer.alloc(10_000)), RangeError);
    assert.throws(() => new MpuDecoder({ maxPayloadBytes: 10_000 }), RangeError);
  });
});

describe('MPU: properties', () => {
  it('any chunking of valid messages yields exactly those messages', () => {
    assertChunkingIrrelevant(() => new MpuDecoder(), payloadArb(600).map(encodeMpu));
  });

  it('arbitrary bytes never throw and stay below one frame buffered', () => {
    const digitsThenNoise = fc
      .array(fc.oneof(fc.nat({ max: 9999 }).map((n) => text(String(n).padStart(4, '0'))), payloadArb(50)), { maxLength: 12 })
      .map((parts) => Buffer.concat(parts));
    assertRobust(() => new MpuDecoder(), MPU_MAX_PAYLOAD_BYTES + 3);
    assertRobust(() => new MpuDecoder(), MPU_MAX_PAYLOAD_BYTES + 3, digitsThenNoise);
  });

  it('encode then decode gives back the payload', () => {
    fc.assert(
      fc.property(payloadArb(MPU_MAX_PAYLOAD_BYTES), (payload) => {
        assert.deepEqual(feed(new MpuDecoder(), [encodeMpu(payload)]).frames[0]?.payload, payload);
      }),
      { ...PROPERTY_RUNS, numRuns: 50 },
    );
  });
});
