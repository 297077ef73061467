/**
 * mux mode settings (DESIGN §5): defaults, one clear line per bad value, every example valid.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, type MuxModeConfig } from '../../../src/config/load.js';
import { MUX_SETTINGS } from '../../../src/config/modes/mux.js';

const REQUIRED = { TARGET: '192.168.1.50:502', PROTOCOL: 'modbus' };

function problemsOf(env: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.problems;
  }
  return [];
}

const BAD: Record<string, string> = {
  LISTEN_PORT: '70000',
  TARGET: 'inverter',
  PROTOCOL: 'smtp',
  UPSTREAM_TIMEOUT_MS: '0',
  REQUEST_DEADLINE_MS: '2s',
  CONNECT_TIMEOUT_MS: '-1',
  CONNECT_DELAY_MS: 'soon',
  REQUEST_GAP_MS: '1.5',
  MAX_INFLIGHT: '0',
  CLIENT_QUEUE: 'many',
  UPSTREAM_IDLE_CLOSE_MS: 'never',
  UPSTREAM_MAX_TIMEOUTS: '0',
  READ_ONLY: 'sometimes',
  WRITE_ALLOW: '1:40010-40000',
  UNIT_MAP: '1->0',
  COALESCE: 'maybe',
  CACHE_TTL_MS: '1s',
  MAX_HEADER_BYTES: '64',
};

/** Settings that only make sense with another one (WRITE_ALLOW without READ_ONLY is itself an error). */
const COMPANIONS: Record<string, Record<string, string>> = {
  WRITE_ALLOW: { READ_ONLY: 'true' },
};

describe('mux settings', () => {
  it('loads the defaults of DESIGN §5', () => {
    const { mux } = (loadConfig(REQUIRED).config as MuxModeConfig);
    assert.deepEqual(mux, {
      listenPort: 5020,
      target: { kind: 'tcp', host: '192.168.1.50', port: 502 },
      protocol: 'modbus',
      upstreamTimeoutMs: 2000,
      requestDeadlineMs: 2800,
      connectTimeoutMs: 3000,
      connectDelayMs: 0,
      requestGapMs: 0,
      maxInflight: 1,
      clientQueue: 16,
      upstreamIdleCloseMs: 0,
      upstreamMaxTimeouts: 3,
      readOnly: false,
      writeAllow: [],
      unitMap: new Map(),
      coalesce: true,
      cacheTtlMs: 0,
      maxHeaderBytes: 16384,
    });
  });

  for (const setting of MUX_SETTINGS) {
    it(`refuses a bad ${setting.name} with one line naming it, the value and an example`, () => {
      const bad = BAD[setting.name];
      assert.ok(bad !== undefined, `the test has a bad value for ${setting.name}`);
      const companions = COMPANIONS[setting.name] ?? {};
      const problems = problemsOf({ ...REQUIRED, ...companions, [setting.name]: bad });
      assert.equal(problems.length, 1, problems.join('\n'));
      assert.ok(problems[0]!.startsWith(`${setting.name}="${bad}" `), problems[0]);
      assert.ok(problems[0]!.includes(`e.g. ${setting.name}=${setting.example}`), problems[0]);
      assert.deepEqual(problemsOf({ ...REQUIRED, ...companions, [setting.name]: setting.example }), [], `example of ${setting.name}`);
    });
  }

  it('accepts IPv6 and host names as TARGET, and refuses port 0 and a tcp:// prefix', () => {
    const target = (value: string) => (loadConfig({ ...REQUIRED, TARGET: value }).config as MuxModeConfig).mux.target;
    assert.deepEqual(target('[fd00::5]:502'), { kind: 'tcp', host: 'fd00::5', port: 502 });
    assert.deepEqual(target('inverter.local:1502'), { kind: 'tcp', host: 'inverter.local', port: 1502 });
    assert.match(problemsOf({ ...REQUIRED, TARGET: 'a:0' })[0]!, /port 0 cannot be dialled/);
    assert.match(problemsOf({ ...REQUIRED, TARGET: 'tcp://a:502' })[0]!, /without a tcp: prefix/);
    assert.match(problemsOf({ ...REQUIRED, TARGET: 'fd00::5:502' })[0]!, /needs brackets/);
  });

  it('MAX_INFLIGHT has an upper bound; settings of mux are refused in another mode', () => {
    assert.match(problemsOf({ ...REQUIRED, MAX_INFLIGHT: '1000' })[0]!, /MAX_INFLIGHT="1000" is above 256/);
    assert.match(problemsOf({ MODE: 'groups', CLIENT_QUEUE: '4' })[0]!, /CLIENT_QUEUE is a setting of MODE=mux/);
  });
});
