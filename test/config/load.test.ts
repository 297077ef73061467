import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, type GroupsModeConfig } from '../../src/config/load.js';
import { SETTINGS } from '../../src/config/settings.js';

/** loadConfig for environments that select groups mode, typed as such. */
function loadGroups(env: Record<string, string>) {
  const loaded = loadConfig(env);
  assert.equal(loaded.config.mode, 'groups');
  return { ...loaded, config: loaded.config as GroupsModeConfig };
}

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    assert.equal(error.code, 'SWB_ERR_CONFIG');
    return error.problems;
  }
  assert.fail(`expected a ConfigError for ${JSON.stringify(env)}`);
}

describe('configuration', () => {
  it('starts groups mode on TCP and UDP 7100 with the sidecar on 9502 when nothing is set', () => {
    const { config, modeSource, profile } = loadGroups({});
    assert.equal(config.mode, 'groups');
    assert.equal(modeSource, 'inferred');
    assert.equal(profile, null);
    assert.equal(config.groups.tcpPort, 7100);
    assert.equal(config.groups.udpPort, 7100);
    assert.equal(config.httpPort, 9502);
    assert.equal(config.host, '::');
    assert.equal(config.groups.udpOpen, false);
    assert.equal(config.groups.udpEchoSender, false);
  });

  // Every variable with one bad value: the line names the variable, the value and an example.
  const badValues: Record<string, string> = {
    HOST: 'not a host!',
    HTTP_PORT: '70000',
    HTTP_HOST: '',
    LOG_LEVEL: 'loud',
    LOG_FORMAT: 'xml',
    MAX_CLIENTS: '0',
    CLIENT_BUFFER_BYTES: '-1',
    MAX_BUFFERED_BYTES: '1e9',
    RECONNECT_MIN_MS: 'soon',
    RECONNECT_MAX_MS: '1.5',
    SHUTDOWN_GRACE_MS: 'ten',
    TCP_PORT: 'abc',
    UDP_PORT: '65536',
    PREFIX: '',
    JOIN_TIMEOUT_MS: '0',
    JOIN_QUIET_MS: 'x',
    MAX_MESSAGE_BYTES: '0',
    TCP_PRECONFIG_ADDRESSES: 'g1:host',
    TCP_DIAL_ADDRESSES: 'g1:10.0.0.1:99999',
    UDP_PRECONFIG_ADDRESSES: '::1:9999',
    UDP_OPEN: 'maybe',
    UDP_ECHO_SENDER: '2',
    UDP_PEER_TTL_MS: '-5',
    MAX_UDP_PEERS: 'many',
    SLOW_CLIENT: 'kick',
  };
  // Settings of the other modes are checked in their own tests (test/engines/<mode>/config.test.ts): loading them here
  // selects groups mode, where they are refused as settings of another mode.
  for (const setting of SETTINGS.filter((s) => s.name !== 'MODE' && (s.scope === 'common' || s.scope.includes('groups')))) {
    it(`refuses a bad ${setting.name} with one line naming it, the value and an example`, () => {
      const bad = badValues[setting.name];
      assert.ok(bad !== undefined, `the test has a bad value for ${setting.name}`);
      const problems = problemsOf({ [setting.name]: bad });
      assert.equal(problems.length, 1, problems.join('\n'));
      assert.ok(problems[0]!.startsWith(`${setting.name}="${bad}" `), problems[0]);
      assert.ok(problems[0]!.includes(`e.g. ${setting.name}=${setting.example}`), problems[0]);
      // The example itself must be valid.
      loadGroups({ [setting.name]: setting.example });
    });
  }

  it('refuses MODE=bogus', () => {
    assert.deepEqual(problemsOf({ MODE: 'bogus' }), ['MODE="bogus" is not one of groups, mux, share, relay, agent; e.g. MODE=groups']);
  });

  it('reports every problem at once, one line each', () => {
    assert.equal(problemsOf({ TCP_PORT: 'abc', SLOW_CLIENT: 'kick', MAX_CLIENTS: '0' }).length, 3);
  });

  it('explains a port that Kubernetes service links injected', () => {
    const [line] = problemsOf({ TCP_PORT: 'tcp://10.0.0.7:7100' });
    assert.match(line!, /^TCP_PORT="tcp:\/\/10.0.0.7:7100" .*enableServiceLinks: false/);
  });

  it('accepts 0 (any free port) and off for optional ports', () => {
    const { config } = loadGroups({ TCP_PORT: '0', UDP_PORT: 'off', HTTP_PORT: 'off' });
    assert.equal(config.groups.tcpPort, 0);
    assert.equal(config.groups.udpPort, null);
    assert.equal(config.httpPort, null);
  });

  it('refuses TCP and UDP both off', () => {
    assert.match(problemsOf({ TCP_PORT: 'off', UDP_PORT: 'off' })[0]!, /both off/);
  });

  it('refuses RECONNECT_MIN_MS above RECONNECT_MAX_MS', () => {
    assert.match(problemsOf({ RECONNECT_MIN_MS: '5000', RECONNECT_MAX_MS: '100' })[0]!, /^RECONNECT_MIN_MS="5000" is above/);
  });

  describe('SocketForwarder names', () => {
    it('are accepted as aliases', () => {
      const { config } = loadGroups({
        'socketforwarder.new_client_prefix': 'JOIN:',
        'socketforwarder.max_read_in_size': '2048',
        'socketforwarder.host_address': '127.0.0.1',
        'tcp.preconfig_addresses': 'g1:127.0.0.1:0',
        'udp.preconfig_addresses': '127.0.0.1:9999',
        'socketforwarder.debug': '',
      });
      assert.equal(config.groups.prefix, 'JOIN:');
      assert.equal(config.groups.maxMessageBytes, 2048);
      assert.equal(config.host, '127.0.0.1');
      assert.deepEqual(config.groups.tcpPreconfigAddresses, [{ groupId: 'g1', host: '127.0.0.1', port: 0 }]);
      assert.deepEqual(config.groups.udpPreconfigAddresses, [{ host: '127.0.0.1', port: 9999 }]);
      assert.equal(config.logLevel, 'debug');
    });

    it('conflict with the canonical name when the values differ, and not when they agree', () => {
      const [line] = problemsOf({ TCP_PORT: '7100', 'socketforwarder.tcp.port': '5000' });
      assert.match(line!, /TCP_PORT="7100" and socketforwarder.tcp.port="5000" name the same setting/);
      assert.match(problemsOf({ 'tcp.preconfig_addresses': 'a:1.2.3.4:0', 'socketforwarder.tcp.preconfig_addresses': 'b:1.2.3.4:0' })[0]!, /same setting/);
      assert.match(problemsOf({ LOG_LEVEL: 'warn', 'socketforwarder.debug': 'x' })[0]!, /same setting/);
      loadGroups({ TCP_PORT: '5000', 'socketforwarder.tcp.port': '5000' });
    });

    it('name the alias the user wrote in error lines', () => {
      assert.match(problemsOf({ 'socketforwarder.tcp.port': 'abc' })[0]!, /^socketforwarder.tcp.port="abc" .*e.g. socketforwarder.tcp.port=7100$/);
    });

    it('switch on the SocketForwarder profile: unset ports are off, UDP open with echo', () => {
      const tcpOnly = loadGroups({ 'socketforwarder.tcp.port': '5000' });
      assert.equal(tcpOnly.profile, 'socketforwarder');
      assert.equal(tcpOnly.config.groups.tcpPort, 5000);
      assert.equal(tcpOnly.config.groups.udpPort, null);
      const both = loadGroups({ 'socketforwarder.tcp.port': '5000', 'socketforwarder.udp.port': '5001' });
      assert.equal(both.config.groups.udpPort, 5001);
      assert.equal(both.config.groups.udpOpen, true);
      assert.equal(both.config.groups.udpEchoSender, true);
      const explicit = loadGroups({ 'socketforwarder.udp.port': '5001', UDP_OPEN: 'false', TCP_PORT: '7000' });
      assert.equal(explicit.config.groups.udpOpen, false, 'explicit settings win over the profile');
      assert.equal(explicit.config.groups.tcpPort, 7000);
    });
  });

  describe('MODE inference', () => {
    it('picks groups when nothing selects a mode', () => {
      assert.equal(loadGroups({}).config.mode, 'groups');
      assert.equal(loadGroups({ MODE: 'groups' }).modeSource, 'MODE');
    });
    it('infers mux, share and agent from TARGET, UPSTREAM and RELAY (refused until those modes exist)', () => {
      assert.equal(loadConfig({ TARGET: '10.0.0.1:502', PROTOCOL: 'modbus' }).config.mode, 'mux');
      assert.match(problemsOf({ TARGET: '10.0.0.1:502' })[0]!, /PROTOCOL is required/);
      assert.equal(loadConfig({ UPSTREAM: 'tcp:h:1' }).config.mode, 'share');
      assert.equal(loadConfig({ RELAY: 'h:8000', SERVICE: '127.0.0.1:80' }).config.mode, 'agent');
      assert.match(problemsOf({ RELAY: 'h:8000' })[0]!, /SERVICE is required/);
    });
    it('refuses settings of two modes at once', () => {
      assert.match(problemsOf({ TARGET: 'a:1', UPSTREAM: 'tcp:b:2' })[0]!, /TARGET and UPSTREAM belong to different modes/);
      assert.match(problemsOf({ MODE: 'groups', TARGET: 'a:1' })[0]!, /TARGET is a setting of MODE=mux, but MODE is groups/);
    });
  });

  describe('typo warnings', () => {
    it('warn about names close to ours', () => {
      const { warnings } = loadGroups({ TCP_PROT: '1', MAX_CLIENT: '5', 'socketforwarder.tcp.prot': '1' });
      assert.equal(warnings.length, 3, warnings.join('\n'));
      assert.match(warnings.join('\n'), /TCP_PROT .*did you mean TCP_PORT/);
    });
    it("stay quiet about Kubernetes' service variables and unrelated names", () => {
      const { warnings } = loadGroups({
        SWITCHBOARD_PORT: 'tcp://10.0.0.7:7100',
        SWITCHBOARD_SERVICE_HOST: '10.0.0.7',
        SWITCHBOARD_SERVICE_PORT: '7100',
        SWITCHBOARD_PORT_7100_TCP: 'tcp://10.0.0.7:7100',
        SWITCHBOARD_PORT_7100_TCP_ADDR: '10.0.0.7',
        UDP_PORT_7100_UDP_PORT: '7100',
        PATH: '/usr/bin',
        HOSTNAME: 'pod-1',
        HOME: '/root',
      });
      assert.deepEqual(warnings, []);
    });
  });

  it('logs a summary without secrets', () => {
    const { summary } = loadGroups({ TCP_PORT: '5000' });
    assert.equal(summary.TCP_PORT, '5000');
    assert.equal(summary.MODE, 'groups');
  });
});
