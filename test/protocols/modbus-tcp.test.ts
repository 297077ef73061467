import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ErrorCodes, FrameError } from '../../src/errors.js';
import {
  ExceptionCode,
  MBAP_MAX_LENGTH,
  MODBUS_MAX_PDU_BYTES,
  MODBUS_TCP_MAX_ADU_BYTES,
  ModbusTcpDecoder,
  encodeModbusTcp,
  exceptionResponse,
  isReadFunction,
  isReadRequest,
  isResponseTo,
  isWriteFunction,
  parseModbusTcp,
  parseReadRequest,
  parseWriteRange,
  readRequestKey,
  rewriteIds,
  writeResponsePdu,
} from '../../src/protocols/modbus-tcp.js';
import { PROPERTY_RUNS, assertChunkingIrrelevant, assertRobust, decodeOnce, feed, hex } from './codec-harness.js';

const pduArb = fc.uint8Array({ minLength: 1, maxLength: MODBUS_MAX_PDU_BYTES }).map((b) => Buffer.from(b));
const adusArb = fc
  .tuple(fc.nat({ max: 0xffff }), fc.nat({ max: 0xff }), pduArb)
  .map(([tid, unit, pdu]) => encodeModbusTcp(tid, unit, pdu));

/** Valid frames, MBAP headers with protocol id 0 and any length, and noise: reaches the length checks, not just pid. */
const mbapishArb = fc
  .array(
    fc.oneof(
      adusArb,
      fc.nat({ max: 0xffff }).map((length) => hex(`00 07 00 00 ${length.toString(16).padStart(4, '0')}`)),
      fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
    ),
    { maxLength: 12 },
  )
  .map((parts) => Buffer.concat(parts));

describe('Modbus TCP decoder: byte table', () => {
  const valid: Array<[string, string, { tid: number; unit: number; fc: number; pdu: string }]> = [
    [
      'FC 3 request (V1.1b3 §6.3 example): read 3 registers from 0x006B',
      '00 01 | 00 00 | 00 06 | 11 | 03 00 6B 00 03',
      { tid: 1, unit: 0x11, fc: 3, pdu: '03 00 6B 00 03' },
    ],
    [
      'FC 3 response: byte count 6, three registers',
      '00 01 | 00 00 | 00 09 | 11 | 03 06 02 2B 00 00 00 64',
      { tid: 1, unit: 0x11, fc: 3, pdu: '03 06 02 2B 00 00 00 64' },
    ],
    [
      'exception response 0x83 / 0x02 illegal data address',
      'BE EF | 00 00 | 00 03 | 01 | 83 02',
      { tid: 0xbeef, unit: 1, fc: 0x83, pdu: '83 02' },
    ],
    [
      'shortest frame: length 2 = unit id + function code only (FC 7)',
      '00 03 | 00 00 | 00 02 | FF | 07',
      { tid: 3, unit: 0xff, fc: 7, pdu: '07' },
    ],
  ];
  for (const [name, bytes, want] of valid) {
    it(`decodes ${name}`, () => {
      const { frames, error } = decodeOnce(new ModbusTcpDecoder(), hex(bytes));
      assert.equal(error, undefined);
      assert.equal(frames.length, 1);
      const [frame] = frames;
      assert.equal(frame?.transactionId, want.tid);
      assert.equal(frame?.unitId, want.unit);
      assert.equal(frame?.functionCode, want.fc);
      assert.deepEqual(frame?.pdu, hex(want.pdu));
      assert.deepEqual(frame?.raw, hex(bytes));
    });
  }

  it('decodes the longest frame: length 254 = unit id + 253-byte PDU, 260 bytes in all', () => {
    const adu = encodeModbusTcp(9, 1, Buffer.alloc(MODBUS_MAX_PDU_BYTES, 0x10));
    assert.equal(adu.length, MODBUS_TCP_MAX_ADU_BYTES);
    assert.equal(adu.readUInt16BE(4), MBAP_MAX_LENGTH);
    const { frames, error } = decodeOnce(new ModbusTcpDecoder(), adu);
    assert.equal(error, undefined);
    assert.equal(frames[0]?.pdu.length, MODBUS_MAX_PDU_BYTES);
  });

  const invalid: Array<[string, string, string]> = [
    ['protocol id 1', '00 01 | 00 01 | 00 06 | 01 | 03 00 00 00 01', ErrorCodes.FRAME],
    ['protocol id 0xFFFF', '00 01 | FF FF | 00 06 | 01 | 03 00 00 00 01', ErrorCodes.FRAME],
    ['length 0 (no unit id)', '00 01 | 00 00 | 00 00', ErrorCodes.FRAME],
    ['length 1 (unit id but no function code)', '00 01 | 00 00 | 00 01 | 01', ErrorCodes.FRAME],
    ['length 255 (PDU of 254 > 253)', '00 01 | 00 00 | 00 FF', ErrorCodes.FRAME_TOO_LARGE],
    ['length 0xFFFF', '00 01 | 00 00 | FF FF', ErrorCodes.FRAME_TOO_LARGE],
  ];
  for (const [name, bytes, code] of invalid) {
    it(`refuses ${name} as soon as the 6-byte prefix is in, and stays dead`, () => {
      const decoder = new ModbusTcpDecoder();
      const { frames, error } = decodeOnce(decoder, hex(bytes));
      assert.equal(frames.length, 0);
      assert.ok(error instanceof FrameError);
      assert.equal(error.code, code);
      assert.equal(decoder.bufferedBytes, 0);
      const again = decoder.push(encodeModbusTcp(1, 1, hex('03 00 00 00 01')));
      assert.equal(again.error, error);
      assert.deepEqual(again.frames, []);
    });
  }

  it('keeps pipelined bytes: two frames and half a third in one chunk, the rest later', () => {
    const a = hex('00 01 00 00 00 06 01 03 00 00 00 01');
    const b = hex('00 02 00 00 00 06 01 04 00 00 00 02');
    const c = hex('00 03 00 00 00 06 01 01 00 10 00 08');
    const decoder = new ModbusTcpDecoder();
    const first = decoder.push(Buffer.concat([a, b, c.subarray(0, 5)]));
    assert.deepEqual(
      first.frames.map((f) => f.transactionId),
      [1, 2],
    );
    assert.equal(decoder.bufferedBytes, 5);
    const second = decoder.push(c.subarray(5));
    assert.deepEqual(second.frames[0]?.raw, c);
    assert.equal(decoder.bufferedBytes, 0);
  });

  it('delivers the frames before a bad header in the same chunk, then the error', () => {
    const good = hex('00 01 00 00 00 06 01 03 00 00 00 01');
    const { frames, error } = decodeOnce(new ModbusTcpDecoder(), Buffer.concat([good, hex('00 02 00 05 00 06')]));
    assert.equal(frames.length, 1);
    assert.equal(error?.code, ErrorCodes.FRAME);
  });

  it('frames own their bytes: changing the pushed chunk later does not change a frame', () => {
    const chunk = hex('00 01 00 00 00 06 01 03 00 00 00 01');
    const { frames } = decodeOnce(new ModbusTcpDecoder(), chunk);
    chunk.fill(0);
    assert.equal(frames[0]?.transactionId, 1);
    assert.deepEqual(frames[0]?.raw, hex('00 01 00 00 00 06 01 03 00 00 00 01'));
  });
});

