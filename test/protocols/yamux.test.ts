import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ErrorCodes } from '../../src/errors.js';
import {
  Flag,
  FrameType,
  GoAwayCode,
  HEADER_SIZE,
  INITIAL_STREAM_WINDOW,
  MAX_DATA_FRAME_BYTES,
  YamuxDecoder,
  encodeDataFrame,
  encodeDataHeader,
  encodeGoAway,
  encodePing,
  encodeWindowUpdate,
  writeHeader,
  type YamuxFrame,
} from '../../src/protocols/yamux.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/[^0-9a-f]/gi, ''), 'hex');

/** Annotated frames from hashicorp yamux spec.md: version | type | flags | stream id | length [| payload]. */
interface Row {
  name: string;
  /** Hex with '|' between the header fields, as spec.md lists them. */
  bytes: string;
  frame: { type: number; flags: number; streamId: number; length: number; payload?: string };
}

const table: Row[] = [
  {
    name: 'window update opening client stream 1 (SYN, delta 0)',
    bytes: '00 | 01 | 0001 | 00000001 | 00000000',
    frame: { type: FrameType.WindowUpdate, flags: Flag.SYN, streamId: 1, length: 0 },
  },
  {
    name: 'window update accepting stream 1 (ACK) and granting 1 MiB more',
    bytes: '00 | 01 | 0002 | 00000001 | 00100000',
    frame: { type: FrameType.WindowUpdate, flags: Flag.ACK, streamId: 1, length: 0x100000 },
  },
  {
    name: 'data on server stream 2 carrying "hi"',
    bytes: '00 | 00 | 0000 | 00000002 | 00000002 | 6869',
    frame: { type: FrameType.Data, flags: 0, streamId: 2, length: 2, payload: '6869' },
  },
  {
    name: 'data with SYN and FIN: open, send "ok", half-close in one frame',
    bytes: '00 | 00 | 0005 | 00000003 | 00000002 | 6f6b',
    frame: { type: FrameType.Data, flags: Flag.SYN | Flag.FIN, streamId: 3, length: 2, payload: '6f6b' },
  },
  {
    name: 'FIN as an empty window update (what yamux sends on Close)',
    bytes: '00 | 01 | 0004 | 00000005 | 00000000',
    frame: { type: FrameType.WindowUpdate, flags: Flag.FIN, streamId: 5, length: 0 },
  },
  {
    name: 'RST refusing stream 7',
    bytes: '00 | 01 | 0008 | 00000007 | 00000000',
    frame: { type: FrameType.WindowUpdate, flags: Flag.RST, streamId: 7, length: 0 },
  },
  {
    name: 'ping request (SYN) with opaque value 0xdeadbeef on stream 0',
    bytes: '00 | 02 | 0001 | 00000000 | deadbeef',
    frame: { type: FrameType.Ping, flags: Flag.SYN, streamId: 0, length: 0xdeadbeef },
  },
  {
    name: 'ping response (ACK) echoing the opaque value',
    bytes: '00 | 02 | 0002 | 00000000 | deadbeef',
    frame: { type: FrameType.Ping, flags: Flag.ACK, streamId: 0, length: 0xdeadbeef },
  },
  {
    name: 'go away, protocol error',
    bytes: '00 | 03 | 0000 | 00000000 | 00000001',
    frame: { type: FrameType.GoAway, flags: 0, streamId: 0, length: GoAwayCode.ProtocolError },
  },
  {
    name: 'largest stream id and length fields (u32, big-endian)',
    bytes: '00 | 01 | 0000 | ffffffff | ffffffff',
    frame: { type: FrameType.WindowUpdate, flags: 0, streamId: 0xffffffff, length: 0xffffffff },
  },
];

function encode(frame: Row['frame']): Buffer {
  switch (frame.type) {
    case FrameType.Data:
      return encodeDataFrame(frame.streamId, frame.flags, hex(frame.payload ?? ''));
    case FrameType.WindowUpdate:
      return encodeWindowUpdate(frame.streamId, frame.flags, frame.length);
    case FrameType.Ping:
      return encodePing(frame.flags, frame.length);
    default:
      return encodeGoAway(frame.length as GoAwayCode);
  }
}

