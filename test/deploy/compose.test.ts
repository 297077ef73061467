/**
 * compose.yml, proven without Docker: it validates against the compose-spec JSON schema, and the fields we rely on say
 * what issues 4 and 6 ask for (healthcheck without curl, init, read-only root filesystem, restart policy, ports that agree
 * with the settings table, known environment names only): switchboard in mux mode in front of a simulated inverter, whose
 * command is a valid simulator invocation (parsed by src/sim/options.ts) from a file the image contains. The commented
 * settings (a real inverter's address, Huawei-style pacing) are loaded by the config loader, and the commented groups
 * example is validated too, uncommented.
 *
 * test/deploy/compose-spec.schema.json is the compose-spec schema, copied byte for byte (74,133 characters, sha256
 * bc50c2d79102aed8df21b3a13e56c9396c7a06da6cff5ce37629f2ee7eb41735) from github.com/compose-spec/compose-spec,
 * schema/compose-spec.json at commit 00655e2222608fa6eaecdf12ac5195889ca2244a, fetched 2026-11-29. Tests run offline,
 * so the schema is vendored; to update it, replace the file with the current one from that path and update this note.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { builtinModules } from 'node:module';
import { dirname, join, normalize } from 'node:path';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import YAML from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import type { Mode } from '../../src/config/settings.js';
import { parseSimOptions } from '../../src/sim/options.js';
import {
  flagsOf,
  healthcheck,
  instructionsOf,
  isIgnored,
  knownEnvNames,
  missingFromEnvExample,
  parseDockerfile,
  parseDockerignore,
  readRepoFile,
  settingDefault,
  workdirOf,
} from './support.js';

const SCHEMA_TEXT = readRepoFile('test/deploy/compose-spec.schema.json');
const COMPOSE_TEXT = readRepoFile('compose.yml');

type Service = Record<string, unknown> & {
  environment?: Record<string, string | number | boolean | null>;
  entrypoint?: string[] | string;
  command?: string[] | string;
  image?: string;
  depends_on?: Record<string, { condition?: string }> | string[];
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
  const commented = mode !== 'groups' ? [] : [...COMPOSE_TEXT.matchAll(/^\s+#(?:\s+#)? (socketforwarder\.[a-z_.]+):/gm)].map((m) => m[1]!);
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

/** `# NAME: value` lines commented out inside a service's environment block (settings shown as examples). */
function commentedSettings(serviceName: string): Array<[string, string]> {
  const lines = COMPOSE_TEXT.split('\n');
  const start = lines.findIndex((l) => l === `  ${serviceName}:`);
  assert.ok(start >= 0, `service ${serviceName}`);
  const env = lines.findIndex((l, i) => i > start && l === '    environment:');
  const found: Array<[string, string]> = [];
  for (const line of lines.slice(env + 1)) {
    if (!line.startsWith('      ')) break;
    const match = /^ {6}# ([A-Z][A-Z0-9_]*): "?([^"]*)"?$/.exec(line);
    if (match) found.push([match[1]!, match[2]!]);
  }
  return found;
}

