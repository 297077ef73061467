/**
 * The image's runtime, reproduced outside a container (there is no Docker engine here). The Dockerfile is read, not
 * paraphrased: the build context is the repository filtered by .dockerignore; the build stage's `npm run build` compiles
 * that context; the runtime stage's COPY and RUN (`npm ci --omit=dev …`) run in a fresh directory; then the tree is made
 * read-only and the exact ENTRYPOINT + CMD start there with the Dockerfile's ENV, as an unprivileged user (nobody, since
 * this machine has no `node` user; root would ignore file permissions) inside a private mount namespace where every
 * filesystem except /proc, /sys and /dev is remounted read-only, as `read_only: true` and readOnlyRootFilesystem do.
 *
 * Then: /livez and /readyz answer, the Dockerfile's HEALTHCHECK command exits 0, two groups members exchange bytes (joined
 * with a prefix given by a SocketForwarder dotted name, which must survive the start path), SIGTERM exits 0 within
 * SHUTDOWN_GRACE_MS, stderr shows no EROFS/EACCES, and no file owned by nobody appeared in a world-writable directory.
 * Then tcp-multiplexer's command line (`server -t … -p modbus -l 0`) given after the image name starts mux mode.
 * A runtime dependency missing from `dependencies` (or a dev dependency imported at run time) fails it, and so does a write
 * to the filesystem, because it fails with EROFS (a crash or a logged error) or leaves a file. Only a failed write that
 * the code swallows silently would go unnoticed, and it would be harmless in the container for the same reason.
 *
 * Needs npm (the registry, or its cache), setpriv and unshare; without them it skips with the reason, and fails under CI=true.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connectTcp, Recorder, waitFor } from '../helpers.js';
import {
  AVAILABLE_MODES,
  contextFiles,
  flagsOf,
  healthcheck,
  instructionsOf,
  parseDockerfile,
  parseDockerignore,
  readRepoFile,
  ROOT,
  startCommand,
  workdirOf,
} from './support.js';

const NOBODY = { uid: 65534, gid: 65534 };
const GRACE_MS = 3000;
const LOOPBACK = '127.0.0.1';

function missingTools(): string[] {
  const missing: string[] = [];
  const has = (command: string, args: string[]) => spawnSync(command, args, { stdio: 'ignore', timeout: 10_000 }).status === 0;
  if (!has('npm', ['--version'])) missing.push('npm');
  if (!has('setpriv', ['--version'])) missing.push('setpriv (util-linux)');
  if (!has('unshare', ['--mount', '--propagation', 'private', 'true'])) missing.push('unshare --mount (util-linux, root or CAP_SYS_ADMIN)');
  if (process.getuid?.() !== 0) missing.push('root (to switch to nobody and to remount read-only)');
  return missing;
}

const missing = missingTools();
const skip = missing.length > 0 && process.env.CI !== 'true' ? `needs ${missing.join(', ')}` : false;

const children = new Set<ChildProcess>();
let workspace: string | undefined;

function run(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): void {
  const result = spawnSync(command, args, { cwd: options.cwd, env: options.env ?? process.env, encoding: 'utf8', timeout: options.timeoutMs });
  assert.equal(result.status, 0, `${command} ${args.join(' ')} failed (${result.signal ?? result.status}):\n${result.stdout}\n${result.stderr}`);
}

/** Stage filesystem path -> directory here. Only the two stages' WORKDIRs are mapped: nothing else is copied to. */
function resolveIn(stageRoot: string, workdir: string, path: string): string {
  const absolute = path.startsWith('/') ? path : join(workdir, path);
  assert.ok(absolute === workdir || absolute.startsWith(`${workdir}/`), `${path} stays inside WORKDIR ${workdir}`);
  return join(stageRoot, absolute.slice(workdir.length));
}

/**
 * Builds the runtime tree as the Dockerfile would and returns its path. The build stage's `npm ci` is stood in for by the
 * repository's node_modules (same lockfile); everything the runtime stage does is done for real.
 */
interface ImageTree {
  app: string;
  env: Record<string, string>;
  /** ENTRYPOINT + CMD. */
  command: string[];
  /** How many trailing elements of `command` come from CMD (replaced by `docker run` arguments). */
  cmdLength: number;
  check: string[];
}

