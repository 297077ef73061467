#!/usr/bin/env node
/**
 * The Modbus device simulator as a program: `npm run sim -- --latency-ms 50`, `node dist/sim/main.js`, or in the image
 * `docker run --entrypoint node switchboard dist/sim/main.js`. Settings in options.ts. One JSON line on stderr per
 * lifecycle event (listening, with the port; stopped); SIGTERM and SIGINT stop it.
 */
import { ErrorCodes, SwitchboardError } from '../errors.js';
import { ModbusDevice } from './modbus-device.js';
import { parseSimOptions, type SimOptions } from './options.js';

function log(level: 'info' | 'error', msg: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(`${JSON.stringify({ level, time: new Date().toISOString(), name: 'switchboard-sim', msg, ...fields })}\n`);
}

let options: SimOptions;
try {
  options = parseSimOptions(process.argv.slice(2), process.env);
} catch (error) {
  if (!(error instanceof SwitchboardError)) throw error;
  log('error', error.message, { code: error.code });
  process.exit(2);
}

const device = new ModbusDevice({
  latencyMs: options.latencyMs,
  oneConnection: options.oneConnection,
  pipelined: options.pipelined,
  connectDelayMs: options.connectDelayMs,
  minGapMs: options.minGapMs,
  tooEarly: options.tooEarly,
  units: options.units,
  faults: options.faults,
  recordRequests: false,
});

let stopping = false;
const stop = (signal: string) => {
  if (stopping) return;
  stopping = true;
  void device.stop().then(() => {
    log('info', 'sim stopped', {
      signal,
      requests: device.requestCount,
      served: device.requestsServed,
      rejected: device.rejectedRequests,
      connections: device.connections,
    });
    process.exit(0);
  });
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

if (options.refuseMs > 0) await new Promise((resolve) => setTimeout(resolve, options.refuseMs));
try {
  if (!stopping) await device.listen(options.port, options.host);
} catch (error) {
  log('error', 'sim cannot listen', { code: ErrorCodes.LISTEN, host: options.host, port: options.port, error: String(error) });
  process.exit(1);
}
if (!stopping) {
  const { refuseMs, ...settings } = options;
  log('info', 'sim listening', { ...settings, port: device.port, refusedForMs: refuseMs });
}
