import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ErrorCodes, FrameError } from '../../src/errors.js';
import {
  RTU_MAX_ADU_BYTES,
  RtuRequestDecoder,
  RtuResponseDecoder,
  UnknownFunctionError,
  crc16,
  encodeRtu,
  hasValidCrc,
  mbapToRtu,
  parseRtu,
  rtuExceptionResponse,
  rtuRequestLength,
  rtuResponseLength,
  rtuResponseLengthKnown,
  rtuToMbap,
} from '../../src/protocols/modbus-rtu.js';
import { ModbusTcpDecoder, encodeModbusTcp, parseModbusTcp } from '../../src/protocols/modbus-tcp.js';
import { PROPERTY_RUNS, assertChunkingIrrelevant, assertRobust, decodeOnce, feed, hex } from './codec-harness.js';

/** The textbook bit-by-bit CRC, as an oracle for the table-driven one. */
function crc16Bitwise(data: Uint8Array): number {
  let crc = 0xffff;
  for (const byte of data) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
  }
  return crc;
}

/** Appends the CRC, low byte first. */
function withCrc(text: string): Buffer {
  const body = hex(text);
  const out = Buffer.alloc(body.length + 2);
  body.copy(out);
  out.writeUInt16LE(crc16Bitwise(body), body.length);
  return out;
}

const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max }).map((b) => Buffer.from(b));
const counted = (max: number) => bytes(0, max).map((data) => Buffer.concat([Buffer.from([data.length]), data]));

/** Valid request PDUs for every function code whose request length can be derived. */
const requestPduArb: fc.Arbitrary<Buffer> = fc.oneof(
  fc.tuple(fc.constantFrom(1, 2, 3, 4, 5, 6, 8), bytes(4, 4)).map(([code, rest]) => Buffer.concat([Buffer.from([code]), rest])),
  fc.constantFrom(7, 11, 12, 17).map((code) => Buffer.from([code])),
  // FC 15, 16: address, quantity, byte count, data; ADU = 9 + N <= 256
  fc.tuple(fc.constantFrom(15, 16), bytes(4, 4), counted(247)).map(([code, head, data]) => Buffer.concat([Buffer.from([code]), head, data])),
  // FC 20, 21: byte count, data; ADU = 5 + N <= 256
  fc.tuple(fc.constantFrom(20, 21), counted(251)).map(([code, data]) => Buffer.concat([Buffer.from([code]), data])),
  bytes(6, 6).map((rest) => Buffer.concat([Buffer.from([22]), rest])),
  // FC 23: four u16 fields, byte count, data; ADU = 13 + N <= 256
  fc.tuple(bytes(8, 8), counted(243)).map(([head, data]) => Buffer.concat([Buffer.from([23]), head, data])),
  bytes(2, 2).map((rest) => Buffer.concat([Buffer.from([24]), rest])),
  bytes(2, 2).map((rest) => Buffer.concat([Buffer.from([43, 14]), rest])),
);

/** Read Device Identification response objects, kept within the 256-byte ADU. */
const deviceIdPduArb = fc
  .tuple(bytes(4, 4), fc.array(bytes(0, 40), { maxLength: 8 }))
  .map(([head, values]) => {
    const objects: Buffer[] = [];
    let size = 1 + 7 + 2; // address, fixed PDU part, CRC
    for (const [id, value] of values.entries()) {
      if (size + 2 + value.length > RTU_MAX_ADU_BYTES) break;
      size += 2 + value.length;
      objects.push(Buffer.from([id, value.length]), value);
    }
    const count = objects.length / 2;
    return Buffer.concat([Buffer.from([43, 14]), head, Buffer.from([count]), ...objects]);
  });

/** Valid response PDUs for every function code whose response length can be derived, and exceptions. */
const responsePduArb: fc.Arbitrary<Buffer> = fc.oneof(
  fc.tuple(fc.integer({ min: 0x80, max: 0xff }), fc.nat({ max: 0xff })).map(([code, exception]) => Buffer.from([code, exception])),
  fc.tuple(fc.constantFrom(1, 2, 3, 4, 12, 17, 20, 21, 23), counted(251)).map(([code, data]) => Buffer.concat([Buffer.from([code]), data])),
  fc.tuple(fc.constantFrom(5, 6, 8, 11, 15, 16), bytes(4, 4)).map(([code, rest]) => Buffer.concat([Buffer.from([code]), rest])),
  bytes(1, 1).map((rest) => Buffer.concat([Buffer.from([7]), rest])),
  bytes(6, 6).map((rest) => Buffer.concat([Buffer.from([22]), rest])),
  // FC 24: byte count u16, then that many bytes; ADU = 6 + N <= 256
  bytes(0, 250).map((data) => {
    const head = Buffer.alloc(3);
    head[0] = 24;
    head.writeUInt16BE(data.length, 1);
    return Buffer.concat([head, data]);
  }),
  deviceIdPduArb,
);

