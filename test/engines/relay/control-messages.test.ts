/**
 * The control protocol codec (src/engines/relay/control/messages.ts): the documented HMAC test vector, line limits, schema
 * checks, and decoding under arbitrary chunking.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  authTag,
  ControlLineDecoder,
  encodeControl,
  MAX_CONTROL_LINE_BYTES,
  parseControl,
  PREAMBLE,
  verifyAuthTag,
  type ControlMessage,
} from '../../../src/engines/relay/control/messages.js';
import { ErrorCodes, FrameError } from '../../../src/errors.js';

describe('relay control messages', () => {
  it('the preamble is the 8 bytes SWBMUX1\\n', () => {
    assert.deepEqual([...PREAMBLE], [0x53, 0x57, 0x42, 0x4d, 0x55, 0x58, 0x31, 0x0a]);
  });

  it('auth tag matches the test vector of docs/relay-protocol.md, compared in constant time', () => {
    const nonce = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';
    const tag = '9868c71773367d46c9a041f5127fa89300d7efba16b255a8c2435260f5f338ac';
    assert.equal(authTag('correct horse battery staple', nonce), tag);
    assert.equal(verifyAuthTag('correct horse battery staple', nonce, tag), true);
    assert.equal(verifyAuthTag('correct horse battery stapl', nonce, tag), false);
    assert.equal(verifyAuthTag('correct horse battery staple', nonce, tag.slice(2)), false);
  });

  it('refuses malformed messages with a FrameError, never a throw', () => {
    for (const line of ['', 'nope', '[]', '{"type":"bind","port":70000}', '{"type":"bind","port":"80"}', '{"type":"auth","tag":"XYZ"}', '{"type":"launch"}']) {
      assert.ok(parseControl(line) instanceof FrameError, line);
    }
    assert.deepEqual(parseControl('{"type":"bind","port":0}'), { type: 'bind' });
    assert.deepEqual(parseControl('{"type":"bind","port":8001,"leaseId":"ab","extra":1}'), { type: 'bind', port: 8001, leaseId: 'ab' });
  });

  it('a line beyond 4096 bytes is FRAME_TOO_LARGE, with or without its newline', () => {
    const decoder = new ControlLineDecoder();
    const { error } = decoder.push(Buffer.alloc(MAX_CONTROL_LINE_BYTES, 0x20));
    assert.equal(error?.code, ErrorCodes.FRAME_TOO_LARGE);
    const long = Buffer.from(`{"type":"bind","leaseId":"${'a'.repeat(MAX_CONTROL_LINE_BYTES)}"}\n`);
    assert.equal(new ControlLineDecoder().push(long).error?.code, ErrorCodes.FRAME_TOO_LARGE);
  });

  it('decodes the same messages however the bytes are chunked', () => {
    const message = fc.oneof(
      fc.record({ type: fc.constant('bind' as const), port: fc.integer({ min: 1, max: 65535 }) }),
      fc.record({ type: fc.constant('auth' as const), tag: fc.stringMatching(/^[0-9a-f]{64}$/) }),
      fc.record({ type: fc.constant('bound' as const), port: fc.integer({ min: 1, max: 65535 }), leaseId: fc.stringMatching(/^[0-9a-f]{32}$/), leaseTtlMs: fc.nat() }),
      fc.record({ type: fc.constant('error' as const), code: fc.constant('pool_exhausted' as const), message: fc.string({ maxLength: 200 }) }),
    );
    fc.assert(
      fc.property(fc.array(message, { maxLength: 10 }), fc.array(fc.integer({ min: 1, max: 50 })), (messages, cuts) => {
        const bytes = Buffer.concat(messages.map((m) => encodeControl(m as ControlMessage)));
        const decoder = new ControlLineDecoder();
        const out: ControlMessage[] = [];
        let offset = 0;
        for (const cut of [...cuts, bytes.length]) {
          if (offset >= bytes.length) break;
          const { messages: got, error } = decoder.push(bytes.subarray(offset, offset + cut));
          assert.equal(error, undefined);
          out.push(...got);
          offset += cut;
        }
        assert.deepEqual(out, JSON.parse(JSON.stringify(messages)));
      }),
    );
  });
});