describe('Modbus TCP decoder: properties', () => {
  it('any chunking of valid frames yields exactly those frames', () => {
    assertChunkingIrrelevant(() => new ModbusTcpDecoder(), adusArb);
  });

  it('arbitrary bytes never throw, stay below one ADU buffered, and a dead decoder stays dead', () => {
    assertRobust(() => new ModbusTcpDecoder(), MODBUS_TCP_MAX_ADU_BYTES - 1, mbapishArb);
    assertRobust(() => new ModbusTcpDecoder(), MODBUS_TCP_MAX_ADU_BYTES - 1);
  });

  it('encode then decode gives back transaction id, unit id, function code and PDU', () => {
    fc.assert(
      fc.property(fc.nat({ max: 0xffff }), fc.nat({ max: 0xff }), pduArb, (tid, unit, pdu) => {
        const { frames } = feed(new ModbusTcpDecoder(), [encodeModbusTcp(tid, unit, pdu)]);
        assert.equal(frames.length, 1);
        assert.equal(frames[0]?.transactionId, tid);
        assert.equal(frames[0]?.unitId, unit);
        assert.equal(frames[0]?.functionCode, pdu[0]);
        assert.deepEqual(frames[0]?.pdu, pdu);
        const parsed = parseModbusTcp(encodeModbusTcp(tid, unit, pdu));
        assert.ok(!(parsed instanceof FrameError));
        assert.deepEqual(parsed.pdu, pdu);
      }),
      PROPERTY_RUNS,
    );
  });
});

