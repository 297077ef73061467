/**
 * deploy/: Kubernetes manifests, one file per mode, proven without a cluster. kubernetes-models validates every object
 * against the Kubernetes OpenAPI schemas (types, required fields), but it accepts unknown (misspelt) field names, so every
 * field we rely on is also asserted here: probes on the sidecar's paths and port, preStop sleep and a termination grace
 * that covers it plus SHUTDOWN_GRACE_MS, the security context, enableServiceLinks: false, resources derived from README's
 * memory formula, Service and selectors that match, and for mux one replica with the Recreate strategy.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import YAML from 'yaml';
import { MODES, type Mode } from '../../src/config/settings.js';
import { knownEnvNames, missingFromEnvExample, readRepoFile, ROOT, settingDefault } from './support.js';

/* eslint-disable @typescript-eslint/no-explicit-any -- manifests are checked field by field on plain parsed YAML */
type Doc = Record<string, any>;

const MODELS = { Deployment, Service, ConfigMap } as const;

const files = readdirSync(`${ROOT}/deploy`).filter((f) => /\.ya?ml$/.test(f)).sort();

function load(file: string): { docs: Doc[]; configMap: Doc; service: Doc; deployment: Doc; mode: Mode } {
  const docs = YAML.parseAllDocuments(readRepoFile(`deploy/${file}`)).map((d) => d.toJS() as Doc).filter(Boolean);
  const one = (kind: string): Doc => {
    const found = docs.filter((d) => d.kind === kind);
    assert.equal(found.length, 1, `${file}: one ${kind}`);
    return found[0]!;
  };
  const mode = MODES.find((m) => new RegExp(`(^|[-_.])${m}([-_.]|$)`).test(file.replace(/\.ya?ml$/, '')));
  assert.ok(mode, `${file}: the file name names its mode`);
  return { docs, configMap: one('ConfigMap'), service: one('Service'), deployment: one('Deployment'), mode };
}

/** Kubernetes quantities (`128Mi`, `256M`, `1Gi`, plain bytes) in bytes. */
function bytes(quantity: string): number {
  const match = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|k|M|G)?$/.exec(quantity);
  assert.ok(match, `${quantity} is a memory quantity`);
  const unit = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, k: 1e3, M: 1e6, G: 1e9 }[match[2] as 'Ki'] ?? 1;
  return Number(match[1]) * unit;
}

/** README's worst-case memory formula: RSS ≈ A MiB + B KiB × open connections + MAX_BUFFERED_BYTES + C MiB of heap garbage (+ transient). */
function readmeMemoryFormula(): { baseBytes: number; perConnectionBytes: number; heapGarbageBytes: number } {
  const match = /RSS ≈ (\d+) MiB[^+]*\+ (\d+) KiB × open connections \+ `MAX_BUFFERED_BYTES`\s+\+ (\d+) MiB of heap garbage/.exec(readRepoFile('README.md'));
  assert.ok(match, 'README states the memory formula "RSS ≈ N MiB … + N KiB × open connections + `MAX_BUFFERED_BYTES` + N MiB of heap garbage"');
  return { baseBytes: Number(match[1]) * 1024 ** 2, perConnectionBytes: Number(match[2]) * 1024, heapGarbageBytes: Number(match[3]) * 1024 ** 2 };
}

/** main.ts gives the sidecar this long beyond SHUTDOWN_GRACE_MS before close-with-grace forces exit 1. */
function shutdownMarginMs(): number {
  const match = /const SHUTDOWN_MARGIN_MS = (\d[\d_]*);/.exec(readRepoFile('src/main.ts'));
  assert.ok(match, 'src/main.ts defines SHUTDOWN_MARGIN_MS');
  return Number(match[1]!.replace(/_/g, ''));
}

/**
 * Problems with the fields we rely on in one mode's manifests (empty = all present and consistent). A function, so the
 * negative controls below can show it catches what kubernetes-models lets through.
 */
