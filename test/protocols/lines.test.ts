import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ErrorCodes } from '../../src/errors.js';
import { DEFAULT_MAX_LINE_BYTES, LineDecoder, encodeLine } from '../../src/protocols/lines.js';
import { PROPERTY_RUNS, assertChunkingIrrelevant, assertRobust, decodeOnce, feed, splitAt } from './codec-harness.js';

const text = (s: string) => Buffer.from(s, 'latin1');
const payloadArb = (max: number) =>
  fc.uint8Array({ maxLength: max }).map((b) => Buffer.from(b.filter((byte) => byte !== 0x0a)));

describe('echo lines: byte table', () => {
  const cases: Array<[string, string[], string[]]> = [
    ['one line', ['hello\n'], ['hello\n']],
    ['two pipelined lines in one chunk (tcp-multiplexer loses the second)', ['a\nb\n'], ['a\n', 'b\n']],
    ['a line split over three chunks', ['he', 'll', 'o\n'], ['hello\n']],
    ['an empty line', ['\n'], ['\n']],
    ['CRLF keeps the \\r in the payload', ['x\r\n'], ['x\r\n']],
    ['a line and the start of the next', ['a\nbc'], ['a\n']],
  ];
  for (const [name, chunks, want] of cases) {
    it(name, () => {
      const { frames, error } = feed(new LineDecoder(), chunks.map(text));
      assert.equal(error, undefined);
      assert.deepEqual(
        frames.map((frame) => frame.raw.toString('latin1')),
        want,
      );
    });
  }

  it('the payload excludes the \\n', () => {
    const { frames } = decodeOnce(new LineDecoder(), text('x\r\n'));
    assert.equal(frames[0]?.payload.toString('latin1'), 'x\r');
  });

  it('keeps the partial line buffered', () => {
    const decoder = new LineDecoder();
    decoder.push(text('a\nbcd'));
    assert.equal(decoder.bufferedBytes, 3);
  });

  it('accepts a line of exactly maxLineBytes, \\n included', () => {
    const { frames, error } = decodeOnce(new LineDecoder({ maxLineBytes: 4 }), text('abc\n'));
    assert.equal(error, undefined);
    assert.equal(frames.length, 1);
  });

  it('refuses a longer line as soon as it has maxLineBytes without a \\n', () => {
    const decoder = new LineDecoder({ maxLineBytes: 4 });
    assert.equal(decoder.push(text('abc')).error, undefined);
    const { error } = decoder.push(text('d'));
    assert.equal(error?.code, ErrorCodes.FRAME_TOO_LARGE);
    assert.equal(decoder.bufferedBytes, 0);
    assert.equal(decoder.push(text('\n')).error, error);
  });

  it('refuses a too-long line that ends inside the chunk, after delivering the lines before it', () => {
    const { frames, error } = decodeOnce(new LineDecoder({ maxLineBytes: 4 }), text('ok\nabcd\n'));
    assert.deepEqual(
      frames.map((frame) => frame.raw.toString('latin1')),
      ['ok\n'],
    );
    assert.equal(error?.code, ErrorCodes.FRAME_TOO_LARGE);
  });

  it('refuses an invalid bound', () => {
    assert.throws(() => new LineDecoder({ maxLineBytes: 0 }), RangeError);
  });

  it('encodeLine appends \\n and refuses a payload containing one', () => {
    assert.deepEqual(encodeLine(text('hi')), text('hi\n'));
    assert.throws(() => encodeLine(text('a\nb')), RangeError);
  });

  it('a 64 KiB line fed one byte at a time is fast (no quadratic rescans)', () => {
    const line = Buffer.concat([Buffer.alloc(DEFAULT_MAX_LINE_BYTES - 1, 0x61), text('\n')]);
    const started = performance.now();
    const { frames } = feed(new LineDecoder(), splitAt(line, Array.from({ length: line.length }, (_, i) => i)));
    assert.equal(frames.length, 1);
    assert.ok(performance.now() - started < 1000);
  });
});

describe('echo lines: properties', () => {
  it('any chunking of valid lines yields exactly those lines', () => {
    assertChunkingIrrelevant(() => new LineDecoder({ maxLineBytes: 64 }), payloadArb(63).map(encodeLine));
  });

  it('arbitrary bytes never throw and stay below maxLineBytes buffered', () => {
    assertRobust(() => new LineDecoder({ maxLineBytes: 64 }), 63);
    assertRobust(
      () => new LineDecoder({ maxLineBytes: 64 }),
      63,
      fc.array(fc.oneof(payloadArb(100), fc.constant(text('\n'))), { maxLength: 20 }).map((parts) => Buffer.concat(parts)),
    );
  });

  it('encode then decode gives back the payload', () => {
    fc.assert(
      fc.property(payloadArb(200), (payload) => {
        const frame = feed(new LineDecoder(), [encodeLine(payload)]).frames[0];
        assert.deepEqual(frame?.payload, payload);
      }),
      PROPERTY_RUNS,
    );
  });
});