describe('Modbus TCP encoders', () => {
  it('writes the MBAP length as unit id + PDU', () => {
    assert.deepEqual(encodeModbusTcp(0x1234, 0x11, hex('03 00 6B 00 03')), hex('12 34 | 00 00 | 00 06 | 11 | 03 00 6B 00 03'));
  });

  it('refuses an empty or oversized PDU (a bug in the caller, not network input)', () => {
    assert.throws(() => encodeModbusTcp(1, 1, Buffer.alloc(0)), RangeError);
    assert.throws(() => encodeModbusTcp(1, 1, Buffer.alloc(MODBUS_MAX_PDU_BYTES + 1)), RangeError);
  });

  it('parseModbusTcp refuses a buffer whose size disagrees with its MBAP length', () => {
    assert.ok(parseModbusTcp(hex('00 01 00 00 00 06 01 03 00 00 00')) instanceof FrameError);
    assert.ok(parseModbusTcp(hex('00 01 00 00')) instanceof FrameError);
  });

  const exceptions: Array<[string, number, string]> = [
    ['0x01 illegal function', ExceptionCode.ILLEGAL_FUNCTION, '12 34 00 00 00 03 05 83 01'],
    ['0x06 server busy', ExceptionCode.SERVER_DEVICE_BUSY, '12 34 00 00 00 03 05 83 06'],
    ['0x0A gateway path unavailable', ExceptionCode.GATEWAY_PATH_UNAVAILABLE, '12 34 00 00 00 03 05 83 0A'],
    ['0x0B gateway target failed to respond', ExceptionCode.GATEWAY_TARGET_FAILED_TO_RESPOND, '12 34 00 00 00 03 05 83 0B'],
  ];
  for (const [name, code, bytes] of exceptions) {
    it(`builds exception ${name} with the request's transaction id and unit id`, () => {
      const request = { transactionId: 0x1234, unitId: 5, functionCode: 3 };
      assert.deepEqual(exceptionResponse(request, code), hex(bytes));
    });
  }

  it('exception codes match V1.1b3 §7', () => {
    assert.deepEqual(
      [
        ExceptionCode.ILLEGAL_FUNCTION,
        ExceptionCode.ILLEGAL_DATA_ADDRESS,
        ExceptionCode.ILLEGAL_DATA_VALUE,
        ExceptionCode.SERVER_DEVICE_FAILURE,
        ExceptionCode.SERVER_DEVICE_BUSY,
        ExceptionCode.GATEWAY_PATH_UNAVAILABLE,
        ExceptionCode.GATEWAY_TARGET_FAILED_TO_RESPOND,
      ],
      [0x01, 0x02, 0x03, 0x04, 0x06, 0x0a, 0x0b],
    );
  });

  it('rewriteIds copies by default and leaves the original untouched', () => {
    const original = parseModbusTcp(hex('00 01 00 00 00 06 11 03 00 6B 00 03'));
    assert.ok(!(original instanceof FrameError));
    const rewritten = rewriteIds(original, 0xabcd, 0x22);
    assert.deepEqual(rewritten.raw, hex('AB CD 00 00 00 06 22 03 00 6B 00 03'));
    assert.equal(rewritten.transactionId, 0xabcd);
    assert.equal(rewritten.unitId, 0x22);
    assert.deepEqual(original.raw, hex('00 01 00 00 00 06 11 03 00 6B 00 03'));
  });

  it('rewriteIds in place writes into the same bytes', () => {
    const original = parseModbusTcp(hex('00 01 00 00 00 06 11 03 00 6B 00 03'));
    assert.ok(!(original instanceof FrameError));
    const rewritten = rewriteIds(original, 7, 8, { inPlace: true });
    assert.equal(rewritten.raw, original.raw);
    assert.deepEqual(original.raw, hex('00 07 00 00 00 06 08 03 00 6B 00 03'));
    assert.equal(rewritten.pdu[0], 3);
  });
});

