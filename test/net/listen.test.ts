import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { bindWithFallback } from '../../src/net/listen.js';

const log = pino({ level: 'silent' });

describe('listener binding', () => {
  for (const code of ['EAFNOSUPPORT', 'EADDRNOTAVAIL']) {
    it(`falls back from :: to 0.0.0.0 when the host has no IPv6 (${code})`, async () => {
      const tried: string[] = [];
      const bound = await bindWithFallback('::', async (host) => {
        tried.push(host);
        if (host === '::') throw Object.assign(new Error('no IPv6'), { code });
      }, log);
      assert.equal(bound, '0.0.0.0');
      assert.deepEqual(tried, ['::', '0.0.0.0']);
    });
  }

  it('does not hide other errors, nor fall back for an explicit address', async () => {
    await assert.rejects(
      bindWithFallback('::', async () => {
        throw Object.assign(new Error('in use'), { code: 'EADDRINUSE' });
      }, log),
      /in use/,
    );
    await assert.rejects(
      bindWithFallback('::1', async () => {
        throw Object.assign(new Error('no IPv6'), { code: 'EADDRNOTAVAIL' });
      }, log),
      /no IPv6/,
    );
  });
});
