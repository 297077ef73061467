/**
 * The Dockerfile and .dockerignore, proven without a Docker engine: dockerfile-utils' validator (the linter behind the
 * VS Code Docker extension) finds no problem, and the instructions say what DESIGN §8 and issue 4 ask for — multi-stage,
 * Node 22+, a production install, a non-root user, a HEALTHCHECK on /livez without curl, every mode's default port
 * exposed, and an exec-form start of node that passes `docker run` arguments (tcp-multiplexer's command line) to main.js.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { validate } from 'dockerfile-utils';
import {
  contextFiles,
  envExampleDefaultPorts,
  DESIGN_DEFAULT_PORTS,
  execForm,
  exposedPorts,
  flagsOf,
  healthcheck,
  instructionsOf,
  isIgnored,
  parseDockerfile,
  parseDockerignore,
  readRepoFile,
  ROOT,
  settingDefault,
  settingsDefaultPorts,
  startCommand,
  workdirOf,
} from './support.js';

const DOCKERFILE = readRepoFile('Dockerfile');
const parsed = parseDockerfile(DOCKERFILE);
/** What `npm start` runs, which the image must match. */
const pkg = JSON.parse(readRepoFile('package.json')) as {
  main: string;
  config: { glibc_tunables: string; node_options: string; node_flags: string };
  scripts: { start: string };
};
const runCommands = (stageIndex: number) =>
  instructionsOf(parsed.stages[stageIndex]!, 'RUN').map((i) => i.getArgumentsContent() ?? '');

describe('Dockerfile', () => {
  it('passes dockerfile-utils validation, which does find mistakes (control: a broken copy has diagnostics)', () => {
    assert.deepEqual(
      validate(DOCKERFILE).map((d) => `${d.range.start.line + 1}: ${d.message}`),
      [],
    );
    const broken = DOCKERFILE.replace('EXPOSE 7100/tcp', 'EXPOSE 7100/tpc').replace('USER node', 'USER');
    assert.ok(validate(broken).length >= 2, 'the validator reports a bad EXPOSE protocol and an empty USER');
  });

  it('is multi-stage on a Node 22 or newer image', () => {
    assert.ok(parsed.stages.length >= 2, 'a build stage and a runtime stage');
    for (const stage of parsed.stages) {
      const match = /^node:(\d+)[-.\w]*$/.exec(stage.image);
      assert.ok(match, `FROM ${stage.image} is an official node image`);
      assert.ok(Number(match[1]) >= 22, `FROM ${stage.image} is Node 22 or newer`);
    }
  });

  it('builds with every dependency in the first stage and installs production dependencies only in the runtime stage', () => {
    const build = runCommands(0);
    assert.ok(build.some((c) => /\bnpm ci\b/.test(c) && !/--omit=dev/.test(c)), `build stage runs npm ci: ${build.join(' | ')}`);
    assert.ok(build.some((c) => /\bnpm run build\b/.test(c)), 'build stage runs npm run build');
    const runtime = runCommands(parsed.stages.length - 1);
    assert.deepEqual(runtime.length, 1, 'the runtime stage runs one command');
    assert.match(runtime[0]!, /^npm ci --omit=dev\b/);
    const fromBuild = instructionsOf(parsed.final, 'COPY').filter((i) => flagsOf(i).get('from') === parsed.stages[0]!.name);
    assert.equal(fromBuild.length, 1, 'the runtime stage copies one thing from the build stage');
    assert.equal(fromBuild[0]!.getArgumentsContent(), `${workdirOf(parsed.stages[0]!)}/dist ./dist`);
    // No source, tests or dev tooling in the runtime stage.
    for (const copy of instructionsOf(parsed.final, 'COPY')) assert.doesNotMatch(copy.getArgumentsContent() ?? '', /\bsrc\b|\btest\b|^\.\s/);
  });

  it('runs as the non-root user node, with NODE_ENV=production', () => {
    const user = instructionsOf(parsed.final, 'USER').at(-1)?.getArgumentsContent();
    assert.equal(user, 'node');
    const env = instructionsOf(parsed.final, 'ENV').map((i) => i.getArgumentsContent());
    assert.ok(env.includes('NODE_ENV=production'));
  });

  it('sets the same GLIBC_TUNABLES and NODE_OPTIONS as `npm start`, which a user can override or empty', () => {
    const { glibc_tunables: tunables, node_options: nodeOptions } = pkg.config;
    assert.match(tunables, /^glibc\.malloc\.trim_threshold=\d+:glibc\.malloc\.top_pad=\d+$/);
    assert.equal(nodeOptions, '--max-semi-space-size=1');
    const env = instructionsOf(parsed.final, 'ENV').map((i) => i.getArgumentsContent());
    assert.ok(env.includes(`GLIBC_TUNABLES=${tunables}`), 'the image sets package.json config.glibc_tunables');
    assert.ok(env.includes(`NODE_OPTIONS=${nodeOptions}`), 'the image sets package.json config.node_options');
    // `${VAR-default}` (no colon): an explicitly empty value switches the tuning off.
    assert.match(
      pkg.scripts.start,
      /^GLIBC_TUNABLES=\$\{GLIBC_TUNABLES-\$npm_package_config_glibc_tunables\} NODE_OPTIONS=\$\{NODE_OPTIONS-\$npm_package_config_node_options\} node \$npm_package_config_node_flags dist\/main\.js$/,
    );
  });

  it('starts node directly in exec form, with the node flags of `npm start`, and `docker run image server -t …` reaches main.js as arguments', () => {
    assert.equal(pkg.config.node_flags, '--initial-heap-size=64 --no-allocation-site-pretenuring');
    const node = ['node', ...pkg.config.node_flags.split(' '), 'dist/main.js'];
    assert.deepEqual(startCommand(parsed), node);
    // Docker: arguments after the image name replace CMD and follow ENTRYPOINT.
    const tcpMultiplexer = ['server', '-t', 'host:502', '-p', 'modbus', '-l', '8000'];
    assert.deepEqual(startCommand(parsed, tcpMultiplexer), [...node, ...tcpMultiplexer]);
    // The ENTRYPOINT must be the image's own: the base image's docker-entrypoint.sh runs under dash, which drops
    // SocketForwarder's dotted names, and would turn `server` into `node server`.
    const entrypoint = instructionsOf(parsed.final, 'ENTRYPOINT');
    assert.equal(entrypoint.length, 1);
    assert.deepEqual(execForm(entrypoint[0]!.getArgumentsContent()!, 'ENTRYPOINT'), node);
    // dist/main.js is what the build emits: tsconfig.build.json compiles src/ into dist/, and package.json agrees.
    const buildConfig = JSON.parse(readRepoFile('tsconfig.build.json')) as { compilerOptions: { rootDir: string; outDir: string } };
    assert.deepEqual([buildConfig.compilerOptions.rootDir, buildConfig.compilerOptions.outDir], ['src', 'dist']);
    assert.ok(existsSync(join(ROOT, 'src/main.ts')));
    assert.equal(pkg.main, 'dist/main.js');
  });

  it('has a HEALTHCHECK on /livez that needs no curl and follows HTTP_PORT', () => {
    const { command, options } = healthcheck(parsed);
    assert.equal(command[0], 'node');
    assert.equal(command[1], '-e');
    assert.match(command[2]!, /fetch\('http:\/\/127\.0\.0\.1:' \+ \(process\.env\.HTTP_PORT \|\| '9502'\) \+ '\/livez'\)/);
    assert.doesNotMatch(command.join(' '), /curl|wget/);
    for (const name of ['interval', 'timeout', 'start-period', 'retries']) assert.ok(options.has(name), `--${name}`);
    // The script's fallback port is the settings table's default.
    assert.ok(command[2]!.includes(`'${settingDefault('HTTP_PORT', 'groups')}'`), 'falls back to HTTP_PORT\'s default');
  });

  it('exposes the default port of every mode: DESIGN, the settings table and .env.example agree', () => {
    const exposed = new Set(exposedPorts(parsed));
    const expected = [...Object.values(DESIGN_DEFAULT_PORTS).flat(), ...settingsDefaultPorts(), ...envExampleDefaultPorts()];
    for (const port of expected) assert.ok(exposed.has(port), `EXPOSE ${port.split('/').reverse().join(' on ')}`);
  });
});