describe('Modbus PDU helpers', () => {
  it('isReadFunction: FC 1-4, 7, 11, 12, 17, 20, 24 and 43/14 read; writes, FC 8 and 43/13 do not', () => {
    for (const code of [1, 2, 3, 4, 7, 11, 12, 17, 20, 24]) assert.equal(isReadFunction(code), true, `FC ${code}`);
    assert.equal(isReadFunction(43, 14), true);
    for (const code of [5, 6, 8, 15, 16, 21, 22, 23, 0, 65, 100, 0x83]) assert.equal(isReadFunction(code), false, `FC ${code}`);
    assert.equal(isReadFunction(43, 13), false);
    assert.equal(isReadFunction(43), false);
    assert.equal(isReadRequest(hex('2B 0E 01 00')), true);
    assert.equal(isReadRequest(hex('2B 0D 00')), false);
    assert.equal(isReadRequest(Buffer.alloc(0)), false);
  });

  it('isWriteFunction: exactly FC 5, 6, 15, 16, 22, 23', () => {
    const writes = Array.from({ length: 256 }, (_, code) => code).filter(isWriteFunction);
    assert.deepEqual(writes, [5, 6, 15, 16, 22, 23]);
  });

  it('parseReadRequest extracts address and quantity of FC 1-4 only', () => {
    assert.deepEqual(parseReadRequest(hex('03 00 6B 00 03')), { functionCode: 3, address: 0x6b, quantity: 3 });
    assert.deepEqual(parseReadRequest(hex('01 00 13 00 13')), { functionCode: 1, address: 0x13, quantity: 0x13 });
    assert.equal(parseReadRequest(hex('03 00 6B 00')), undefined, 'truncated');
    assert.equal(parseReadRequest(hex('03 00 6B 00 03 00')), undefined, 'trailing byte');
    assert.equal(parseReadRequest(hex('06 00 01 00 03')), undefined, 'a write');
    assert.equal(readRequestKey(0x11, hex('04 00 08 00 01')), '17:4:8:1');
    assert.equal(readRequestKey(0x11, hex('10 00 01 00 01 02 00 0A')), undefined);
  });

  const writes: Array<[string, string, ReturnType<typeof parseWriteRange>]> = [
    ['FC 5 coil 0x00AC on (§6.5 example)', '05 00 AC FF 00', { functionCode: 5, table: 'coils', first: 0xac, last: 0xac }],
    ['FC 6 register 1 (§6.6 example)', '06 00 01 00 03', { functionCode: 6, table: 'holdingRegisters', first: 1, last: 1 }],
    ['FC 15 ten coils from 0x13 (§6.11 example)', '0F 00 13 00 0A 02 CD 01', { functionCode: 15, table: 'coils', first: 0x13, last: 0x1c }],
    ['FC 16 two registers from 1 (§6.12 example)', '10 00 01 00 02 04 00 0A 01 02', { functionCode: 16, table: 'holdingRegisters', first: 1, last: 2 }],
    ['FC 22 register 4 (§6.16 example)', '16 00 04 00 F2 00 25', { functionCode: 22, table: 'holdingRegisters', first: 4, last: 4 }],
    ['FC 23 writes 3 registers from 0x0E (§6.17 example)', '17 00 03 00 06 00 0E 00 03 06 00 FF 00 FF 00 FF', { functionCode: 23, table: 'holdingRegisters', first: 0x0e, last: 0x10 }],
    ['FC 16 up to the last address', '10 FF FE 00 02 04 00 00 00 00', { functionCode: 16, table: 'holdingRegisters', first: 0xfffe, last: 0xffff }],
    ['FC 16 running past 0xFFFF', '10 FF FF 00 02 04 00 00 00 00', undefined],
    ['FC 16 byte count not 2 x quantity', '10 00 01 00 02 03 00 0A 01', undefined],
    ['FC 16 PDU shorter than its byte count', '10 00 01 00 02 04 00 0A 01', undefined],
    ['FC 16 quantity 0', '10 00 01 00 00 00', undefined],
    ['FC 16 quantity 124 > 123', `10 00 00 00 7C F8 ${'00 '.repeat(248)}`, undefined],
    ['FC 15 quantity 0', '0F 00 13 00 00 00', undefined],
    ['FC 15 byte count not ceil(quantity / 8)', '0F 00 13 00 0A 01 CD', undefined],
    ['FC 5 truncated', '05 00 AC FF', undefined],
    ['FC 23 write quantity 0', '17 00 03 00 06 00 0E 00 00 00', undefined],
    ['FC 3 is not a write', '03 00 00 00 01', undefined],
    ['empty PDU', '', undefined],
  ];
  for (const [name, pdu, want] of writes) {
    it(`parseWriteRange: ${name}`, () => {
      assert.deepEqual(parseWriteRange(hex(pdu)), want);
    });
  }

  it('writeResponsePdu gives the normal answer to a write, for local broadcast replies', () => {
    assert.deepEqual(writeResponsePdu(hex('05 00 AC FF 00')), hex('05 00 AC FF 00'));
    assert.deepEqual(writeResponsePdu(hex('06 00 01 00 03')), hex('06 00 01 00 03'));
    assert.deepEqual(writeResponsePdu(hex('16 00 04 00 F2 00 25')), hex('16 00 04 00 F2 00 25'));
    assert.deepEqual(writeResponsePdu(hex('0F 00 13 00 0A 02 CD 01')), hex('0F 00 13 00 0A'));
    assert.deepEqual(writeResponsePdu(hex('10 00 01 00 02 04 00 0A 01 02')), hex('10 00 01 00 02'));
    assert.equal(writeResponsePdu(hex('17 00 03 00 06 00 0E 00 03 06 00 FF 00 FF 00 FF')), undefined);
    assert.equal(writeResponsePdu(hex('03 00 00 00 01')), undefined);
  });

  it('isResponseTo: same unit and function code, or the exception code', () => {
    const request = { unitId: 1, functionCode: 3 };
    assert.equal(isResponseTo(request, { unitId: 1, functionCode: 3 }), true);
    assert.equal(isResponseTo(request, { unitId: 1, functionCode: 0x83 }), true);
    assert.equal(isResponseTo(request, { unitId: 2, functionCode: 3 }), false);
    assert.equal(isResponseTo(request, { unitId: 1, functionCode: 4 }), false);
    assert.equal(isResponseTo(request, { unitId: 1, functionCode: 0x84 }), false);
  });
});
