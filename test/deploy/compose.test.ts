/**
 * compose.yml, proven without Docker: it validates against the compose-spec JSON schema, and the fields we rely on say
 * what issue 4 asks for (healthcheck without curl, init, read-only root filesystem, restart policy, ports that agree with
 * the settings table, known environment names only). The commented mux example is validated too, uncommented.
 *
 * test/deploy/compose-spec.schema.json is the compose-spec schema, copied byte for byte (74,133 characters, sha256
 * bc50c2d79102aed8df21b3a13e56c9396c7a06da6cff5ce37629f2ee7eb41735) from github.com/compose-spec/compose-spec,
 * schema/compose-spec.json at commit 00655e2222608fa6eaecdf12ac5195889ca2244a, fetched 2026-11-29. Tests run offline,
 * so the schema is vendored; to update it, replace the file with the current one from that path and update this note.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import YAML from 'yaml';
import type { Mode } from '../../src/config/settings.js';
import { healthcheck, knownEnvNames, missingFromEnvExample, parseDockerfile, readRepoFile, settingDefault } from './support.js';

const SCHEMA_TEXT = readRepoFile('test/deploy/compose-spec.schema.json');
const COMPOSE_TEXT = readRepoFile('compose.yml');

type Service = Record<string, unknown> & {
  environment?: Record<string, string | number | boolean | null>;
  ports?: Array<string | number | Record<string, unknown>>;
  healthcheck?: { test?: string[] | string; interval?: string; timeout?: string; start_period?: string; retries?: number };
};

function validator() {
  // The schema's $schema is https://json-schema.org/draft-07/schema; Ajv's default dialect is draft-07. strict: false lets
  // the schema's annotation keywords (deprecated) through without changing what is validated.
  const ajv = new Ajv({ strict: false, validateSchema: false, allErrors: true });
  return ajv.compile(JSON.parse(SCHEMA_TEXT) as object);
}

function problems(document: unknown): string[] {
  const validate = validator();
  return validate(document) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
}

/** Compose durations (`1m30s`, `15s`, `500ms`) in milliseconds. */
function durationMs(text: string): number {
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/g;
  let consumed = '';
  for (let m = re.exec(text); m; m = re.exec(text)) {
    consumed += m[0];
    total += Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  }
  assert.equal(consumed, text, `${text} is a compose duration`);
  return total;
}

/** `host:container/protocol` short syntax as `protocol/container`. */
function containerPorts(service: Service): string[] {
  return (service.ports ?? []).map((entry) => {
    assert.equal(typeof entry, 'string', 'ports use the short syntax "host:container/protocol"');
    const match = /^(?:[\d.]+:)?(\d+):(\d+)(?:\/(tcp|udp))?$/.exec(entry as string);
    assert.ok(match, `port entry ${String(entry)}`);
    return `${match[3] ?? 'tcp'}/${match[2]}`;
  });
}

/** The commented-out example service below `# <name>:`, uncommented. */
function commentedService(name: string): Service {
  const lines = COMPOSE_TEXT.split('\n');
  const start = lines.findIndex((l) => l === `  # ${name}:`);
  assert.ok(start >= 0, `compose.yml has a commented ${name} example`);
  const block: string[] = [];
  for (const line of lines.slice(start)) {
    if (!line.startsWith('  # ') && !line.startsWith('  #   ')) break;
    block.push(`  ${line.slice(4)}`);
  }
  const parsed = YAML.parse(`services:\n${block.join('\n')}\n`) as { services: Record<string, Service> };
  return parsed.services[name]!;
}