const unitArb = fc.nat({ max: 0xff });
const requestAduArb = fc.tuple(unitArb, requestPduArb).map(([unit, pdu]) => encodeRtu(unit, pdu));
const responseAduArb = fc.tuple(unitArb, responsePduArb).map(([unit, pdu]) => encodeRtu(unit, pdu));

describe('CRC16 (serial line V1.02 §6.2.2)', () => {
  const vectors: Array<[string, string, string]> = [
    ['FC 3 read 10 registers', '01 03 00 00 00 0A', 'C5 CD'],
    ['FC 3 read 1 register (tcp-multiplexer test vector)', '01 03 00 00 00 01', '84 0A'],
    ['FC 3 example of V1.1b3 §6.3 on unit 0x11', '11 03 00 6B 00 03', '76 87'],
    ['FC 4 read 1 input register', '01 04 00 00 00 01', '31 CA'],
    ['exception 0x83 / 0x02', '01 83 02', 'C0 F1'],
    ['CRC-16/MODBUS catalogue check "123456789"', '31 32 33 34 35 36 37 38 39', '37 4B'],
  ];
  for (const [name, body, crcBytes] of vectors) {
    it(`${name}: ${body} -> ${crcBytes} on the wire, low byte first`, () => {
      const wire = Buffer.alloc(2);
      wire.writeUInt16LE(crc16(hex(body)));
      assert.deepEqual(wire, hex(crcBytes));
      assert.equal(hasValidCrc(Buffer.concat([hex(body), hex(crcBytes)])), true);
    });
  }

  it('the table-driven CRC equals the bit-by-bit one on arbitrary data, and respects start/end', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.nat(), (data, a, b) => {
        assert.equal(crc16(data), crc16Bitwise(data));
        const start = a % (data.length + 1);
        const end = start + (b % (data.length - start + 1));
        assert.equal(crc16(data, start, end), crc16Bitwise(data.subarray(start, end)));
      }),
      PROPERTY_RUNS,
    );
  });

  it('hasValidCrc is false for anything too short to carry one', () => {
    assert.equal(hasValidCrc(hex('')), false);
    assert.equal(hasValidCrc(hex('FF FF')), false);
  });
});