function buildImageTree(root: string): ImageTree {
  const parsed = parseDockerfile(readRepoFile('Dockerfile'));
  const [build, runtime] = [parsed.stages[0]!, parsed.final];
  assert.notEqual(build, runtime);

  // Build context: the repository as .dockerignore filters it.
  const context = join(root, 'context');
  for (const file of contextFiles(ROOT, parseDockerignore(readRepoFile('.dockerignore')))) {
    mkdirSync(dirname(join(context, file)), { recursive: true });
    cpSync(join(ROOT, file), join(context, file));
  }
  // Build stage: its WORKDIR holds the context's files (COPY) and node_modules (`npm ci`, stood in for by the repository's
  // node_modules); every other RUN (`npm run build`) runs for real.
  symlinkSync(join(ROOT, 'node_modules'), join(context, 'node_modules'));
  for (const instruction of instructionsOf(build, 'RUN')) {
    const content = instruction.getArgumentsContent() ?? '';
    if (/^npm ci\b/.test(content)) continue;
    assert.equal(content, 'npm run build', `the test knows how to reproduce the build stage's RUN ${content}`);
    run('npm', ['run', 'build'], { cwd: context, env: { ...process.env, NPM_CONFIG_UPDATE_NOTIFIER: 'false' }, timeoutMs: 120_000 });
  }
  assert.ok(existsSync(join(context, 'dist/main.js')), 'the build emits dist/main.js');

  // Runtime stage, instruction by instruction.
  const app = join(root, 'image');
  const workdir = workdirOf(runtime);
  const env: Record<string, string> = {};
  for (const instruction of runtime.instructions) {
    const keyword = instruction.getKeyword();
    const content = instruction.getArgumentsContent() ?? '';
    if (keyword === 'WORKDIR') mkdirSync(resolveIn(app, workdir, content), { recursive: true });
    else if (keyword === 'ENV') {
      for (const pair of content.split(/\s+/)) {
        // A value may contain '=' itself (GLIBC_TUNABLES=glibc.malloc.trim_threshold=…).
        const at = pair.indexOf('=');
        env[pair.slice(0, at)] = pair.slice(at + 1);
      }
    } else if (keyword === 'COPY') {
      const parts = content.split(/\s+/);
      const destination = resolveIn(app, workdir, parts.at(-1)!);
      const from = flagsOf(instruction).get('from');
      for (const source of parts.slice(0, -1)) {
        const sourcePath = from === undefined ? join(context, source) : resolveIn(context, workdirOf(parsed.stages.find((s) => s.name === from)!), source);
        assert.ok(existsSync(sourcePath), `COPY ${from ? `--from=${from} ` : ''}${source} exists`);
        const target = parts.at(-1)!.endsWith('/') || parts.length > 2 ? join(destination, source.split('/').at(-1)!) : destination;
        mkdirSync(dirname(target), { recursive: true });
        cpSync(sourcePath, target, { recursive: true, dereference: true });
      }
    } else if (keyword === 'RUN') {
      // Only the production install is reproduced; anything else in the runtime stage needs a decision here first.
      assert.match(content, /^npm ci --omit=dev( --[a-z-]+)*$/, `the test knows how to reproduce RUN ${content}`);
      const [command, ...args] = content.split(/\s+/) as [string, ...string[]];
      run(command, args, { cwd: resolveIn(app, workdir, '.'), env: { ...process.env, NPM_CONFIG_UPDATE_NOTIFIER: 'false' }, timeoutMs: 120_000 });
    } else {
      assert.ok(['USER', 'EXPOSE', 'HEALTHCHECK', 'ENTRYPOINT', 'CMD'].includes(keyword), `the test knows what ${keyword} does to the tree`);
    }
  }
  const user = instructionsOf(runtime, 'USER').at(-1)?.getArgumentsContent();
  assert.ok(user && user !== 'root' && user !== '0', 'the image runs as a non-root user');
  const command = startCommand(parsed);
  return { app: resolveIn(app, workdir, '.'), env, command, cmdLength: command.length - startCommand(parsed, []).length, check: healthcheck(parsed).command };
}

/**
 * Runs `argv` as nobody in a private mount namespace where every mount but /proc, /sys and /dev is read-only. bash (not
 * sh, which is dash and drops dotted names) remounts and then execs setpriv, which execs the command: one PID throughout,
 * so SIGTERM reaches node directly, as it does when node is PID 1 in the container.
 */