describe('yamux codec: byte tables', () => {
  it('has the constants of const.go', () => {
    assert.equal(HEADER_SIZE, 12);
    assert.equal(INITIAL_STREAM_WINDOW, 262144);
    assert.deepEqual(Flag, { SYN: 1, ACK: 2, FIN: 4, RST: 8 });
    assert.deepEqual(FrameType, { Data: 0, WindowUpdate: 1, Ping: 2, GoAway: 3 });
    assert.deepEqual(GoAwayCode, { Normal: 0, ProtocolError: 1, InternalError: 2 });
  });

  for (const row of table) {
    it(`decodes and encodes: ${row.name}`, () => {
      const bytes = hex(row.bytes);
      const { frames, error } = new YamuxDecoder().push(bytes);
      assert.equal(error, undefined);
      assert.equal(frames.length, 1);
      const [frame] = frames as [YamuxFrame];
      assert.deepEqual(frame.header, {
        version: 0,
        type: row.frame.type,
        flags: row.frame.flags,
        streamId: row.frame.streamId,
        length: row.frame.length,
      });
      assert.equal(frame.payload.toString('hex'), row.frame.payload ?? '');
      assert.equal(encode(row.frame).toString('hex'), bytes.toString('hex'));
    });
  }

  it('writes a header into a Buffer at an offset and a data header apart from its payload', () => {
    const target = Buffer.alloc(14, 0xaa);
    assert.equal(writeHeader(target, 2, FrameType.Data, Flag.ACK, 9, 300), 14);
    assert.equal(target.toString('hex'), 'aaaa' + '00' + '00' + '0002' + '00000009' + '0000012c');
    assert.equal(encodeDataHeader(9, 0, 300).toString('hex'), '00' + '00' + '0000' + '00000009' + '0000012c');
  });

  it('returns a frame only once its payload is complete, across chunks', () => {
    const decoder = new YamuxDecoder();
    const bytes = hex('00 00 0000 00000001 00000003 616263');
    assert.deepEqual(decoder.push(bytes.subarray(0, 5)).frames, []);
    assert.deepEqual(decoder.push(bytes.subarray(5, 13)).frames, []);
    const { frames } = decoder.push(bytes.subarray(13));
    assert.equal(frames[0]?.payload.toString(), 'abc');
    assert.equal(decoder.buffered, 0);
  });

  it('slices payloads out of the chunk without copying when they lie inside it', () => {
    const bytes = encodeDataFrame(1, 0, Buffer.from('zero-copy'));
    const { frames } = new YamuxDecoder().push(bytes);
    assert.equal(frames[0]?.payload.buffer, bytes.buffer);
  });

  it('rejects an unsupported version with SWB_ERR_FRAME and stays failed', () => {
    const decoder = new YamuxDecoder();
    const first = decoder.push(hex('01 | 02 | 0001 | 00000000 | 00000000'));
    assert.equal(first.error?.code, ErrorCodes.FRAME);
    const next = decoder.push(encodePing(Flag.SYN, 1));
    assert.equal(next.frames.length, 0);
    assert.equal(next.error?.code, ErrorCodes.FRAME);
  });

  it('rejects an unknown type with SWB_ERR_FRAME, after returning the frames before it', () => {
    const { frames, error } = new YamuxDecoder().push(
      Buffer.concat([encodePing(Flag.SYN, 7), hex('00 | 04 | 0000 | 00000000 | 00000000')]),
    );
    assert.equal(frames.length, 1);
    assert.equal(error?.code, ErrorCodes.FRAME);
  });

  it('rejects a data frame longer than its bound with SWB_ERR_FRAME_TOO_LARGE before its payload arrives', () => {
    const decoder = new YamuxDecoder({ maxDataBytes: INITIAL_STREAM_WINDOW });
    const ok = decoder.push(encodeDataHeader(1, 0, INITIAL_STREAM_WINDOW));
    assert.equal(ok.error, undefined);
    const tooLong = new YamuxDecoder({ maxDataBytes: INITIAL_STREAM_WINDOW }).push(
      encodeDataHeader(1, 0, INITIAL_STREAM_WINDOW + 1),
    );
    assert.equal(tooLong.error?.code, ErrorCodes.FRAME_TOO_LARGE);
    assert.equal(new YamuxDecoder().maxDataBytes, MAX_DATA_FRAME_BYTES);
  });

  it('does not bound the length field of non-data frames (window deltas, ping values)', () => {
    const { error } = new YamuxDecoder({ maxDataBytes: 1 }).push(encodeWindowUpdate(1, 0, 0xffffffff));
    assert.equal(error, undefined);
  });
});

