/**
 * share mode settings (DESIGN §6): UPSTREAM forms, defaults, and the one-line errors for bad values.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, type ShareModeConfig } from '../../../src/config/load.js';
import { SETTINGS } from '../../../src/config/settings.js';

function loadShare(env: Record<string, string>): ShareModeConfig {
  const { config } = loadConfig({ UPSTREAM: 'tcp:10.0.0.5:4001', ...env });
  assert.equal(config.mode, 'share');
  return config as ShareModeConfig;
}

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig({ UPSTREAM: 'tcp:10.0.0.5:4001', ...env });
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.problems;
  }
  assert.fail(`expected a ConfigError for ${JSON.stringify(env)}`);
}

describe('share mode settings', () => {
  it('UPSTREAM selects share mode; defaults follow DESIGN §6', () => {
    const { share } = loadShare({});
    assert.equal(share.listenPort, 3333);
    assert.equal(share.listenPortRo, null);
    assert.equal(share.replayBytes, 0);
    assert.equal(share.upstreamLoss, 'keep');
    assert.equal(share.slowClient, 'disconnect');
    assert.deepEqual(share.upstream, { kind: 'tcp', host: '10.0.0.5', port: 4001 });
  });

  it('parses every UPSTREAM kind', () => {
    assert.deepEqual(loadShare({ UPSTREAM: 'tcp:[::1]:23' }).share.upstream, { kind: 'tcp', host: '::1', port: 23 });
    assert.deepEqual(loadShare({ UPSTREAM: 'listen:4000' }).share.upstream, { kind: 'listen', port: 4000 });
    assert.deepEqual(loadShare({ UPSTREAM: 'unix:/run/dev.sock' }).share.upstream, { kind: 'unix', path: '/run/dev.sock' });
    assert.deepEqual(loadShare({ UPSTREAM: 'fifo:/run/up,/run/down' }).share.upstream, { kind: 'fifo', upPath: '/run/up', downPath: '/run/down' });
    assert.equal(loadShare({ UPSTREAM: 'fifo:/run/up,/run/down' }).share.upstreamText, 'fifo:/run/up,/run/down');
  });

  const bad: Record<string, string> = {
    LISTEN_PORT: 'off',
    LISTEN_PORT_RO: 'tcp://10.0.0.7:3334',
    UPSTREAM: 'serial:/dev/ttyUSB0',
    REPLAY_BYTES: '-1',
    UPSTREAM_LOSS: 'wait',
    SLOW_CLIENT: 'kick',
  };
  for (const setting of SETTINGS.filter((s) => s.scope !== 'common' && s.scope.includes('share'))) {
    it(`refuses a bad ${setting.name} with one line naming it, the value and an example`, () => {
      const value = bad[setting.name];
      assert.ok(value !== undefined, `the test has a bad value for ${setting.name}`);
      const problems = problemsOf({ [setting.name]: value });
      assert.equal(problems.length, 1, problems.join('\n'));
      assert.ok(problems[0]!.startsWith(`${setting.name}="${value}" `), problems[0]);
      assert.ok(problems[0]!.includes(`e.g. ${setting.name}=${setting.example}`), problems[0]);
      loadShare({ [setting.name]: setting.example });
    });
  }

  it('refuses malformed UPSTREAM values with what was expected', () => {
    for (const value of ['tcp:host', 'tcp:h:0', 'unix:relative', 'fifo:/only-one', 'fifo:/same,/same', 'listen:99999', 'host:1']) {
      const problems = problemsOf({ UPSTREAM: value });
      assert.equal(problems.length, 1, value);
      assert.match(problems[0]!, new RegExp(`^UPSTREAM="${value}" `));
    }
  });

  it('refuses REPLAY_BYTES above CLIENT_BUFFER_BYTES, and ports that collide', () => {
    assert.match(problemsOf({ REPLAY_BYTES: '300000' })[0]!, /REPLAY_BYTES="300000" is above CLIENT_BUFFER_BYTES/);
    assert.equal(loadShare({ REPLAY_BYTES: '300000', CLIENT_BUFFER_BYTES: '300000' }).share.replayBytes, 300000);
    assert.match(problemsOf({ LISTEN_PORT_RO: '3333' })[0]!, /LISTEN_PORT_RO="3333" is the same port as LISTEN_PORT/);
    assert.match(problemsOf({ UPSTREAM: 'listen:3333' })[0]!, /uses a client port/);
  });

  it('refuses share settings in another mode', () => {
    try {
      loadConfig({ REPLAY_BYTES: '10' });
      assert.fail('expected a ConfigError');
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      assert.match(error.problems[0]!, /REPLAY_BYTES is a setting of MODE=share, but MODE is groups/);
    }
  });
});
