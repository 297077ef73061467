/**
 * READ_ONLY and WRITE_ALLOW as a pure decision (src/engines/mux/modbus/policy.ts): a request's client unit id and PDU in,
 * exception 0x01 or "may pass" out. PDUs are annotated byte strings (function code first).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ModbusPolicy, changesState, upstreamUnitOf } from '../../../../src/engines/mux/modbus/policy.js';
import { hex } from '../../../protocols/codec-harness.js';

const REFUSED = 0x01;

describe('ModbusPolicy', () => {
  const readOnly = new ModbusPolicy({ readOnly: true, writeAllow: [] });

  const reads: Array<[string, string]> = [
    ['FC 1 read coils', '01 0000 0010'],
    ['FC 2 read discrete inputs', '02 0000 0010'],
    ['FC 3 read holding registers', '03 9C40 000A'],
    ['FC 4 read input registers', '04 0000 0001'],
    ['FC 7 read exception status', '07'],
    ['FC 11 get comm event counter', '0B'],
    ['FC 12 get comm event log', '0C'],
    ['FC 17 report server id', '11'],
    ['FC 20 read file record', '14 07 06 0004 0001 0002'],
    ['FC 24 read FIFO queue', '18 04DE'],
    ['FC 43/14 read device identification', '2B 0E 01 00'],
  ];
  for (const [name, pdu] of reads) {
    it(`READ_ONLY lets ${name} through`, () => assert.equal(readOnly.refusal(1, hex(pdu)), undefined));
  }

  const refused: Array<[string, string]> = [
    ['FC 5 write single coil', '05 00AC FF00'],
    ['FC 6 write single register', '06 0001 0003'],
    ['FC 8 diagnostics (restart communications)', '08 0001 0000'],
    ['FC 15 write multiple coils', '0F 0013 000A 02 CD01'],
    ['FC 16 write multiple registers', '10 0001 0002 04 000A 0102'],
    ['FC 21 write file record', '15 0D 06 0004 0007 0003 06AF 04BE 100D'],
    ['FC 22 mask write register', '16 0004 00F2 0025'],
    ['FC 23 read/write multiple registers', '17 0003 0006 000E 0003 06 00FF 00FF 00FF'],
    ['FC 43/13 CANopen general reference', '2B 0D 00'],
    ['vendor code 0x41', '41 0102'],
    ['vendor code 0x64', '64'],
  ];
  for (const [name, pdu] of refused) {
    it(`READ_ONLY refuses ${name} with 0x01`, () => assert.equal(readOnly.refusal(1, hex(pdu)), REFUSED));
  }

  it('without READ_ONLY nothing is refused, not even a malformed write or a vendor code', () => {
    const open = new ModbusPolicy({ readOnly: false, writeAllow: [] });
    for (const pdu of ['06 0001', '41 0102', '08 0001 0000', '10 0001 0002 03 0000 00']) assert.equal(open.refusal(1, hex(pdu)), undefined);
  });

  describe('WRITE_ALLOW=1:40000-40010 (protocol addresses, coils and registers alike, on the client unit id)', () => {
    const policy = new ModbusPolicy({ readOnly: true, writeAllow: [{ unit: 1, first: 40000, last: 40010 }] });
    const cases: Array<[string, number, string, number | undefined]> = [
      ['FC 6 at 40000 (first allowed)', 1, '06 9C40 0001', undefined],
      ['FC 6 at 40010 (last allowed)', 1, '06 9C4A 0001', undefined],
      ['FC 6 at 39999 (one below)', 1, '06 9C3F 0001', REFUSED],
      ['FC 6 at 40011 (one above)', 1, '06 9C4B 0001', REFUSED],
      ['FC 6 at 40000 of unit 2 (another unit)', 2, '06 9C40 0001', REFUSED],
      ['FC 5 coil at 40005 (same address space)', 1, '05 9C45 FF00', undefined],
      ['FC 16 40000-40010 (exactly the range)', 1, `10 9C40 000B 16 ${'0001 '.repeat(11)}`, undefined],
      ['FC 16 40009-40012 (reaches outside: refused whole)', 1, '10 9C49 0004 08 0001 0002 0003 0004', REFUSED],
      ['FC 16 39998-40001 (starts outside)', 1, '10 9C3E 0004 08 0001 0002 0003 0004', REFUSED],
      ['FC 16 with a byte count not matching the quantity (malformed)', 1, '10 9C40 0002 03 0001 00', REFUSED],
      ['FC 16 cut short (malformed)', 1, '10 9C40', REFUSED],
      ['FC 6 of 3 bytes (malformed)', 1, '06 9C40', REFUSED],
      ['FC 15 coils 40002-40009', 1, '0F 9C42 0008 01 FF', undefined],
      ['FC 15 coils 40008-40015 (reaches outside)', 1, '0F 9C48 0008 01 FF', REFUSED],
      ['FC 22 mask write at 40003', 1, '16 9C43 00F2 0025', undefined],
      ['FC 23 writing 40000-40002 (its read half elsewhere is a read)', 1, '17 0000 0010 9C40 0003 06 0001 0002 0003', undefined],
      ['FC 23 writing 40010-40011 (write half reaches outside)', 1, '17 9C40 0002 9C4A 0002 04 0001 0002', REFUSED],
      ['FC 8 diagnostics stays refused', 1, '08 0000 1234', REFUSED],
      ['FC 21 write file record (not a WRITE_ALLOW function)', 1, '15 0D 06 0004 0007 0003 06AF 04BE 100D', REFUSED],
      ['FC 3 read anywhere', 2, '03 0000 0001', undefined],
    ];
    for (const [name, unit, pdu, want] of cases) {
      it(name, () => assert.equal(policy.refusal(unit, hex(pdu)), want));
    }
  });

  it('ranges of one unit that overlap or touch are merged: a write across their seam passes, across a hole it does not', () => {
    const policy = new ModbusPolicy({
      readOnly: true,
      writeAllow: [
        { unit: 1, first: 100, last: 104 },
        { unit: 1, first: 105, last: 109 },
        { unit: 1, first: 111, last: 120 },
        { unit: 2, first: 109, last: 111 },
      ],
    });
    assert.equal(policy.refusal(1, hex('10 0066 0004 08 0001 0002 0003 0004')), undefined); // 102-105
    assert.equal(policy.refusal(1, hex('10 006C 0004 08 0001 0002 0003 0004')), REFUSED); // 108-111: 110 is not allowed
    assert.equal(policy.refusal(1, hex('06 006E 0001')), REFUSED); // 110
    assert.equal(policy.refusal(2, hex('06 006E 0001')), undefined); // 110 of unit 2
  });

  it('a write running past address 65535 is malformed and refused even with the whole space allowed', () => {
    const policy = new ModbusPolicy({ readOnly: true, writeAllow: [{ unit: 1, first: 0, last: 65535 }] });
    assert.equal(policy.refusal(1, hex('10 FFFF 0002 04 0001 0002')), REFUSED);
    assert.equal(policy.refusal(1, hex('10 FFFE 0002 04 0001 0002')), undefined);
  });
});

describe('changesState and upstreamUnitOf', () => {
  it('anything off the read allow-list may change the device (FC 8, vendor codes, writes); reads do not', () => {
    for (const pdu of ['05 0000 FF00', '06 0000 0001', '08 0001 0000', '41', '2B 0D 00', '17 0000 0001 0000 0001 02 0000']) {
      assert.equal(changesState(hex(pdu)), true, pdu);
    }
    for (const pdu of ['01 0000 0001', '03 0000 0001', '04 0000 0001', '2B 0E 01 00', '11']) assert.equal(changesState(hex(pdu)), false, pdu);
  });

  it('UNIT_MAP maps listed client units and leaves the others alone', () => {
    const map = new Map([[1, 0], [7, 3]]);
    assert.equal(upstreamUnitOf(1, map), 0);
    assert.equal(upstreamUnitOf(7, map), 3);
    assert.equal(upstreamUnitOf(3, map), 3);
    assert.equal(upstreamUnitOf(0, map), 0);
  });
});
