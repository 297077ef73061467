import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { JoinLineParser } from '../../../src/engines/groups/join.js';

const PREFIX = Buffer.from('SOCKETFORWARDER-NEW:');
const parser = (max = 10240) => new JoinLineParser(PREFIX, max);

describe('join line parser', () => {
  // Annotated cases: input chunks → result.
  const cases: Array<{ name: string; chunks: string[]; quiet?: boolean; expect: object }> = [
    { name: 'newline ends the group id', chunks: ['SOCKETFORWARDER-NEW:g1\n'], expect: { kind: 'joined', groupId: 'g1', rest: '' } },
    { name: '\\r\\n: the \\r is removed', chunks: ['SOCKETFORWARDER-NEW:g1\r\n'], expect: { kind: 'joined', groupId: 'g1', rest: '' } },
    { name: 'bytes after the newline are the first data', chunks: ['SOCKETFORWARDER-NEW:g\nabc\ndef'], expect: { kind: 'joined', groupId: 'g', rest: 'abc\ndef' } },
    { name: 'empty group id', chunks: ['SOCKETFORWARDER-NEW:\n'], expect: { kind: 'joined', groupId: '', rest: '' } },
    { name: 'no newline: pending until quiet', chunks: ['SOCKETFORWARDER-NEW:g2'], expect: { kind: 'pending' } },
    { name: 'quiet gap ends a complete prefix', chunks: ['SOCKETFORWARDER-NEW:g2'], quiet: true, expect: { kind: 'joined', groupId: 'g2', rest: '' } },
    { name: 'quiet gap does not end a partial prefix', chunks: ['SOCKETFORWARD'], quiet: true, expect: { kind: 'pending' } },
    { name: 'a wrong first byte is refused at once', chunks: ['X'], expect: { kind: 'refused', reason: 'no_prefix' } },
    { name: 'case matters', chunks: ['socketforwarder-new:g\n'], expect: { kind: 'refused', reason: 'no_prefix' } },
    { name: 'a newline inside the prefix is refused', chunks: ['SOCKET\n'], expect: { kind: 'refused', reason: 'no_prefix' } },
    { name: 'split across writes', chunks: ['SOCK', 'ETFORWARDER-NEW:gr', 'oup\r', '\nrest'], expect: { kind: 'joined', groupId: 'group', rest: 'rest' } },
    { name: 'UTF-8 group ids', chunks: ['SOCKETFORWARDER-NEW:wärme', 'pumpe\n'], expect: { kind: 'joined', groupId: 'wärmepumpe', rest: '' } },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const p = parser();
      let result = p.push(Buffer.alloc(0));
      for (const chunk of c.chunks) result = p.push(Buffer.from(chunk));
      if (c.quiet) result = p.quiet();
      const shown = result.kind === 'joined' ? { ...result, rest: result.rest.toString() } : result.kind === 'refused' ? { kind: result.kind, reason: result.reason } : result;
      assert.deepEqual(shown, c.expect);
    });
  }

  it('refuses a line longer than MAX_MESSAGE_BYTES, with or without a newline', () => {
    const long = `SOCKETFORWARDER-NEW:${'x'.repeat(50)}`;
    const a = parser(40).push(Buffer.from(long));
    assert.equal(a.kind === 'refused' && a.reason, 'too_long');
    assert.equal(a.kind === 'refused' && a.error.code, 'SWB_ERR_FRAME_TOO_LARGE');
    const b = parser(40).push(Buffer.from(`${long}\n`));
    assert.equal(b.kind === 'refused' && b.reason, 'too_long');
    const exact = parser(PREFIX.length + 5).push(Buffer.from('SOCKETFORWARDER-NEW:12345\r\n'));
    assert.equal(exact.kind, 'joined', 'the newline and \\r do not count');
  });

  it('gives the same result however the bytes are chunked (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 30 }).filter((s) => !s.includes('\n')), fc.uint8Array({ maxLength: 50 }), fc.array(fc.nat(80), { maxLength: 6 }), (groupId, rest, cuts) => {
        const input = Buffer.concat([PREFIX, Buffer.from(`${groupId}\n`), Buffer.from(rest)]);
        // Feed the pieces until the parser joins; from then on the engine, not the parser, owns the bytes.
        const p = parser();
        const pieces: Buffer[] = [];
        let offset = 0;
        for (const cut of cuts.map((c) => c % (input.length + 1)).sort((x, y) => x - y)) {
          pieces.push(input.subarray(offset, Math.max(offset, cut)));
          offset = Math.max(offset, cut);
        }
        pieces.push(input.subarray(offset));
        let result = p.push(Buffer.alloc(0));
        let consumed = 0;
        for (const piece of pieces) {
          if (result.kind !== 'pending') break;
          result = p.push(piece);
          consumed += piece.length;
        }
        assert.equal(result.kind, 'joined');
        if (result.kind !== 'joined') return;
        assert.equal(result.groupId, groupId.replace(/\r$/, ''));
        assert.deepEqual(Buffer.concat([result.rest, input.subarray(consumed)]), Buffer.from(rest));
      }),
    );
  });

  it('never throws and stays bounded on arbitrary bytes (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 10 }), (chunks) => {
        const p = parser(100);
        for (const chunk of chunks) {
          const result = p.push(Buffer.from(chunk));
          if (result.kind === 'joined') assert.ok(Buffer.byteLength(result.groupId) <= 100);
        }
        p.quiet();
      }),
    );
  });
});