describe('.dockerignore', () => {
  const patterns = parseDockerignore(readRepoFile('.dockerignore'));

  it('matches like Docker: last match wins, ! re-includes, a directory pattern covers what is below it', () => {
    const rules = parseDockerignore('node_modules\n**/*.log\n*.md\n!README.md\ndocs/**\n!docs/keep/**\n');
    assert.equal(isIgnored(rules, 'node_modules/fastify/package.json'), true);
    assert.equal(isIgnored(rules, 'a/b/c.log'), true);
    assert.equal(isIgnored(rules, 'CHANGES.md'), true);
    assert.equal(isIgnored(rules, 'README.md'), false);
    assert.equal(isIgnored(rules, 'sub/CHANGES.md'), false, '* does not cross /');
    assert.equal(isIgnored(rules, 'docs/a.txt'), true);
    assert.equal(isIgnored(rules, 'docs/keep/a.txt'), false);
  });

  it('keeps node_modules, dist, .git, .env files, tests and bench output out of the build context', () => {
    for (const path of ['node_modules/pino/package.json', 'dist/main.js', '.git/HEAD', '.env', '.env.local', 'test/helpers.ts', 'bench/RESULTS.md', 'README.md']) {
      assert.equal(isIgnored(patterns, path), true, `${path} stays out`);
    }
  });

  it('lets in everything the Dockerfile copies from the context', () => {
    const files = contextFiles(ROOT, patterns);
    for (const stage of parsed.stages) {
      for (const copy of instructionsOf(stage, 'COPY')) {
        if (flagsOf(copy).has('from')) continue;
        const sources = (copy.getArgumentsContent() ?? '').split(/\s+/).slice(0, -1);
        for (const source of sources) {
          const clean = source.replace(/^\.\//, '').replace(/\/$/, '');
          assert.ok(files.some((f) => f === clean || f.startsWith(`${clean}/`)), `COPY ${source} finds files in the context`);
        }
      }
    }
    assert.ok(files.includes('src/main.ts'));
    assert.ok(!files.some((f) => f.startsWith('node_modules/') || f.startsWith('dist/')));
  });
});