const frameArbitrary = fc.oneof(
  fc.record({
    type: fc.constant(FrameType.Data),
    flags: fc.integer({ min: 0, max: 15 }),
    streamId: fc.integer({ min: 0, max: 0xffffffff }),
    payload: fc.uint8Array({ maxLength: 300 }),
  }),
  fc.record({
    type: fc.constantFrom(FrameType.WindowUpdate, FrameType.Ping, FrameType.GoAway),
    flags: fc.integer({ min: 0, max: 0xffff }),
    streamId: fc.integer({ min: 0, max: 0xffffffff }),
    length: fc.integer({ min: 0, max: 0xffffffff }),
  }),
);

const frameSequence = fc.array(frameArbitrary, { maxLength: 20 });
const chunkSizes = fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1 });
const frameErrorCodes: string[] = [ErrorCodes.FRAME, ErrorCodes.FRAME_TOO_LARGE];

/** Mostly plausible headers (version 0, types 0..4, small lengths) with random bytes between, to reach deep states. */
const nearlyYamux = fc.array(
  fc.oneof(
    fc.uint8Array({ maxLength: 40 }),
    fc
      .tuple(
        fc.integer({ min: 0, max: 4 }), // type: the four of the spec and one unknown
        fc.integer({ min: 0, max: 15 }), // flags
        fc.integer({ min: 0, max: 9 }), // stream id
        fc.nat(2000), // length, sometimes beyond the 1024-byte bound
      )
      .map(([type, flags, streamId, length]) => {
        const header = Buffer.alloc(HEADER_SIZE);
        header[1] = type;
        header.writeUInt16BE(flags, 2);
        header.writeUInt32BE(streamId, 4);
        header.writeUInt32BE(length, 8);
        return new Uint8Array(header);
      }),
  ),
  { maxLength: 30 },
);

describe('yamux codec: properties', () => {
  it('any chunking of any frame sequence decodes to the same frames', () => {
    fc.assert(
      fc.property(frameSequence, chunkSizes, (frames, cuts) => {
        const wire = Buffer.concat(
          frames.map((f) => {
            const header = Buffer.allocUnsafe(HEADER_SIZE);
            if ('payload' in f) {
              writeHeader(header, 0, f.type, f.flags, f.streamId, f.payload.length);
              return Buffer.concat([header, Buffer.from(f.payload)]);
            }
            writeHeader(header, 0, f.type, f.flags, f.streamId, f.length);
            return header;
          }),
        );
        const decoder = new YamuxDecoder();
        const decoded: YamuxFrame[] = [];
        let offset = 0;
        let cut = 0;
        while (offset < wire.length) {
          const size = cuts[cut++ % cuts.length] as number;
          const result = decoder.push(wire.subarray(offset, offset + size));
          assert.equal(result.error, undefined);
          decoded.push(...result.frames);
          offset += size;
        }
        assert.equal(decoded.length, frames.length);
        frames.forEach((f, i) => {
          const got = decoded[i] as YamuxFrame;
          assert.equal(got.header.type, f.type);
          assert.equal(got.header.flags, f.flags);
          assert.equal(got.header.streamId, f.streamId);
          if ('payload' in f) assert.deepEqual(new Uint8Array(got.payload), f.payload);
          else assert.equal(got.header.length, f.length);
        });
        assert.equal(decoder.buffered, 0);
      }),
      { numRuns: 300 },
    );
  });

  it('arbitrary bytes in arbitrary chunks never throw and never buffer beyond one bounded frame', () => {
    fc.assert(
      fc.property(fc.oneof(fc.array(fc.uint8Array({ maxLength: 100 }), { maxLength: 30 }), nearlyYamux), (chunks) => {
        const decoder = new YamuxDecoder({ maxDataBytes: 1024 });
        for (const chunk of chunks) {
          const result = decoder.push(Buffer.from(chunk));
          if (result.error) assert.ok(frameErrorCodes.includes(result.error.code));
          assert.ok(decoder.buffered <= HEADER_SIZE + 1024 + 100);
        }
      }),
      { numRuns: 500 },
    );
  });
});
