/**
 * tcp-multiplexer's command line (DESIGN §5) maps to settings, and the settings load as mux mode.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyCommandLine, parseGoDuration } from '../../src/config/cli.js';
import { ConfigError, loadConfig, type MuxModeConfig } from '../../src/config/load.js';

function problemsOf(args: string[], env: NodeJS.ProcessEnv = {}): string[] {
  try {
    applyCommandLine(args, env);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    assert.equal(error.code, 'SWB_ERR_CONFIG');
    return error.problems;
  }
  assert.fail('expected a ConfigError');
}

describe('tcp-multiplexer command line', () => {
  it('no arguments leave the environment alone', () => {
    const env = { TARGET: 'a:1' };
    assert.equal(applyCommandLine([], env), env);
  });

  it('server -t -p -l maps to TARGET, PROTOCOL and LISTEN_PORT, and loads as mux mode', () => {
    const env = applyCommandLine(['server', '-t', '192.168.1.50:502', '-p', 'modbus', '-l', '8000'], {});
    assert.equal(env.TARGET, '192.168.1.50:502');
    assert.equal(env.PROTOCOL, 'modbus');
    assert.equal(env.LISTEN_PORT, '8000');
    const config = loadConfig(env).config as MuxModeConfig;
    assert.equal(config.mode, 'mux');
    assert.deepEqual(config.mux.target, { kind: 'tcp', host: '192.168.1.50', port: 502 });
    assert.equal(config.mux.listenPort, 8000);
  });

  it('--timeout sets UPSTREAM_TIMEOUT_MS and a deadline above it; --delay and --retryDelay; -v means debug', () => {
    const env = applyCommandLine(
      ['server', '-t', 'inverter:502', '-p', 'modbus-serial', '-l', '8000', '--timeout', '60s', '--delay', '1s', '--retryDelay', '1.5s', '-v'],
      {},
    );
    assert.equal(env.UPSTREAM_TIMEOUT_MS, '60000');
    assert.equal(env.REQUEST_DEADLINE_MS, '60800');
    assert.equal(env.CONNECT_DELAY_MS, '1000');
    assert.equal(env.RECONNECT_MIN_MS, '1500');
    assert.equal(env.LOG_LEVEL, 'debug');
    const config = loadConfig(env).config as MuxModeConfig;
    assert.equal(config.mux.protocol, 'modbus-serial');
    assert.equal(config.mux.upstreamTimeoutMs, 60_000);
    assert.equal(config.reconnectMinMs, 1500);
  });

  it('accepts the long names and --flag=value', () => {
    const env = applyCommandLine(
      ['server', '--targetServer=10.0.0.9:502', '--applicationProtocol', 'echo', '--listen=7000', '--timeout=2m', '--verbose'],
      {},
    );
    assert.equal(env.TARGET, '10.0.0.9:502');
    assert.equal(env.PROTOCOL, 'echo');
    assert.equal(env.LISTEN_PORT, '7000');
    assert.equal(env.UPSTREAM_TIMEOUT_MS, '120000');
    assert.equal(env.LOG_LEVEL, 'debug');
  });

  it('an explicit REQUEST_DEADLINE_MS wins over the one derived from --timeout; a long --retryDelay raises the maximum', () => {
    const env = applyCommandLine(['server', '-t', 'a:1', '-p', 'modbus', '--timeout', '5s', '--retryDelay', '30s'], {
      REQUEST_DEADLINE_MS: '9000',
    });
    assert.equal(env.REQUEST_DEADLINE_MS, '9000');
    assert.equal(env.RECONNECT_MIN_MS, '30000');
    assert.equal(env.RECONNECT_MAX_MS, '30000');
  });

  it('the command line wins over the environment', () => {
    const env = applyCommandLine(['server', '-t', 'b:2', '-p', 'modbus'], { TARGET: 'a:1' });
    assert.equal(env.TARGET, 'b:2');
  });

  it('refuses other commands, unknown flags, missing values and bad durations, one line each', () => {
    assert.match(problemsOf(['client'])[0]!, /"client" is not a command/);
    const problems = problemsOf(['server', '-x', '--timeout', 'soon', '-t']);
    assert.equal(problems.length, 3);
    assert.match(problems[0]!, /"-x" is not known/);
    assert.match(problems[1]!, /--timeout "soon" is not a duration/);
    assert.match(problems[2]!, /-t needs a value/);
  });

  it('parses Go durations', () => {
    assert.equal(parseGoDuration('60s'), 60_000);
    assert.equal(parseGoDuration('1m30s'), 90_000);
    assert.equal(parseGoDuration('1.5s'), 1500);
    assert.equal(parseGoDuration('250ms'), 250);
    assert.equal(parseGoDuration('1h'), 3_600_000);
    assert.equal(parseGoDuration('0'), 0);
    assert.equal(parseGoDuration('10'), undefined);
    assert.equal(parseGoDuration('5 s'), undefined);
    assert.equal(parseGoDuration(''), undefined);
  });
});

describe('mux settings', () => {
  it('TARGET and PROTOCOL are required, with an example', () => {
    try {
      loadConfig({ MODE: 'mux' });
      assert.fail('expected a ConfigError');
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      assert.ok(error.problems.includes('TARGET is required; e.g. TARGET=192.168.1.50:502'));
      assert.ok(error.problems.includes('PROTOCOL is required; e.g. PROTOCOL=modbus'));
    }
  });

  it('READ_ONLY, WRITE_ALLOW, UNIT_MAP, COALESCE, CACHE_TTL_MS and MAX_HEADER_BYTES load with their defaults and typed values', () => {
    const defaults = (loadConfig({ TARGET: 'a:502', PROTOCOL: 'modbus' }).config as MuxModeConfig).mux;
    assert.equal(defaults.readOnly, false);
    assert.deepEqual(defaults.writeAllow, []);
    assert.equal(defaults.unitMap.size, 0);
    assert.equal(defaults.coalesce, true);
    assert.equal(defaults.cacheTtlMs, 0);
    assert.equal(defaults.maxHeaderBytes, 16384);
    const set = (
      loadConfig({
        TARGET: 'a:502',
        PROTOCOL: 'modbus',
        READ_ONLY: 'true',
        WRITE_ALLOW: '1:40000-40010, 2:7',
        UNIT_MAP: '1=0,3=7',
        COALESCE: 'false',
        CACHE_TTL_MS: '1000',
      }).config as MuxModeConfig
    ).mux;
    assert.equal(set.readOnly, true);
    assert.deepEqual(set.writeAllow, [
      { unit: 1, first: 40000, last: 40010 },
      { unit: 2, first: 7, last: 7 },
    ]);
    assert.deepEqual([...set.unitMap], [
      [1, 0],
      [3, 7],
    ]);
    assert.equal(set.coalesce, false);
    assert.equal(set.cacheTtlMs, 1000);
  });

  it('bad Modbus policy settings get one clear line each, naming the variable and an example', () => {
    const problems = (env: NodeJS.ProcessEnv) => {
      try {
        loadConfig({ TARGET: 'a:502', PROTOCOL: 'modbus', ...env });
        return [];
      } catch (error) {
        return (error as ConfigError).problems;
      }
    };
    assert.deepEqual(problems({ WRITE_ALLOW: '1:100-110' }), [
      'WRITE_ALLOW only makes sense with READ_ONLY=true (without it every write is allowed); e.g. READ_ONLY=true WRITE_ALLOW=1:40000-40010',
    ]);
    assert.match(problems({ READ_ONLY: 'true', WRITE_ALLOW: '1:110-100' })[0]!, /^WRITE_ALLOW=.*last address below first.*e\.g\. WRITE_ALLOW=1:40000-40010/);
    assert.match(problems({ READ_ONLY: 'true', WRITE_ALLOW: '300:1' })[0]!, /^WRITE_ALLOW=.*unit id "300" is not 0-255/);
    assert.match(problems({ UNIT_MAP: '1:0' })[0]!, /^UNIT_MAP=.*expected client=device.*e\.g\. UNIT_MAP=1=0/);
    assert.match(problems({ UNIT_MAP: '1=0,1=2' })[0]!, /maps unit 1 twice/);
    assert.match(problems({ READ_ONLY: 'maybe' })[0]!, /^READ_ONLY=.*not true or false/);
    assert.match(problems({ MAX_HEADER_BYTES: '100' })[0]!, /MAX_HEADER_BYTES="100" is outside 1024-1048576/);
    assert.deepEqual(problems({ PROTOCOL: 'echo', READ_ONLY: 'true', UNIT_MAP: '1=0', CACHE_TTL_MS: '5' }), [
      'READ_ONLY applies to PROTOCOL=modbus only (PROTOCOL is echo); e.g. PROTOCOL=modbus',
      'UNIT_MAP applies to PROTOCOL=modbus only (PROTOCOL is echo); e.g. PROTOCOL=modbus',
      'CACHE_TTL_MS applies to PROTOCOL=modbus only (PROTOCOL is echo); e.g. PROTOCOL=modbus',
    ]);
  });

  it('a bad TARGET gets one clear line', () => {
    try {
      loadConfig({ TARGET: 'inverter', PROTOCOL: 'modbus' });
      assert.fail('expected a ConfigError');
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      assert.deepEqual(error.problems, [
        'TARGET="inverter" is not host:port, rtu:host:port or unix:/path; e.g. TARGET=192.168.1.50:502',
      ]);
    }
  });

  it('unix: and rtu: targets and PROTOCOL=http load; serial: is refused, rtu: needs PROTOCOL=modbus', () => {
    const config = loadConfig({ TARGET: 'unix:/run/dev.sock', PROTOCOL: 'echo' }).config as MuxModeConfig;
    assert.deepEqual(config.mux.target, { kind: 'unix', path: '/run/dev.sock' });
    const rtu = loadConfig({ TARGET: 'rtu:10.0.0.9:502', PROTOCOL: 'modbus' }).config as MuxModeConfig;
    assert.deepEqual(rtu.mux.target, { kind: 'rtu', host: '10.0.0.9', port: 502 });
    assert.equal((loadConfig({ TARGET: 'a:80', PROTOCOL: 'http' }).config as MuxModeConfig).mux.protocol, 'http');
    const problems = (env: NodeJS.ProcessEnv) => {
      try {
        loadConfig(env);
        return [];
      } catch (error) {
        return (error as ConfigError).problems;
      }
    };
    assert.deepEqual(problems({ TARGET: 'rtu:10.0.0.9:502', PROTOCOL: 'echo' }), [
      'TARGET="rtu:…" needs PROTOCOL=modbus (clients speak Modbus TCP, the target RTU); e.g. PROTOCOL=modbus',
    ]);
    assert.match(problems({ TARGET: 'serial:/dev/ttyUSB0', PROTOCOL: 'modbus' })[0]!, /not available/);
    assert.match(problems({ TARGET: 'a:502', PROTOCOL: 'ftp' })[0]!, /PROTOCOL="ftp" is not one of/);
  });
});