/** Relative imports of a TypeScript source, resolved to repository paths, and its bare (package or node:) imports. */
function importsOf(path: string): { relative: string[]; bare: string[] } {
  const text = readRepoFile(path);
  const specifiers = [...text.matchAll(/^(?:import|export)\s[^'"]*?from\s+'([^']+)'|^import\s+'([^']+)'/gm)].map((m) => m[1] ?? m[2]!);
  const relative = specifiers.filter((s) => s.startsWith('.')).map((s) => normalize(join(dirname(path), s)).replace(/\.js$/, '.ts'));
  return { relative, bare: specifiers.filter((s) => !s.startsWith('.')) };
}

/** The mux settings loadConfig makes of `env` (it throws with every problem when it refuses them). */
function muxConfigOf(env: Record<string, string>) {
  const { config } = loadConfig(env);
  if (config.mode !== 'mux') throw new assert.AssertionError({ message: `MODE is ${config.mode}, not mux` });
  return config.mux;
}

describe('compose.yml', () => {
  const document = YAML.parse(COMPOSE_TEXT) as { services: Record<string, Service> };
  const switchboard = document.services.switchboard!;
  const inverter = document.services.inverter!;

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

  it('runs switchboard in mux mode (healthcheck, init, read-only root, restart policy, ports) with an environment the config loader accepts', () => {
    assert.ok(switchboard, 'a service named switchboard');
    assert.ok(switchboard.build !== undefined && switchboard.image, 'built from this repository and tagged');
    const listen = String(switchboard.environment?.LISTEN_PORT ?? settingDefault('LISTEN_PORT', 'mux'));
    checkService('switchboard', switchboard, 'mux', [`tcp/${listen}`]);
    assert.ok(containerPorts(switchboard).includes('tcp/5020'), 'mbpoll -p 5020 reaches it');
    const mux = muxConfigOf(switchboard.environment as Record<string, string>);
    assert.equal(mux.protocol, 'modbus');
    assert.deepEqual(mux.target, { kind: 'tcp', host: 'inverter', port: 1502 });
  });

  it('runs a simulated inverter from the same image: a valid simulator command line, on the port TARGET names, slow mode off', () => {
    assert.ok(inverter, 'a service named inverter');
    assert.equal(inverter.image, switchboard.image, 'the image switchboard is built into');
    assert.ok(inverter.build === undefined, 'built once, by the switchboard service');
    assert.deepEqual(inverter.entrypoint, ['node', 'dist/sim/main.js']);
    assert.ok(Array.isArray(inverter.command), 'command in exec form');
    const options = parseSimOptions(inverter.command as string[], {});
    const target = muxConfigOf(switchboard.environment as Record<string, string>).target as { host: string; port: number };
    assert.equal(target.host, 'inverter', 'TARGET names the service');
    assert.equal(options.port, target.port, 'the simulator listens where TARGET points');
    assert.equal(options.host, '0.0.0.0', 'on every IPv4 interface (the compose network), without relying on IPv6');
    assert.equal(options.latencyMs, 20);
    assert.deepEqual([options.connectDelayMs, options.minGapMs, options.units], [0, 0, []], 'slow mode off by default');
    assert.deepEqual(switchboard.depends_on, { inverter: { condition: 'service_started' } });
    assert.equal(inverter.init, true);
    assert.equal(inverter.read_only, true);
    assert.deepEqual(inverter.cap_drop, ['ALL']);
    assert.ok(['always', 'unless-stopped', 'on-failure'].includes(String(inverter.restart)));
    assert.ok(inverter.mem_limit);
    // The image's HEALTHCHECK asks a sidecar the simulator does not have: the service must replace it with a check of its port.
    const dockerfileCheck = healthcheck(parseDockerfile(readRepoFile('Dockerfile'))).command;
    const check = inverter.healthcheck?.test as string[];
    assert.notDeepEqual(check, ['CMD', ...dockerfileCheck]);
    assert.equal(check[0], 'CMD');
    assert.ok(check.join(' ').includes(`connect(${options.port}, '127.0.0.1')`), 'the healthcheck connects to the simulator port');
    // The Huawei-style flags the comment suggests adding are valid too.
    const suggested = /add ("--[^\n]*") to the command/.exec(COMPOSE_TEXT);
    assert.ok(suggested, 'the comment shows the slow-mode flags');
    const extra = [...suggested[1]!.matchAll(/"([^"]+)"/g)].map((m) => m[1]!);
    const slow = parseSimOptions([...(inverter.command as string[]), ...extra], {});
    assert.ok(slow.connectDelayMs > 0 && slow.minGapMs > 0, 'slow mode on');
    assert.deepEqual(slow.units, [0]);
  });

  it('the image contains dist/sim/main.js: built from src/ (not ignored by .dockerignore), copied to the runtime stage, no dev dependency', () => {
    const build = JSON.parse(readRepoFile('tsconfig.build.json')) as { compilerOptions: { rootDir: string; outDir: string }; include: string[] };
    assert.equal(build.compilerOptions.rootDir, 'src');
    assert.equal(build.compilerOptions.outDir, 'dist');
    assert.ok(build.include.includes('src'), 'src/sim/main.ts compiles to dist/sim/main.js');
    const parsed = parseDockerfile(readRepoFile('Dockerfile'));
    const buildStage = parsed.stages.find((stage) => instructionsOf(stage, 'RUN').some((r) => (r.getArgumentsContent() ?? '').includes('npm run build')));
    assert.ok(buildStage?.name, 'a named stage runs npm run build');
    const buildDir = workdirOf(buildStage);
    assert.ok(instructionsOf(buildStage, 'COPY').some((c) => /^src\s/.test(c.getArgumentsContent() ?? '')), 'the build stage copies src/');
    assert.ok(
      instructionsOf(parsed.final, 'COPY').some(
        (c) => flagsOf(c).get('from') === buildStage.name && (c.getArgumentsContent() ?? '').split(/\s+/)[0] === `${buildDir}/dist`,
      ),
      `the runtime stage copies ${buildDir}/dist from the build stage`,
    );
    // Every module the simulator loads, followed from src/sim/main.ts: in the build context, and importing only Node's
    // built-ins or production dependencies (the runtime stage installs with --omit=dev).
    const ignore = parseDockerignore(readRepoFile('.dockerignore'));
    const dependencies = Object.keys((JSON.parse(readRepoFile('package.json')) as { dependencies: Record<string, string> }).dependencies);
    const seen = new Set<string>();
    const pending = ['src/sim/main.ts'];
    while (pending.length > 0) {
      const path = pending.pop()!;
      if (seen.has(path)) continue;
      seen.add(path);
      assert.equal(isIgnored(ignore, path), false, `${path} is in the build context`);
      const { relative, bare } = importsOf(path);
      for (const name of bare) {
        const builtin = name.startsWith('node:') || builtinModules.includes(name);
        assert.ok(builtin || dependencies.includes(name.split('/')[0]!), `${path} imports ${name}, which the image does not install`);
      }
      pending.push(...relative);
    }
    assert.ok(seen.has('src/sim/modbus-device.ts') && seen.has('src/sim/options.ts'), `followed the imports: ${[...seen].join(', ')}`);
  });

  it('the commented settings (a real inverter, an RTU gateway, Huawei-style pacing and unit map, read-only) are known and load', () => {
    const commented = commentedSettings('switchboard');
    const names = commented.map(([name]) => name);
    for (const name of ['TARGET', 'CONNECT_DELAY_MS', 'REQUEST_GAP_MS', 'UNIT_MAP']) assert.ok(names.includes(name), `a commented ${name} example`);
    assert.ok(commented.some(([name, value]) => name === 'TARGET' && /^\d+\.\d+\.\d+\.\d+:\d+$/.test(value)), "a real inverter's address");
    const known = knownEnvNames('mux');
    for (const name of names) assert.ok(known.has(name), `${name} is a mux setting`);
    // Each commented TARGET on its own; every other commented setting together (as a Huawei user would set them).
    const base = switchboard.environment as Record<string, string>;
    const others = Object.fromEntries(commented.filter(([name]) => name !== 'TARGET'));
    for (const [, target] of commented.filter(([name]) => name === 'TARGET')) {
      const mux = muxConfigOf({ ...base, ...others, TARGET: target });
      assert.equal(mux.connectDelayMs, Number(others.CONNECT_DELAY_MS));
      assert.equal(mux.requestGapMs, Number(others.REQUEST_GAP_MS));
      assert.deepEqual([...mux.unitMap.entries()], [[1, 0]]);
    }
  });

  it('has a groups example (commented out) that is valid once uncommented', () => {
    const service = commentedService('chat-groups');
    assert.deepEqual(problems({ services: { 'chat-groups': service } }), []);
    checkService('chat-groups', service, 'groups', ['tcp/7100', 'udp/7100']);
  });
});