describe('RTU length rules', () => {
  const requests: Array<[string, string, number | 'incomplete' | 'unknown']> = [
    ['FC 3', '01 03', 8],
    ['FC 5', '01 05', 8],
    ['FC 7', '01 07', 4],
    ['FC 8 (2 data bytes, as libmodbus and pymodbus)', '01 08', 8],
    ['FC 11', '01 0B', 4],
    ['FC 17', '01 11', 4],
    ['FC 16 before its byte count', '01 10 00 01 00 02', 'incomplete'],
    ['FC 16 with byte count 4', '01 10 00 01 00 02 04', 13],
    ['FC 15 with byte count 2', '01 0F 00 13 00 0A 02', 11],
    ['FC 20 with byte count 7', '01 14 07', 12],
    ['FC 22', '01 16', 10],
    ['FC 23 before its byte count', '01 17 00 03 00 06 00 0E 00 03', 'incomplete'],
    ['FC 23 with byte count 6', '01 17 00 03 00 06 00 0E 00 03 06', 19],
    ['FC 24', '01 18', 6],
    ['FC 43 before its MEI type', '01 2B', 'incomplete'],
    ['FC 43 / 14', '01 2B 0E', 7],
    ['FC 43 / 13 (CANopen: no length)', '01 2B 0D', 'unknown'],
    ['user-defined FC 65', '01 41', 'unknown'],
    ['user-defined FC 100', '01 64', 'unknown'],
    ['an exception code is not a request', '01 83', 'unknown'],
    ['address only', '01', 'incomplete'],
  ];
  for (const [name, head, want] of requests) {
    it(`request ${name}: ${want}`, () => assert.equal(rtuRequestLength(hex(head)), want));
  }

  const responses: Array<[string, string, number | 'incomplete' | 'unknown']> = [
    ['exception', '01 83', 5],
    ['exception to a user-defined code', '01 C1', 5],
    ['FC 3 with byte count 6', '01 03 06', 11],
    ['FC 3 before its byte count', '01 03', 'incomplete'],
    ['FC 5', '01 05', 8],
    ['FC 7', '01 07', 5],
    ['FC 8', '01 08', 8],
    ['FC 11', '01 0B', 8],
    ['FC 12 with byte count 8', '01 0C 08', 13],
    ['FC 16', '01 10', 8],
    ['FC 17 with byte count 3', '01 11 03', 8],
    ['FC 22', '01 16', 10],
    ['FC 23 with byte count 6', '01 17 06', 11],
    ['FC 24 with byte count 6', '01 18 00 06', 12],
    ['FC 24 before its 2-byte count', '01 18 00', 'incomplete'],
    ['FC 43/14 with no objects', '01 2B 0E 01 01 00 00 00', 10],
    ['FC 43/14 with objects of 3 and 2 bytes', '01 2B 0E 01 01 00 00 02 00 03 41 42 43 01 02 58 59', 19],
    ['FC 43/14 before the second object length', '01 2B 0E 01 01 00 00 02 00 03 41 42 43 01', 'incomplete'],
    ['FC 43/13', '01 2B 0D', 'unknown'],
    ['user-defined FC 65', '01 41', 'unknown'],
  ];
  for (const [name, head, want] of responses) {
    it(`response ${name}: ${want}`, () => assert.equal(rtuResponseLength(hex(head)), want));
  }

  it('rtuResponseLengthKnown refuses user-defined codes and 43/13, accepts the public codes and 43/14', () => {
    for (const code of [1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 15, 16, 17, 20, 21, 22, 23, 24]) {
      assert.equal(rtuResponseLengthKnown(code), true, `FC ${code}`);
    }
    assert.equal(rtuResponseLengthKnown(43, 14), true);
    assert.equal(rtuResponseLengthKnown(43, 13), false);
    assert.equal(rtuResponseLengthKnown(43), false);
    for (const code of [0, 9, 10, 13, 14, 18, 19, 25, 41, 42, 65, 72, 100, 110, 127, 0x83]) {
      assert.equal(rtuResponseLengthKnown(code), false, `FC ${code}`);
    }
  });
});

