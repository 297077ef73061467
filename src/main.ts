#!/usr/bin/env node
/**
 * Process lifecycle: config -> logger -> metrics -> engine -> sidecar -> signals.
 * A bad configuration exits 1 before anything listens, with one line per problem on stderr.
 */
import closeWithGrace from 'close-with-grace';
import { App } from './app.js';
import { applyCommandLine } from './config/cli.js';
import { ConfigError, loadConfig, type LoadedConfig } from './config/load.js';
import { createLogger } from './log.js';
import { VERSION } from './version.js';

/** Time beyond SHUTDOWN_GRACE_MS for closing the sidecar before close-with-grace forces exit 1. */
const SHUTDOWN_MARGIN_MS = 2000;

async function main(): Promise<void> {
  let loaded: LoadedConfig;
  try {
    loaded = loadConfig(applyCommandLine(process.argv.slice(2), process.env));
  } catch (error) {
    if (error instanceof ConfigError) {
      for (const problem of error.problems) process.stderr.write(`switchboard: ${problem}\n`);
      process.stderr.write(`switchboard: configuration error (${error.code}); nothing was started\n`);
      process.exit(1);
    }
    throw error;
  }
  const { config } = loaded;
  const log = createLogger({ level: config.logLevel, format: config.logFormat });
  for (const warning of loaded.warnings) log.warn({ code: 'SWB_WARN_CONFIG' }, warning);
  log.info(
    { version: VERSION, mode: config.mode, modeFrom: loaded.modeSource, profile: loaded.profile, config: loaded.summary },
    `starting switchboard in ${config.mode} mode`,
  );

  const app = new App(loaded, log);

  closeWithGrace({ delay: config.shutdownGraceMs + SHUTDOWN_MARGIN_MS, logger: false }, async ({ signal, err }) => {
    if (err) log.fatal({ err }, 'unexpected error; shutting down');
    else log.info({ signal, graceMs: config.shutdownGraceMs }, 'draining');
    await app.drain();
    log.info('stopped');
  });

  try {
    await app.start();
  } catch (error) {
    log.fatal({ err: error, code: (error as { code?: string }).code }, (error as Error).message);
    process.exit(1);
  }
}

void main();
