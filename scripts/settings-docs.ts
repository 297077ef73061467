/**
 * Writes .env.example from the settings table (src/config/settings.ts) and prints README's settings tables, so both stay
 * in step with the schema. test/config/docs.test.ts fails when either drifts.
 *   npx tsx scripts/settings-docs.ts            rewrite .env.example
 *   npx tsx scripts/settings-docs.ts --readme   print the README tables
 */
import { writeFileSync } from 'node:fs';
import { renderEnvExample, renderReadmeTable } from '../src/config/docs.js';

if (process.argv.includes('--readme')) {
  process.stdout.write(renderReadmeTable('common') + '\n\n' + renderReadmeTable('groups') + '\n');
} else {
  writeFileSync(new URL('../.env.example', import.meta.url), renderEnvExample());
}
