import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ErrorCodes, FrameError } from '../../src/errors.js';
import {
  HEADER_SIZE,
  HEARTBEAT_PRIORITY,
  HEARTBEAT_STREAM_TYPE,
  MAX_FRAME_BODY,
  Muxado1Decoder,
  type Muxado1Frame,
  ResetCode,
  encodeData,
  encodeDataHeader,
  encodeFrame,
  encodeGoAway,
  encodeRst,
  encodeSyn,
  encodeWndInc,
} from '../../src/protocols/muxado1.js';
import { PROPERTY_RUNS, assertRobust, cutsArb, feed, hex, splitAt } from './codec-harness.js';

function decodeAll(bytes: Buffer): { frames: Muxado1Frame[]; error: FrameError | undefined } {
  return feed(new Muxado1Decoder(), [bytes]);
}

// Byte tables: each row is what muxado v1 (Debian 0.0~git20140312) writes or reads, as
//   length(u16, 14 bits) | flags(u8) | type(u8, 5 bits) | stream id(u32, 31 bits) | body
describe('muxado v1 frames as bytes', () => {
  const table: Array<{ name: string; bytes: string; frame: Muxado1Frame }> = [
    {
      name: "Open(): SYN for client stream 3 with no priority and no type",
      bytes: '0000 | 00 | 01 | 00000003',
      frame: { kind: 'syn', streamId: 3, priority: 0, streamType: 0, fin: false },
    },
    {
      name: 'heartbeat extension: SYN with PRIORITY|TYPE, priority 0x7FFFFFFF, type 0xFFFFFEFF',
      bytes: '0008 | 06 | 01 | 00000005 | 7fffffff | fffffeff',
      frame: { kind: 'syn', streamId: 5, priority: HEARTBEAT_PRIORITY, streamType: HEARTBEAT_STREAM_TYPE, fin: false },
    },
    {
      name: 'SYN with only a stream type (TYPE flag, 4-byte body)',
      bytes: '0004 | 04 | 01 | 00000002 | 0000002a',
      frame: { kind: 'syn', streamId: 2, priority: 0, streamType: 42, fin: false },
    },
    {
      name: "the relay's address on the first stream: DATA 'localhost:8081'",
      bytes: '000e | 00 | 03 | 00000003 | 6c6f63616c686f73743a38303831',
      frame: { kind: 'data', streamId: 3, payload: Buffer.from('localhost:8081'), fin: false },
    },
    {
      name: "Close(): an empty DATA with FIN",
      bytes: '0000 | 01 | 03 | 00000003',
      frame: { kind: 'data', streamId: 3, payload: Buffer.alloc(0), fin: true },
    },
    {
      name: 'a heartbeat: 4-byte id 0 on the heartbeat stream',
      bytes: '0004 | 00 | 03 | 00000005 | 00000000',
      frame: { kind: 'data', streamId: 5, payload: hex('00000000'), fin: false },
    },
    {
      name: 'RST CANCEL',
      bytes: '0004 | 00 | 02 | 00000004 | 00000007',
      frame: { kind: 'rst', streamId: 4, errorCode: ResetCode.CANCEL },
    },
    {
      name: 'WNDINC of 256 (what muxado sends after a 256-byte Read)',
      bytes: '0004 | 00 | 04 | 00000004 | 00000100',
      frame: { kind: 'wndinc', streamId: 4, increment: 256 },
    },
    {
      name: 'GOAWAY as we write it: length 8, last id 3, NO_ERROR, no debug',
      bytes: '0008 | 00 | 06 | 00000000 | 00000003 | 00000000',
      frame: { kind: 'goaway', lastStreamId: 3, errorCode: 0, debug: Buffer.alloc(0) },
    },
  ];

  for (const row of table) {
    it(`decodes and encodes: ${row.name}`, () => {
      const { frames, error } = decodeAll(hex(row.bytes));
      assert.equal(error, undefined);
      assert.deepEqual(frames, [row.frame]);
      assert.deepEqual(encodeFrame(row.frame), hex(row.bytes));
    });
  }

  it("reads muxado's own GOAWAY, whose length counts the 8 header bytes (Close(): debug 'Session Close()')", () => {
    // goaway.go writes length = len(debug) + 16 = 31 but sends 8 + 15 body bytes; the next frame follows at once.
    const goAway = hex('001f | 00 | 06 | 00000000 | 00000004 | 00000000');
    const bytes = Buffer.concat([goAway, Buffer.from('Session Close()'), hex('0000 | 01 | 03 | 00000003')]);
    const { frames, error } = decodeAll(bytes);
    assert.equal(error, undefined);
    assert.deepEqual(frames, [
      { kind: 'goaway', lastStreamId: 4, errorCode: 0, debug: Buffer.from('Session Close()') },
      { kind: 'data', streamId: 3, payload: Buffer.alloc(0), fin: true },
    ]);
  });

  it('ignores the reserved top bits of length, type and stream id, as muxado masks them', () => {
    const { frames } = decodeAll(hex('c004 | 00 | e4 | 80000004 | 80000010'));
    assert.deepEqual(frames, [{ kind: 'wndinc', streamId: 4, increment: 16 }]);
  });

  it('encodes a DATA header for the largest frame muxado writes, 16383 bytes', () => {
    assert.deepEqual(encodeDataHeader(2, MAX_FRAME_BODY), hex('3fff | 00 | 03 | 00000002'));
    assert.throws(() => encodeDataHeader(2, MAX_FRAME_BODY + 1), RangeError);
  });

  it('encoders return Buffers of exactly the frame size', () => {
    assert.equal(encodeSyn(2).length, HEADER_SIZE);
    assert.equal(encodeSyn(2, { priority: 1, streamType: 1 }).length, HEADER_SIZE + 8);
    assert.equal(encodeData(2, Buffer.alloc(10)).length, HEADER_SIZE + 10);
    assert.equal(encodeRst(2, 1).length, HEADER_SIZE + 4);
    assert.equal(encodeWndInc(2, 1).length, HEADER_SIZE + 4);
    assert.equal(encodeGoAway(2, 1).length, HEADER_SIZE + 8);
  });
});