function checkService(name: string, service: Service, mode: Mode, expectedPorts: string[]): void {
  assert.equal(service.init, true, `${name}: init: true (tini forwards signals and reaps)`);
  assert.equal(service.read_only, true, `${name}: read_only: true`);
  assert.ok(['always', 'unless-stopped', 'on-failure'].includes(String(service.restart)), `${name}: a restart policy`);
  assert.deepEqual(service.cap_drop, ['ALL'], `${name}: cap_drop: [ALL]`);

  const environment = service.environment ?? {};
  assert.ok(!Array.isArray(environment), `${name}: environment as a mapping`);
  const known = knownEnvNames(mode);
  for (const key of Object.keys(environment)) assert.ok(known.has(key), `${name}: ${key} is a ${mode} setting or alias`);
  assert.deepEqual(missingFromEnvExample(Object.keys(environment), mode), [], `${name}: every name is in .env.example`);
  // The commented SocketForwarder names in the groups service are examples too.
  const commented = mode !== 'groups' ? [] : [...COMPOSE_TEXT.matchAll(/^\s+# (socketforwarder\.[a-z_.]+):/gm)].map((m) => m[1]!);
  assert.ok(mode !== 'groups' || commented.length > 0);
  for (const key of commented) assert.ok(known.has(key) && missingFromEnvExample([key], mode).length === 0, `${key} is a known alias`);
  assert.equal(environment.MODE, mode, `${name}: MODE=${mode}`);
  for (const [key, value] of Object.entries(environment)) assert.equal(typeof value, 'string', `${name}: ${key} quoted (compose passes strings)`);

  // Ports: what the service publishes is what its settings (or their defaults) make it listen on.
  const ports = containerPorts(service);
  for (const port of expectedPorts) assert.ok(ports.includes(port), `${name}: publishes ${port}`);
  const httpPort = String(environment.HTTP_PORT ?? settingDefault('HTTP_PORT', mode));
  assert.ok(ports.includes(`tcp/${httpPort}`), `${name}: publishes the sidecar (HTTP_PORT ${httpPort})`);

  // Healthcheck: the Dockerfile's own command (node's fetch on /livez; no curl in slim images).
  const dockerfileCheck = healthcheck(parseDockerfile(readRepoFile('Dockerfile'))).command;
  assert.deepEqual(service.healthcheck?.test, ['CMD', ...dockerfileCheck], `${name}: healthcheck is the Dockerfile's HEALTHCHECK`);
  for (const key of ['interval', 'timeout', 'start_period'] as const) durationMs(service.healthcheck![key]!);

  // Docker sends SIGKILL after stop_grace_period (default 10 s): it must cover SHUTDOWN_GRACE_MS and the 2 s sidecar close.
  const graceMs = Number(environment.SHUTDOWN_GRACE_MS ?? settingDefault('SHUTDOWN_GRACE_MS', mode));
  assert.ok(durationMs(String(service.stop_grace_period)) >= graceMs + 2000, `${name}: stop_grace_period covers SHUTDOWN_GRACE_MS + 2 s`);
  assert.ok(service.mem_limit, `${name}: a memory limit`);
}

describe('compose.yml', () => {
  const document = YAML.parse(COMPOSE_TEXT) as { services: Record<string, Service> };

  it('uses the vendored compose-spec schema unchanged', () => {
    assert.equal(createHash('sha256').update(SCHEMA_TEXT).digest('hex'), 'bc50c2d79102aed8df21b3a13e56c9396c7a06da6cff5ce37629f2ee7eb41735');
  });

  it('validates against the compose-spec schema, which does reject mistakes (controls: a misspelt key, a wrong type)', () => {
    assert.deepEqual(problems(document), []);
    const misspelt = structuredClone(document);
    (misspelt.services.switchboard as Record<string, unknown>).read_onyl = true;
    assert.ok(problems(misspelt).some((p) => p.includes('read_onyl')), 'a misspelt service key is reported');
    const wrongType = structuredClone(document);
    wrongType.services.switchboard!.healthcheck!.retries = { three: 3 } as unknown as number;
    assert.notDeepEqual(problems(wrongType), []);
  });

  it('runs switchboard in groups mode with healthcheck, init, read-only root, restart policy and its ports', () => {
    const service = document.services.switchboard;
    assert.ok(service, 'a service named switchboard');
    assert.ok(service.build !== undefined && service.image, 'built from this repository and tagged');
    const expected = ['tcp/7100', 'udp/7100'].filter((p) => p.endsWith(`/${settingDefault(p.startsWith('udp') ? 'UDP_PORT' : 'TCP_PORT', 'groups')}`));
    assert.equal(expected.length, 2, 'the settings table still defaults TCP_PORT and UDP_PORT to 7100');
    checkService('switchboard', service, 'groups', expected);
  });

  it('has a mux example (commented out until mux mode ships) that is valid once uncommented', () => {
    const service = commentedService('inverter-proxy');
    assert.deepEqual(problems({ services: { 'inverter-proxy': service } }), []);
    const listen = String(service.environment?.LISTEN_PORT ?? settingDefault('LISTEN_PORT', 'mux') ?? '5020');
    checkService('inverter-proxy', service, 'mux', [`tcp/${listen}`]);
    assert.ok(service.environment?.TARGET, 'the example names a TARGET');
  });
});