function checkManifests(configMap: Doc, service: Doc, deployment: Doc, mode: Mode): string[] {
  const problems: string[] = [];
  const expect = (ok: unknown, problem: string) => {
    if (!ok) problems.push(problem);
  };
  const env: Record<string, string> = configMap.data ?? {};
  const setting = (name: string): string | undefined => env[name] ?? settingDefault(name, mode);

  // ConfigMap: known names only, the file's mode.
  const known = knownEnvNames(mode);
  for (const name of Object.keys(env)) expect(known.has(name), `ConfigMap: ${name} is not a ${mode} setting or alias`);
  expect(env.MODE === mode, `ConfigMap: MODE is ${env.MODE}, not ${mode}`);
  for (const name of missingFromEnvExample(Object.keys(env), mode)) expect(false, `ConfigMap: ${name} is not in .env.example`);
  // Probe paths are routes the sidecar registers.
  const sidecar = readRepoFile('src/sidecar/server.ts');
  for (const path of ['/livez', '/readyz']) expect(sidecar.includes(`'${path}'`), `the sidecar registers ${path}`);

  const spec = deployment.spec ?? {};
  const pod = spec.template?.spec ?? {};
  const containers: Doc[] = pod.containers ?? [];
  expect(containers.length === 1, 'Deployment: one container');
  const container = containers[0] ?? {};

  // Selectors and labels.
  const podLabels = spec.template?.metadata?.labels ?? {};
  for (const [k, v] of Object.entries(spec.selector?.matchLabels ?? {})) expect(podLabels[k] === v, `Deployment selector ${k} does not match the pod labels`);
  expect(Object.keys(spec.selector?.matchLabels ?? {}).length > 0, 'Deployment: selector.matchLabels');
  for (const [k, v] of Object.entries(service.spec?.selector ?? {})) expect(podLabels[k] === v, `Service selector ${k} does not match the pod labels`);
  expect(Object.keys(service.spec?.selector ?? {}).length > 0, 'Service: selector');

  // Configuration comes from the ConfigMap.
  expect(
    (container.envFrom ?? []).some((e: Doc) => e.configMapRef?.name === configMap.metadata?.name),
    'container: envFrom the ConfigMap',
  );
  for (const e of container.env ?? []) expect(known.has(e.name), `container env: ${e.name} is not a ${mode} setting`);

  // Ports: the container's named ports are what the settings make it listen on; the Service targets them.
  const ports: Doc[] = container.ports ?? [];
  // Port names are IANA service names (the API server enforces it; the schemas do not): 1-15 of [a-z0-9-], one letter.
  for (const p of [...ports, ...(service.spec?.ports ?? [])]) {
    expect(/^(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(p.name ?? '') && p.name.length <= 15 && !p.name.includes('--'), `port name ${p.name} is an IANA service name`);
  }
  for (const doc of [configMap, service, deployment]) {
    expect(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(doc.metadata?.name ?? '') && doc.metadata.name.length <= 63, `${doc.kind} name ${doc.metadata?.name} is a DNS label`);
  }
  const portNamed = (name: string) => ports.find((p) => p.name === name);
  const httpPort = Number(setting('HTTP_PORT'));
  expect(portNamed('http')?.containerPort === httpPort, `container port "http" is HTTP_PORT (${httpPort})`);
  const dataPorts =
    mode === 'groups'
      ? [
          { protocol: 'TCP', port: Number(setting('TCP_PORT')) },
          { protocol: 'UDP', port: Number(setting('UDP_PORT')) },
        ]
      : mode === 'mux' || mode === 'share'
        ? [{ protocol: 'TCP', port: Number(setting('LISTEN_PORT') ?? (mode === 'mux' ? 5020 : 3333)) }]
        : [];
  for (const { protocol, port } of dataPorts) {
    expect(
      ports.some((p) => p.containerPort === port && (p.protocol ?? 'TCP') === protocol),
      `container declares ${protocol} ${port}`,
    );
  }
  for (const servicePort of service.spec?.ports ?? []) {
    const target = portNamed(String(servicePort.targetPort)) ?? ports.find((p) => p.containerPort === servicePort.targetPort);
    expect(target, `Service port ${servicePort.name} targets a container port`);
    expect(target && (target.protocol ?? 'TCP') === (servicePort.protocol ?? 'TCP'), `Service port ${servicePort.name}: same protocol as its target`);
  }

  // Probes on the sidecar.
  const probe = (name: string, path: string) => {
    const p = container[name];
    expect(p?.httpGet?.path === path, `${name}: httpGet ${path}`);
    const port = p?.httpGet?.port;
    expect(port === 'http' || port === httpPort, `${name}: on the sidecar port`);
  };
  probe('startupProbe', '/livez');
  probe('livenessProbe', '/livez');
  probe('readinessProbe', '/readyz');

  // Shutdown: preStop sleep, then SIGTERM and up to SHUTDOWN_GRACE_MS of drain plus main.ts's margin, all inside the grace.
  const preStopSeconds = container.lifecycle?.preStop?.sleep?.seconds;
  expect(Number.isInteger(preStopSeconds) && preStopSeconds > 0, 'lifecycle.preStop.sleep.seconds');
  const drainSeconds = (Number(setting('SHUTDOWN_GRACE_MS')) + shutdownMarginMs()) / 1000;
  const grace = pod.terminationGracePeriodSeconds;
  expect(
    Number.isInteger(grace) && grace >= (preStopSeconds ?? 0) + drainSeconds + 1,
    `terminationGracePeriodSeconds ${grace} < preStop ${preStopSeconds} s + drain ${drainSeconds} s + 1 s margin`,
  );

  // Security.
  expect(pod.enableServiceLinks === false, 'pod: enableServiceLinks: false');
  expect(pod.securityContext?.runAsNonRoot === true, 'pod: securityContext.runAsNonRoot');
  expect(pod.securityContext?.runAsUser === 1000, 'pod: runAsUser 1000 (the image user node)');
  const sc = container.securityContext ?? {};
  expect(sc.readOnlyRootFilesystem === true, 'container: readOnlyRootFilesystem');
  expect(sc.allowPrivilegeEscalation === false, 'container: allowPrivilegeEscalation: false');
  expect(JSON.stringify(sc.capabilities?.drop) === '["ALL"]', 'container: capabilities.drop [ALL]');
  expect(!sc.capabilities?.add, 'container: no capabilities added');
  expect(sc.runAsNonRoot === true || pod.securityContext?.runAsNonRoot === true, 'runAsNonRoot');

  // Resources from README's formula.
  const { baseBytes, perConnectionBytes, heapGarbageBytes } = readmeMemoryFormula();
  const limit = container.resources?.limits?.memory;
  const request = container.resources?.requests?.memory;
  expect(limit && request && container.resources?.requests?.cpu, 'resources: requests (cpu, memory) and limits.memory');
  if (limit && request) {
    const worstCase = baseBytes + perConnectionBytes * Number(setting('MAX_CLIENTS')) + Number(setting('MAX_BUFFERED_BYTES')) + heapGarbageBytes;
    expect(bytes(limit) >= worstCase, `limits.memory ${limit} is below README's worst case ${(worstCase / 1024 ** 2).toFixed(0)} MiB`);
    expect(bytes(limit) <= 2 * worstCase, `limits.memory ${limit} is more than twice README's worst case`);
    expect(bytes(request) >= baseBytes && bytes(request) <= bytes(limit), `requests.memory ${request} between the idle process and the limit`);
  }

  // Mode specifics.
  if (mode === 'mux') {
    expect(spec.replicas === 1, 'mux: replicas: 1');
    expect(spec.strategy?.type === 'Recreate' && !spec.strategy?.rollingUpdate, 'mux: strategy Recreate');
  }
  return problems;
}

describe('deploy/ (Kubernetes)', () => {
  it('has one file per mode, named after the mode, for at least groups and mux', () => {
    const modes = files.map((f) => load(f).mode);
    assert.ok(modes.includes('groups') && modes.includes('mux'), `files: ${files.join(', ')}`);
    assert.equal(new Set(modes).size, modes.length, 'one file per mode');
  });

  for (const file of files) {
    describe(file, () => {
      it('every object validates against the Kubernetes schemas (kubernetes-models)', () => {
        const { docs } = load(file);
        for (const doc of docs) {
          const Model = MODELS[doc.kind as keyof typeof MODELS];
          assert.ok(Model, `${doc.kind} is a kind this test knows`);
          assert.doesNotThrow(() => new Model(doc as any).validate(), `${doc.kind} ${doc.metadata?.name}`);
        }
      });

      it('has every field we rely on, consistent with the settings, README and main.ts', () => {
        const { configMap, service, deployment, mode } = load(file);
        assert.deepEqual(checkManifests(configMap, service, deployment, mode), []);
      });

      it('explains its memory limit and the mux strategy in comments', () => {
        const text = readRepoFile(`deploy/${file}`);
        assert.match(text, /RSS ≈ \d+ MiB \+ \d+ KiB × open connections \+ MAX_BUFFERED_BYTES/);
        if (load(file).mode === 'mux') assert.match(text, /Recreate[\s\S]*second connection/);
      });
    });
  }

  it('controls: misspelt or missing fields pass kubernetes-models but not these checks', () => {
    const { configMap, service, deployment, mode } = load(files.find((f) => f.includes('mux'))!);
    const cases: Array<[string, (d: Doc, c: Doc) => void, RegExp]> = [
      ['enableServiceLink', (d) => { d.spec.template.spec.enableServiceLink = false; delete d.spec.template.spec.enableServiceLinks; }, /enableServiceLinks/],
      ['readOnlyRootFileSystem', (d) => { const sc = d.spec.template.spec.containers[0].securityContext; sc.readOnlyRootFileSystem = true; delete sc.readOnlyRootFilesystem; }, /readOnlyRootFilesystem/],
      ['prestop', (d) => { const l = d.spec.template.spec.containers[0].lifecycle; l.prestop = l.preStop; delete l.preStop; }, /preStop/],
      ['short grace', (d) => { d.spec.template.spec.terminationGracePeriodSeconds = 10; }, /terminationGracePeriodSeconds/],
      ['RollingUpdate', (d) => { d.spec.strategy = { type: 'RollingUpdate' }; }, /Recreate/],
      ['readiness on /livez', (d) => { d.spec.template.spec.containers[0].readinessProbe.httpGet.path = '/livez'; }, /readinessProbe/],
      ['unknown setting', (_d, c) => { c.data.TCP_PROT = '1'; }, /TCP_PROT/],
      ['port name', (d) => { d.spec.template.spec.containers[0].ports[0].name = 'Modbus_TCP_clients'; }, /IANA/],
      ['small limit', (d) => { d.spec.template.spec.containers[0].resources.limits.memory = '128Mi'; }, /limits.memory/],
    ];
    for (const [name, mutate, expected] of cases) {
      const d = structuredClone(deployment);
      const c = structuredClone(configMap);
      mutate(d, c);
      assert.doesNotThrow(() => new Deployment(d as any).validate(), `${name}: kubernetes-models accepts it`);
      const problems = checkManifests(c, service, d, mode);
      assert.ok(problems.some((p) => expected.test(p)), `${name}: reported (got ${JSON.stringify(problems)})`);
    }
  });
});