describe('RTU decoders: byte table', () => {
  const requests: Array<[string, Buffer, { unit: number; fc: number; pdu: string }]> = [
    ['FC 3 request', hex('01 03 00 00 00 0A C5 CD'), { unit: 1, fc: 3, pdu: '03 00 00 00 0A' }],
    ['FC 16 request, 2 registers', withCrc('11 10 00 01 00 02 04 00 0A 01 02'), { unit: 0x11, fc: 16, pdu: '10 00 01 00 02 04 00 0A 01 02' }],
    ['FC 7 request (4 bytes)', withCrc('02 07'), { unit: 2, fc: 7, pdu: '07' }],
    ['FC 43/14 request', withCrc('01 2B 0E 01 00'), { unit: 1, fc: 43, pdu: '2B 0E 01 00' }],
    ['broadcast FC 6', withCrc('00 06 00 01 00 03'), { unit: 0, fc: 6, pdu: '06 00 01 00 03' }],
  ];
  for (const [name, adu, want] of requests) {
    it(`request decoder: ${name}`, () => {
      const { frames, error } = decodeOnce(new RtuRequestDecoder(), adu);
      assert.equal(error, undefined);
      assert.equal(frames.length, 1);
      assert.equal(frames[0]?.unitId, want.unit);
      assert.equal(frames[0]?.functionCode, want.fc);
      assert.deepEqual(frames[0]?.pdu, hex(want.pdu));
      assert.deepEqual(frames[0]?.raw, adu);
    });
  }

  const responses: Array<[string, Buffer, { unit: number; fc: number; pdu: string }]> = [
    ['FC 3 response, one register 0x002A', hex('01 03 02 00 2A 39 9B'), { unit: 1, fc: 3, pdu: '03 02 00 2A' }],
    ['exception 0x83 / 0x02', hex('01 83 02 C0 F1'), { unit: 1, fc: 0x83, pdu: '83 02' }],
    ['FC 16 response', withCrc('11 10 00 01 00 02'), { unit: 0x11, fc: 16, pdu: '10 00 01 00 02' }],
    ['FC 43/14 response', withCrc('01 2B 0E 01 01 00 00 01 00 03 41 42 43'), { unit: 1, fc: 43, pdu: '2B 0E 01 01 00 00 01 00 03 41 42 43' }],
  ];
  for (const [name, adu, want] of responses) {
    it(`response decoder: ${name}`, () => {
      const { frames, error } = decodeOnce(new RtuResponseDecoder(), adu);
      assert.equal(error, undefined);
      assert.equal(frames.length, 1);
      assert.equal(frames[0]?.unitId, want.unit);
      assert.equal(frames[0]?.functionCode, want.fc);
      assert.deepEqual(frames[0]?.pdu, hex(want.pdu));
    });
  }

  it('a bad CRC is a FrameError and kills the decoder', () => {
    const decoder = new RtuRequestDecoder();
    const { frames, error } = decodeOnce(decoder, hex('01 03 00 00 00 0A C5 CE'));
    assert.equal(frames.length, 0);
    assert.ok(error instanceof FrameError);
    assert.equal(error.code, ErrorCodes.FRAME);
    assert.equal(decoder.push(hex('01 03 00 00 00 0A C5 CD')).error, error);
  });

  it('a CRC with its bytes swapped (big-endian on the wire) is refused', () => {
    const { error } = decodeOnce(new RtuResponseDecoder(), hex('01 03 02 00 2A 9B 39'));
    assert.equal(error?.code, ErrorCodes.FRAME);
  });

  it('an unknown function code is an UnknownFunctionError carrying unit and code, for a 0x01 reply', () => {
    for (const head of ['07 41 00 00', '07 2B 0D 00']) {
      const { error } = decodeOnce(new RtuRequestDecoder(), hex(head));
      assert.ok(error instanceof UnknownFunctionError);
      assert.equal(error.code, ErrorCodes.FRAME);
      assert.equal(error.unitId, 7);
      assert.equal(error.functionCode, hex(head)[1]);
    }
    assert.ok(decodeOnce(new RtuResponseDecoder(), hex('07 64 00')).error instanceof UnknownFunctionError);
  });

  const oversized: Array<[string, string, 'request' | 'response']> = [
    ['FC 16 request with byte count 248 (257 bytes)', '01 10 00 00 00 7C F8', 'request'],
    ['FC 23 request with byte count 255 (268 bytes)', '01 17 00 00 00 01 00 00 00 7F FF', 'request'],
    ['FC 3 response with byte count 252 (257 bytes)', '01 03 FC', 'response'],
    ['FC 24 response with byte count 0x0100', '01 18 01 00', 'response'],
    ['FC 43/14 response whose objects run past 256 bytes', `01 2B 0E 01 01 00 00 02 00 FF`, 'response'],
  ];
  for (const [name, head, side] of oversized) {
    it(`refuses ${name} as too large, without waiting for the bytes`, () => {
      const decoder = side === 'request' ? new RtuRequestDecoder() : new RtuResponseDecoder();
      const { error } = decodeOnce(decoder, hex(head));
      assert.equal(error?.code, ErrorCodes.FRAME_TOO_LARGE);
    });
  }

  it('FC 16 request of exactly 256 bytes (byte count 247) is accepted', () => {
    const adu = encodeRtu(1, Buffer.concat([hex('10 00 00 00 7B F7'), Buffer.alloc(247)]));
    assert.equal(adu.length, RTU_MAX_ADU_BYTES);
    const { frames, error } = decodeOnce(new RtuRequestDecoder(), adu);
    assert.equal(error, undefined);
    assert.equal(frames.length, 1);
  });

  it('keeps pipelined requests and a partial one across pushes', () => {
    const a = hex('01 03 00 00 00 0A C5 CD');
    const b = withCrc('01 10 00 01 00 02 04 00 0A 01 02');
    const decoder = new RtuRequestDecoder();
    const first = decoder.push(Buffer.concat([a, b.subarray(0, 9)]));
    assert.equal(first.frames.length, 1);
    assert.equal(decoder.bufferedBytes, 9);
    const second = decoder.push(Buffer.concat([b.subarray(9), a]));
    assert.deepEqual(
      second.frames.map((frame) => frame.raw),
      [b, a],
    );
  });
});

