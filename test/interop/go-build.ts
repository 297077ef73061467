/**
 * Builds a Go interop peer from test/interop/go/<name> offline, against Debian's Go sources in /usr/share/gocode
 * (e.g. golang-github-hashicorp-yamux-dev), in GOPATH mode so no module proxy is ever asked:
 *
 *   GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=<tmp>/gocache GOPROXY=off GOFLAGS= CGO_ENABLED=0 \
 *     go build -o <tmp>/<name> .        (run inside test/interop/go/<name>)
 *
 * Each program is built once per test process (the promise is cached) into a temp dir removed at exit. When `go` or a
 * needed Debian source is missing, the result carries a skip reason instead of a binary; `skipOrFail` then skips the
 * test on a developer machine and fails it in CI (CI=true), so a missing peer never passes silently there.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';

export const DEBIAN_GOPATH = '/usr/share/gocode';
/** A cold build of a small peer takes about 2 s here (Go 1.19 ships its std library precompiled). */
const BUILD_TIMEOUT_MS = 120_000;

export type GoBuild = { binary: string; skipReason?: undefined } | { binary?: undefined; skipReason: string };

const here = dirname(fileURLToPath(import.meta.url));
const builds = new Map<string, Promise<GoBuild>>();
let buildRoot: string | undefined;

function run(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeout: number },
): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    const settings = { ...options, killSignal: 'SIGKILL' as const, maxBuffer: 4 * 1024 * 1024 };
    execFile(command, args, settings, (error, stdout, stderr) => {
      resolve({ ok: !error, output: `${stdout}${stderr}`.trim() || String(error?.message ?? '') });
    });
  });
}

/**
 * Builds test/interop/go/<name>; `imports` are the GOPATH packages it needs (checked first, to give a clear reason).
 */
export function buildGoPeer(name: string, imports: string[]): Promise<GoBuild> {
  let build = builds.get(name);
  if (!build) {
    build = doBuild(name, imports);
    builds.set(name, build);
  }
  return build;
}

async function doBuild(name: string, imports: string[]): Promise<GoBuild> {
  const source = join(here, 'go', name);
  if (!existsSync(join(source, 'main.go'))) return { skipReason: `no Go program at ${source}` };
  const version = await run('go', ['version'], { timeout: 10_000 });
  if (!version.ok) return { skipReason: `go is not installed (apt-get install golang-go): ${version.output}` };
  for (const pkg of imports) {
    if (!existsSync(join(DEBIAN_GOPATH, 'src', pkg))) {
      return { skipReason: `${pkg} is not in ${DEBIAN_GOPATH} (install its Debian golang-*-dev package)` };
    }
  }
  if (!buildRoot) {
    const root = mkdtempSync(join(tmpdir(), 'switchboard-go-'));
    buildRoot = root;
    process.once('exit', () => rmSync(root, { recursive: true, force: true }));
  }
  const binary = join(buildRoot, name);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: buildRoot,
    GO111MODULE: 'off',
    GOPATH: DEBIAN_GOPATH,
    GOCACHE: join(buildRoot, 'gocache'),
    GOPROXY: 'off',
    GOFLAGS: '',
    GOTOOLCHAIN: 'local',
    CGO_ENABLED: '0',
  };
  const result = await run('go', ['build', '-o', binary, '.'], { cwd: source, env, timeout: BUILD_TIMEOUT_MS });
  if (!result.ok) return { skipReason: `go build of ${name} failed: ${result.output}` };
  return { binary };
}

/** Skips on a developer machine, fails in CI: an interop peer that cannot be built must not pass silently there. */
export function skipOrFail(t: TestContext, reason: string): void {
  if (process.env.CI === 'true') assert.fail(`interop peer unavailable in CI: ${reason}`);
  t.skip(reason);
}
