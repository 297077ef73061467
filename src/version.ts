import { readFileSync } from 'node:fs';

/** package.json sits one level above both src/ (tsx) and dist/ (the image), so one relative URL serves both. */
export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
