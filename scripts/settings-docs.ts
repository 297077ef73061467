/**
 * Writes .env.example from the settings table (src/config/settings.ts) and prints README's settings tables, so both stay
 * in step with the schema. test/config/docs.test.ts fails when either drifts.
 *   npx tsx scripts/settings-docs.ts            rewrite .env.example
 *   npx tsx scripts/settings-docs.ts --readme [common|groups|mux|share|relay|agent]   print README tables
 */
import { writeFileSync } from 'node:fs';
import { renderEnvExample, renderReadmeTable } from '../src/config/docs.js';

const readme = process.argv.indexOf('--readme');
if (readme >= 0) {
  const scopes = process.argv.slice(readme + 1) as Array<Parameters<typeof renderReadmeTable>[0]>;
  for (const scope of scopes.length > 0 ? scopes : (['common', 'groups'] as const)) {
    process.stdout.write(`${renderReadmeTable(scope)}\n\n`);
  }
} else {
  writeFileSync(new URL('../.env.example', import.meta.url), renderEnvExample());
}