describe('RTU decoders: properties', () => {
  it('any chunking of valid requests yields exactly those requests', () => {
    assertChunkingIrrelevant(() => new RtuRequestDecoder(), requestAduArb);
  });

  it('any chunking of valid responses yields exactly those responses', () => {
    assertChunkingIrrelevant(() => new RtuResponseDecoder(), responseAduArb);
  });

  it('arbitrary bytes never throw and stay below one ADU buffered', () => {
    const mixed = (aduArb: fc.Arbitrary<Buffer>) =>
      fc.array(fc.oneof(aduArb, bytes(0, 12)), { maxLength: 10 }).map((parts) => Buffer.concat(parts));
    assertRobust(() => new RtuRequestDecoder(), RTU_MAX_ADU_BYTES - 1);
    assertRobust(() => new RtuResponseDecoder(), RTU_MAX_ADU_BYTES - 1);
    assertRobust(() => new RtuRequestDecoder(), RTU_MAX_ADU_BYTES - 1, mixed(requestAduArb));
    assertRobust(() => new RtuResponseDecoder(), RTU_MAX_ADU_BYTES - 1, mixed(responseAduArb));
  });

  it('encodeRtu then decode gives back unit id and PDU; parseRtu agrees', () => {
    fc.assert(
      fc.property(unitArb, requestPduArb, responsePduArb, (unit, requestPdu, responsePdu) => {
        const request = feed(new RtuRequestDecoder(), [encodeRtu(unit, requestPdu)]).frames[0];
        assert.equal(request?.unitId, unit);
        assert.deepEqual(request?.pdu, requestPdu);
        const response = feed(new RtuResponseDecoder(), [encodeRtu(unit, responsePdu)]).frames[0];
        assert.equal(response?.unitId, unit);
        assert.deepEqual(response?.pdu, responsePdu);
        const parsed = parseRtu(encodeRtu(unit, responsePdu));
        assert.ok(!(parsed instanceof FrameError));
        assert.deepEqual(parsed.pdu, responsePdu);
      }),
      PROPERTY_RUNS,
    );
  });

  it('MBAP -> RTU -> MBAP keeps unit id and PDU, with the transaction id given back', () => {
    fc.assert(
      fc.property(fc.nat({ max: 0xffff }), unitArb, requestPduArb, (tid, unit, pdu) => {
        const tcp = parseModbusTcp(encodeModbusTcp(tid, unit, pdu));
        assert.ok(!(tcp instanceof FrameError));
        const rtu = mbapToRtu(tcp);
        const rtuFrame = feed(new RtuRequestDecoder(), [rtu]).frames[0];
        assert.ok(rtuFrame !== undefined);
        const back = feed(new ModbusTcpDecoder(), [rtuToMbap(rtuFrame, tid)]).frames[0];
        assert.deepEqual(back?.raw, tcp.raw);
      }),
      PROPERTY_RUNS,
    );
  });
});

describe('RTU conversions and builders', () => {
  it('mbapToRtu drops the MBAP header and appends the CRC', () => {
    const tcp = parseModbusTcp(hex('00 2A 00 00 00 06 01 03 00 00 00 0A'));
    assert.ok(!(tcp instanceof FrameError));
    assert.deepEqual(mbapToRtu(tcp), hex('01 03 00 00 00 0A C5 CD'));
  });

  it('rtuToMbap drops the CRC and writes an MBAP header with the given transaction id', () => {
    const rtu = parseRtu(hex('01 03 02 00 2A 39 9B'));
    assert.ok(!(rtu instanceof FrameError));
    assert.deepEqual(rtuToMbap(rtu, 0x002a), hex('00 2A | 00 00 | 00 05 | 01 | 03 02 00 2A'));
  });

  it('rtuExceptionResponse builds address, fc | 0x80, code, CRC', () => {
    assert.deepEqual(rtuExceptionResponse({ unitId: 1, functionCode: 3 }, 0x02), hex('01 83 02 C0 F1'));
  });

  it('parseRtu refuses short, oversized and bad-CRC buffers', () => {
    assert.ok(parseRtu(hex('01 03 02')) instanceof FrameError);
    assert.equal((parseRtu(Buffer.alloc(257)) as FrameError).code, ErrorCodes.FRAME_TOO_LARGE);
    assert.ok(parseRtu(hex('01 03 02 00 2A 39 9C')) instanceof FrameError);
  });

  it('encodeRtu refuses an empty or oversized PDU', () => {
    assert.throws(() => encodeRtu(1, Buffer.alloc(0)), RangeError);
    assert.throws(() => encodeRtu(1, Buffer.alloc(254)), RangeError);
  });
});
