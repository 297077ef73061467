/**
 * .env.example and README's settings tables must agree with the settings table the schema is built from.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { renderEnvExample } from '../../src/config/docs.js';
import { SETTINGS } from '../../src/config/settings.js';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

describe('documentation of the settings', () => {
  it('.env.example lists every setting with its default (regenerate: npx tsx scripts/settings-docs.ts)', () => {
    const envExample = read('.env.example');
    assert.equal(envExample, renderEnvExample());
    for (const s of SETTINGS) {
      assert.ok(envExample.includes(`# ${s.name}=${s.name === 'MODE' ? '' : s.default ?? ''}\n`), s.name);
    }
  });

  it('README has one table row per setting with the same default', () => {
    const readme = read('README.md');
    // One name may have a row per mode (LISTEN_PORT: mux 5020, share 3333), each with that mode's default.
    const rows = new Map<string, string[]>();
    for (const match of readme.matchAll(/^\| `([A-Z][A-Z0-9_]+)` \| `([^`]*)` \|/gm)) {
      rows.set(match[1]!, [...(rows.get(match[1]!) ?? []), match[2]!]);
    }
    for (const s of SETTINGS) {
      const expected = s.name === 'MODE' ? 'inferred' : s.default === '' ? 'empty' : (s.default ?? 'required');
      assert.ok(rows.get(s.name)?.includes(expected), `README row for ${s.name} with default ${expected}; found ${rows.get(s.name)}`);
    }
    assert.deepEqual([...rows.keys()].filter((name) => !SETTINGS.some((s) => s.name === name)), [], 'README lists no unknown setting');
  });

  it('README shows the two commands first', () => {
    const readme = read('README.md');
    const firstBlock = /```sh\n([\s\S]*?)```/.exec(readme)![1]!;
    assert.match(firstBlock, /^npm ci && npm start/m);
    assert.match(firstBlock, /^npm test/m);
  });
});
