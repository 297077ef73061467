import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ErrorCodes } from '../../src/errors.js';
import { ISO8583_MAX_PAYLOAD_BYTES, Iso8583Decoder, encodeIso8583 } from '../../src/protocols/iso8583.js';
import { PROPERTY_RUNS, assertChunkingIrrelevant, assertRobust, decodeOnce, feed, hex, splitAt } from './codec-harness.js';

const payloadArb = (max: number) => fc.uint8Array({ maxLength: max }).map((b) => Buffer.from(b));

describe('ISO 8583 2-byte length: byte table', () => {
  it('decodes a 0200 message: length 0x0004 excludes the header', () => {
    const { frames, error } = decodeOnce(new Iso8583Decoder(), hex('00 04 | 30 32 30 30'));
    assert.equal(error, undefined);
    assert.deepEqual(frames[0]?.raw, hex('00 04 30 32 30 30'));
    assert.deepEqual(frames[0]?.payload, Buffer.from('0200'));
  });

  it('big-endian: 01 00 announces 256 bytes', () => {
    const decoder = new Iso8583Decoder();
    decoder.push(Buffer.concat([hex('01 00'), Buffer.alloc(255)]));
    assert.equal(decoder.bufferedBytes, 257);
    assert.equal(decoder.push(hex('00')).frames[0]?.payload.length, 256);
  });

  it('length 0 is a header-only frame by default', () => {
    const { frames, error } = decodeOnce(new Iso8583Decoder(), hex('00 00 | 00 01 41'));
    assert.equal(error, undefined);
    assert.deepEqual(
      frames.map((frame) => frame.raw),
      [hex('00 00'), hex('00 01 41')],
    );
  });

  it('length 0 is an error when minPayloadBytes is 1', () => {
    const { error } = decodeOnce(new Iso8583Decoder({ minPayloadBytes: 1 }), hex('00 00'));
    assert.equal(error?.code, ErrorCodes.FRAME);
  });

  it('a length above maxPayloadBytes is refused at once, without buffering the body', () => {
    const decoder = new Iso8583Decoder({ maxPayloadBytes: 100 });
    const { error } = decoder.push(hex('00 65'));
    assert.equal(error?.code, ErrorCodes.FRAME_TOO_LARGE);
    assert.equal(decoder.bufferedBytes, 0);
    assert.equal(decoder.push(hex('00 01 41')).error, error);
  });

  it('0xFFFF is the largest length and is accepted with the default bound', () => {
    const frame = encodeIso8583(Buffer.alloc(ISO8583_MAX_PAYLOAD_BYTES));
    const { frames, error } = feed(new Iso8583Decoder(), splitAt(frame, [1, 2, 3, 1000, 40_000]));
    assert.equal(error, undefined);
    assert.equal(frames[0]?.payload.length, ISO8583_MAX_PAYLOAD_BYTES);
  });

  it('a message split across segments is reassembled (tcp-multiplexer reads it short)', () => {
    const { frames } = feed(new Iso8583Decoder(), [hex('00'), hex('03 41'), hex('42'), hex('43 00 01')]);
    assert.deepEqual(frames[0]?.payload, Buffer.from('ABC'));
  });

  it('refuses invalid bounds', () => {
    assert.throws(() => new Iso8583Decoder({ maxPayloadBytes: 0x10000 }), RangeError);
    assert.throws(() => new Iso8583Decoder({ minPayloadBytes: 10, maxPayloadBytes: 5 }), RangeError);
    assert.throws(() => encodeIso8583(Buffer.alloc(0x10000)), RangeError);
  });
});

describe('ISO 8583: properties', () => {
  it('any chunking of valid messages yields exactly those messages', () => {
    assertChunkingIrrelevant(() => new Iso8583Decoder(), payloadArb(600).map(encodeIso8583));
  });

  it('arbitrary bytes never throw and stay below one frame buffered', () => {
    assertRobust(() => new Iso8583Decoder({ maxPayloadBytes: 300 }), 301);
    assertRobust(() => new Iso8583Decoder(), ISO8583_MAX_PAYLOAD_BYTES + 1);
  });

  it('encode then decode gives back the payload', () => {
    fc.assert(
      fc.property(payloadArb(2000), (payload) => {
        assert.deepEqual(feed(new Iso8583Decoder(), [encodeIso8583(payload)]).frames[0]?.payload, payload);
      }),
      PROPERTY_RUNS,
    );
  });
});