function sandboxed(argv: string[], cwd: string, env: Record<string, string>): ChildProcess {
  const script = [
    'set -e',
    'while read -r _ target _ options _; do',
    '  case "$target" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue ;; esac',
    '  case ",$options," in *,ro,*) continue ;; esac',
    '  mount -o remount,bind,ro "$target"',
    'done < /proc/self/mounts',
    `exec setpriv --reuid=${NOBODY.uid} --regid=${NOBODY.gid} --clear-groups --no-new-privs -- "$@"`,
  ].join('\n');
  const child = spawn('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', script, 'sandbox', ...argv], {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function exitOf(child: ChildProcess, timeoutMs: number): Promise<{ code: number | null; ms: number }> {
  const started = Date.now();
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
  const ms = Date.now() - started;
  clearTimeout(timer);
  // 'exit' can come before the last output has been read; callers look at the output next.
  await Promise.all([child.stdout, child.stderr].filter((s) => s && !s.closed).map((s) => once(s!, 'close')));
  return { code: child.exitCode, ms };
}

/** Files owned by nobody, changed since `sinceMs`, in the world-writable places a read-only root would still have. */
function filesWrittenByNobody(sinceMs: number): string[] {
  const found: string[] = [];
  const walk = (dir: string, depth: number): void => {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of entries) {
      const path = join(dir, name);
      try {
        const stat = statSync(path, { throwIfNoEntry: false });
        if (!stat) continue;
        if (stat.uid === NOBODY.uid && stat.mtimeMs >= sinceMs) found.push(path);
        if (stat.isDirectory() && depth < 3 && (stat.mode & 0o002 || stat.uid === NOBODY.uid)) walk(path, depth + 1);
      } catch {
        /* vanished or unreadable: not ours */
      }
    }
  };
  for (const dir of ['/tmp', '/var/tmp', '/dev/shm', tmpdir()]) walk(dir, 0);
  return [...new Set(found)];
}

interface Started {
  child: ChildProcess;
  stderr: () => string;
  stdout: () => string;
  lines: () => Array<Record<string, unknown>>;
}

function startImage(tree: ImageTree, env: Record<string, string>, runArgs?: string[]): Started {
  const argv = runArgs ? [...tree.command.slice(0, tree.command.length - tree.cmdLength), ...runArgs] : tree.command;
  const child = sandboxed(argv, tree.app, {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: tree.app,
    ...tree.env,
    HOST: LOOPBACK,
    HTTP_HOST: LOOPBACK,
    HTTP_PORT: '0',
    SHUTDOWN_GRACE_MS: String(GRACE_MS),
    ...env,
  });
  let stderr = '';
  let stdout = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  return {
    child,
    stderr: () => stderr,
    stdout: () => stdout,
    lines: () =>
      stderr
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

async function listenersOf(started: Started): Promise<Map<string, number>> {
  await waitFor(() => started.lines().some((l) => l.msg === 'ready') || started.child.exitCode !== null, 'the "ready" log line', 20_000);
  assert.equal(started.child.exitCode, null, `switchboard exited early:\n${started.stderr()}`);
  const listeners = started.lines().find((l) => l.msg === 'ready')!.listeners as Array<{ name: string; port: number }>;
  return new Map(listeners.map((l) => [l.name, l.port]));
}

/** SIGTERM, then exit 0 within the grace period, with no failed write and nothing on stdout. */
async function stopCleanly(started: Started): Promise<void> {
  started.child.kill('SIGTERM');
  const { code, ms } = await exitOf(started.child, GRACE_MS + 5000);
  assert.equal(code, 0, `exit status after SIGTERM:\n${started.stderr()}`);
  assert.ok(ms <= GRACE_MS + 1000, `exited ${ms} ms after SIGTERM`);
  assert.doesNotMatch(started.stderr(), /EROFS|EACCES|EPERM|read-only file system/i, 'no failed write or permission error');
  assert.equal(started.stdout(), '', 'stdout stays empty (logs go to stderr)');
}

describe('the image runtime, reproduced outside a container', { skip }, () => {
  let tree: ImageTree;

  before(() => {
    assert.deepEqual(missing, [], `needs ${missing.join(', ')}`);
    workspace = mkdtempSync(join(tmpdir(), 'switchboard-image-'));
    chmodSync(workspace, 0o755);
    tree = buildImageTree(workspace);
    // Read-only for everyone (root would still write; the process runs as nobody in a read-only mount namespace).
    run('chmod', ['-R', 'a-w,a+rX', join(workspace, 'image')], { cwd: workspace, timeoutMs: 30_000 });
  }, { timeout: 240_000 });

  after(() => {
    for (const child of children) child.kill('SIGKILL');
    if (workspace) {
      spawnSync('chmod', ['-R', 'u+w', workspace]);
      rmSync(workspace, { recursive: true, force: true });
    }
  });

  it('holds production dependencies and dist/ only, and its sandbox refuses writes (control)', async () => {
    assert.ok(existsSync(join(tree.app, 'node_modules/fastify')), 'production dependencies installed');
    assert.ok(!existsSync(join(tree.app, 'node_modules/typescript')) && !existsSync(join(tree.app, 'node_modules/tsx')), 'no dev dependencies');
    assert.ok(!existsSync(join(tree.app, 'src')), 'no sources in the image');
    const probe = sandboxed(['bash', '-c', `touch ${join(tree.app, 'probe')} 2>/dev/null || touch /tmp/switchboard-probe-$$ 2>/dev/null || exit 42`], tree.app, { PATH: process.env.PATH ?? '' });
    assert.equal((await exitOf(probe, 10_000)).code, 42, 'writes fail inside the sandbox, in the tree and in /tmp');
  });

  it('starts read-only as nobody, serves probes, the HEALTHCHECK and a groups round trip, exits 0 on SIGTERM', { timeout: 60_000 }, async () => {
    const startedAt = Date.now() - 1000;
    // A SocketForwarder dotted name must reach node through the image's start command.
    const started = startImage(tree, { TCP_PORT: '0', UDP_PORT: '0', 'socketforwarder.new_client_prefix': 'IMAGE-JOIN:' });
    const listeners = await listenersOf(started);
    const http = listeners.get('http')!;
    const tcp = listeners.get('tcp')!;

    assert.equal((await fetch(`http://${LOOPBACK}:${http}/livez`)).status, 200);
    assert.equal((await fetch(`http://${LOOPBACK}:${http}/readyz`)).status, 200);

    // The Dockerfile's HEALTHCHECK command, as nobody, with HTTP_PORT as the container would have it.
    const health = sandboxed(tree.check, tree.app, { PATH: process.env.PATH ?? '', HTTP_PORT: String(http) });
    assert.equal((await exitOf(health, 15_000)).code, 0, 'HEALTHCHECK exits 0');

    // Round trip between two members of one group.
    const member = async (group: string) => {
      const socket = await connectTcp(tcp);
      socket.write(`IMAGE-JOIN:${group}\n`);
      return new Recorder(socket);
    };
    const a = await member('image');
    const b = await member('image');
    try {
      await waitFor(async () => {
        const status = (await (await fetch(`http://${LOOPBACK}:${http}/status`)).json()) as { groups?: Array<{ id: string; members: number }> };
        return status.groups?.some((g) => g.id === 'image' && g.members === 2) ?? false;
      }, 'both members joined', 5000);
      a.socket.write('from a\n');
      b.socket.write('from b\n');
      await waitFor(() => b.text === 'from a\n' && a.text === 'from b\n', 'bytes from each member at the other', 5000);
      await stopCleanly(started);
    } finally {
      a.socket.destroy();
      b.socket.destroy();
    }
    assert.deepEqual(filesWrittenByNobody(startedAt), [], 'no file written by the process');
  });

  it("takes tcp-multiplexer's command line after the image name (docker run switchboard server -t … -l …)", { timeout: 60_000 }, async (t) => {
    if (!AVAILABLE_MODES.includes('mux')) {
      t.skip('mux mode is not available in this build yet');
      return;
    }
    // Nothing listens on port 1: mux stays ready with the upstream down (DESIGN §2).
    const started = startImage(tree, {}, ['server', '-t', `${LOOPBACK}:1`, '-p', 'modbus', '-l', '0']);
    const listeners = await listenersOf(started);
    assert.equal(started.lines().find((l) => typeof l.mode === 'string')?.mode, 'mux', 'the command line selected mux mode');
    assert.ok([...listeners.keys()].some((name) => name !== 'http'), 'a client listener is bound');
    assert.equal((await fetch(`http://${LOOPBACK}:${listeners.get('http')!}/readyz`)).status, 200);
    await stopCleanly(started);
  });
});
