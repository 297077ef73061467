import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ErrorCodes, FrameError } from '../../src/errors.js';
import {
  MBAP_CRC_MAX_ADU_BYTES,
  MbapCrcDecoder,
  encodeMbapCrc,
  parseMbapCrc,
} from '../../src/protocols/mbap-crc.js';
import { MODBUS_MAX_PDU_BYTES } from '../../src/protocols/modbus-tcp.js';
import { PROPERTY_RUNS, assertChunkingIrrelevant, assertRobust, decodeOnce, feed, hex } from './codec-harness.js';

const pduArb = fc.uint8Array({ minLength: 1, maxLength: MODBUS_MAX_PDU_BYTES }).map((b) => Buffer.from(b));
const aduArb = fc
  .tuple(fc.nat({ max: 0xffff }), fc.nat({ max: 0xff }), pduArb)
  .map(([tid, unit, pdu]) => encodeMbapCrc(tid, unit, pdu));

describe("MBAP+CRC (tcp-multiplexer's `modbus-rtu`): byte table", () => {
  it('decodes tcp-multiplexer\'s own test vector: length 8 = unit + 5-byte PDU + CRC 84 0A', () => {
    const adu = hex('00 01 | 00 00 | 00 08 | 01 | 03 00 00 00 01 | 84 0A');
    const { frames, error } = decodeOnce(new MbapCrcDecoder(), adu);
    assert.equal(error, undefined);
    assert.equal(frames[0]?.transactionId, 1);
    assert.equal(frames[0]?.unitId, 1);
    assert.equal(frames[0]?.functionCode, 3);
    assert.deepEqual(frames[0]?.pdu, hex('03 00 00 00 01'), 'the PDU excludes the CRC');
    assert.deepEqual(frames[0]?.raw, adu, 'raw keeps the CRC, to forward unchanged');
  });

  it('encodes the same bytes', () => {
    assert.deepEqual(encodeMbapCrc(1, 1, hex('03 00 00 00 01')), hex('00 01 00 00 00 08 01 03 00 00 00 01 84 0A'));
  });

  it('decodes the longest frame: length 256, 262 bytes', () => {
    const adu = encodeMbapCrc(2, 1, Buffer.alloc(MODBUS_MAX_PDU_BYTES, 7));
    assert.equal(adu.length, MBAP_CRC_MAX_ADU_BYTES);
    const { frames, error } = decodeOnce(new MbapCrcDecoder(), adu);
    assert.equal(error, undefined);
    assert.equal(frames[0]?.pdu.length, MODBUS_MAX_PDU_BYTES);
  });

  const invalid: Array<[string, string, string]> = [
    ['a bad CRC', '00 01 00 00 00 08 01 03 00 00 00 01 FF FF', ErrorCodes.FRAME],
    ['the CRC big-endian', '00 01 00 00 00 08 01 03 00 00 00 01 0A 84', ErrorCodes.FRAME],
    ['protocol id 1', '00 01 00 01 00 08 01 03 00 00 00 01 84 0A', ErrorCodes.FRAME],
    ['length 0', '00 01 00 00 00 00', ErrorCodes.FRAME],
    ['length 1', '00 01 00 00 00 01 01', ErrorCodes.FRAME],
    ['length 3 (no room for unit, function code and CRC)', '00 01 00 00 00 03 01 03 00', ErrorCodes.FRAME],
    ['length 257', '00 01 00 00 01 01', ErrorCodes.FRAME_TOO_LARGE],
    ['a plain Modbus TCP frame (its last 2 bytes are no CRC)', '00 01 00 00 00 06 01 03 00 00 00 01', ErrorCodes.FRAME],
  ];
  for (const [name, bytes, code] of invalid) {
    it(`refuses ${name}`, () => {
      const decoder = new MbapCrcDecoder();
      const { frames, error } = decodeOnce(decoder, hex(bytes));
      assert.equal(frames.length, 0);
      assert.equal(error?.code, code);
      assert.equal(decoder.push(encodeMbapCrc(1, 1, hex('03 00 00 00 01'))).error, error);
    });
  }

  it('parseMbapCrc checks size and CRC', () => {
    assert.ok(!(parseMbapCrc(hex('00 01 00 00 00 08 01 03 00 00 00 01 84 0A')) instanceof FrameError));
    assert.ok(parseMbapCrc(hex('00 01 00 00 00 08 01 03 00 00 00 01 84')) instanceof FrameError);
    assert.ok(parseMbapCrc(hex('00 01 00 00 00 08 01 03 00 00 00 01 84 0B')) instanceof FrameError);
    assert.ok(parseMbapCrc(hex('00 01')) instanceof FrameError);
  });
});

describe('MBAP+CRC: properties', () => {
  it('any chunking of valid frames yields exactly those frames', () => {
    assertChunkingIrrelevant(() => new MbapCrcDecoder(), aduArb);
  });

  it('arbitrary bytes never throw and stay below one ADU buffered', () => {
    const mixed = fc
      .array(fc.oneof(aduArb, fc.uint8Array({ maxLength: 12 }).map((b) => Buffer.from(b))), { maxLength: 10 })
      .map((parts) => Buffer.concat(parts));
    assertRobust(() => new MbapCrcDecoder(), MBAP_CRC_MAX_ADU_BYTES - 1);
    assertRobust(() => new MbapCrcDecoder(), MBAP_CRC_MAX_ADU_BYTES - 1, mixed);
  });

  it('encode then decode gives back the fields', () => {
    fc.assert(
      fc.property(fc.nat({ max: 0xffff }), fc.nat({ max: 0xff }), pduArb, (tid, unit, pdu) => {
        const frame = feed(new MbapCrcDecoder(), [encodeMbapCrc(tid, unit, pdu)]).frames[0];
        assert.equal(frame?.transactionId, tid);
        assert.equal(frame?.unitId, unit);
        assert.deepEqual(frame?.pdu, pdu);
      }),
      PROPERTY_RUNS,
    );
  });
});