describe('muxado v1 malformed frames', () => {
  const bad: Array<{ name: string; bytes: string }> = [
    { name: 'type 5 (STREAM_PRI), which muxado reads as illegal', bytes: '0004 | 00 | 05 | 00000003 | 00000001' },
    { name: 'type 0', bytes: '0000 | 00 | 00 | 00000003' },
    { name: 'type 7', bytes: '0000 | 00 | 07 | 00000003' },
    { name: 'SYN whose length does not match its flags', bytes: '0004 | 00 | 01 | 00000003 | 00000001' },
    { name: 'SYN with PRIORITY but length 0', bytes: '0000 | 02 | 01 | 00000003' },
    { name: 'RST of length 3', bytes: '0003 | 00 | 02 | 00000003 | 000000' },
    { name: 'WNDINC of length 8', bytes: '0008 | 00 | 04 | 00000003 | 0000000000000001' },
    { name: 'GOAWAY shorter than its 8 fixed bytes', bytes: '0004 | 00 | 06 | 00000000 | 00000001' },
  ];
  for (const row of bad) {
    it(`returns SWB_ERR_FRAME without waiting for the body: ${row.name}`, () => {
      // Only the header is pushed: a bad header must fail at once, not wait.
      const { frames, error } = decodeAll(hex(row.bytes).subarray(0, HEADER_SIZE));
      assert.deepEqual(frames, []);
      assert.ok(error instanceof FrameError);
      assert.equal(error.code, ErrorCodes.FRAME);
    });
  }

  it('delivers the frames before an error and then stays dead', () => {
    const decoder = new Muxado1Decoder();
    const first = decoder.push(Buffer.concat([encodeWndInc(2, 5), hex('0000 | 00 | 05 | 00000003')]));
    assert.equal(first.frames.length, 1);
    assert.ok(first.error);
    const later = decoder.push(encodeWndInc(2, 5));
    assert.deepEqual(later.frames, []);
    assert.equal(later.error, first.error);
    assert.equal(decoder.bufferedBytes, 0);
  });
});

const streamId = fc.integer({ min: 1, max: 0x7fff_ffff });
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const arbitraryFrame: fc.Arbitrary<Muxado1Frame> = fc.oneof(
  fc.record({
    kind: fc.constant('syn' as const),
    streamId,
    priority: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0x7fff_ffff })),
    streamType: fc.oneof(fc.constant(0), u32),
    fin: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('data' as const),
    streamId,
    payload: fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)),
    fin: fc.boolean(),
  }),
  fc.record({ kind: fc.constant('rst' as const), streamId, errorCode: u32 }),
  fc.record({ kind: fc.constant('wndinc' as const), streamId, increment: fc.integer({ min: 0, max: 0x7fff_ffff }) }),
  fc.record({
    kind: fc.constant('goaway' as const),
    lastStreamId: fc.integer({ min: 0, max: 0x7fff_ffff }),
    errorCode: u32,
    debug: fc.constant(Buffer.alloc(0)),
  }),
  // fc.record builds null-prototype objects; the decoder returns plain ones, and deepStrictEqual compares prototypes.
).map((frame) => ({ ...frame }));

describe('muxado v1 codec properties', () => {
  it('any chunking of a frame sequence decodes to the same frames', () => {
    fc.assert(
      fc.property(fc.array(arbitraryFrame, { maxLength: 20 }), cutsArb, (frames, cuts) => {
        const decoder = new Muxado1Decoder();
        const fed = feed(decoder, splitAt(Buffer.concat(frames.map(encodeFrame)), cuts));
        assert.equal(fed.error, undefined);
        assert.deepEqual(fed.frames, frames);
        assert.equal(decoder.bufferedBytes, 0);
      }),
      PROPERTY_RUNS,
    );
  });

  it('one byte at a time gives the same frames', () => {
    fc.assert(
      fc.property(fc.array(arbitraryFrame, { maxLength: 5 }), (frames) => {
        const bytes = Buffer.concat(frames.map(encodeFrame));
        const chunks = Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1));
        assert.deepEqual(feed(new Muxado1Decoder(), chunks).frames, frames);
      }),
      { ...PROPERTY_RUNS, numRuns: 100 },
    );
  });

  it('arbitrary bytes in arbitrary chunks never throw, never buffer more than one frame, and a dead decoder stays dead', () => {
    assertRobust(() => new Muxado1Decoder(), HEADER_SIZE + MAX_FRAME_BODY);
  });

  it('arbitrary headers over a valid stream (only type and length fuzzed) never throw either', () => {
    const header = fc
      .tuple(fc.integer({ min: 0, max: 0xffff }), fc.nat({ max: 255 }), fc.nat({ max: 255 }), fc.nat({ max: 0xffffffff }))
      .map(([length, flags, type, id]) => {
        const bytes = Buffer.alloc(HEADER_SIZE + (length & 0x3fff));
        bytes.writeUInt16BE(length, 0);
        bytes.writeUInt8(flags, 2);
        bytes.writeUInt8(type, 3);
        bytes.writeUInt32BE(id, 4);
        return bytes;
      });
    assertRobust(() => new Muxado1Decoder(), HEADER_SIZE + MAX_FRAME_BODY, fc.array(header, { maxLength: 4 }).map((h) => Buffer.concat(h)));
  });
});
