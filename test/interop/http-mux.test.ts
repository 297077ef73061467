/**
 * Interop for PROTOCOL=http in mux mode (issue 7) with clients and servers nobody here wrote: curl, Node's `http` client
 * and `fetch` (undici) through switchboard to a Node `http` server and to Python's `http.server` (an HTTP/1.1 keep-alive
 * handler, and `python3 -m http.server` itself, which speaks HTTP/1.0 and closes after every response, so switchboard
 * redials each time). A missing curl or python3 skips on a developer machine and fails under CI=true.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, createServer, request as httpRequest, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { freePort, LOOPBACK, metric, waitFor } from '../helpers.js';
import { httpMux, type App } from '../engines/mux/http/peers.js';
import { skipOrFail } from './go-build.js';

const run = promisify(execFile);

async function has(command: string, args: string[]): Promise<boolean> {
  try {
    await run(command, args);
    return true;
  } catch {
    return false;
  }
}

/** curl through switchboard; prints bodies (several URLs reuse one connection). */
async function curl(args: string[]): Promise<string> {
  const { stdout } = await run('curl', ['--silent', '--show-error', '--http1.1', '--max-time', '10', ...args]);
  return stdout;
}

/** Node's http client with a keep-alive agent. */
function nodeRequest(agent: Agent, port: number, method: string, path: string, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: LOOPBACK, port, method, path, agent, headers: body ? { 'content-type': 'text/plain' } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The same small API on three upstreams: GET echoes the path, POST echoes the body, HEAD has headers only. */
interface Upstream {
  name: string;
  target: string;
  /** How a GET body reads for `path`. */
  expectGet(path: string): string;
  /** What a POST answer starts with, or undefined when the server takes no POST. */
  posted: string | undefined;
  stop(): Promise<void>;
}

async function nodeUpstream(): Promise<Upstream> {
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = req.method === 'POST' ? `node posted ${Buffer.concat(chunks).toString()}` : `node ${req.url}`;
      res.setHeader('content-type', 'text/plain');
      res.end(body);
    });
  });
  server.listen(0, LOOPBACK);
  await once(server, 'listening');
  return {
    name: 'a Node http server',
    target: `${LOOPBACK}:${(server.address() as { port: number }).port}`,
    expectGet: (path) => `node ${path}`,
    posted: 'node posted ',
    stop: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const PYTHON_HANDLER = `
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def log_message(self, *args): pass
    def answer(self, body, head=False):
        data = body.encode()
        self.send_response(200)
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        if not head: self.wfile.write(data)
    def do_GET(self): self.answer('python ' + self.path)
    def do_HEAD(self): self.answer('python ' + self.path, head=True)
    def do_POST(self):
        length = int(self.headers.get('Content-Length', '0'))
        self.answer('python posted ' + self.rfile.read(length).decode())
server = HTTPServer(('127.0.0.1', 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
`;

function killByPid(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.pid === undefined) return Promise.resolve();
  const exited = once(child, 'exit').then(() => undefined);
  process.kill(child.pid, 'SIGTERM');
  return exited;
}

async function pythonHandlerUpstream(): Promise<Upstream> {
  const child = spawn('python3', ['-c', PYTHON_HANDLER], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  await waitFor(() => /^\d+\n/.test(out) || child.exitCode !== null, 'python to print its port', 10_000);
  if (child.exitCode !== null) throw new Error('python handler exited');
  return {
    name: "Python's BaseHTTPRequestHandler (HTTP/1.1, keep-alive)",
    target: `${LOOPBACK}:${out.trim()}`,
    expectGet: (path) => `python ${path}`,
    posted: 'python posted ',
    stop: () => killByPid(child),
  };
}

async function pythonFileServer(): Promise<Upstream> {
  const dir = mkdtempSync(join(tmpdir(), 'swb-http-'));
  for (const name of ['a', 'b', 'c', 'd']) writeFileSync(join(dir, name), `file ${name}\n`);
  const port = await freePort();
  const child = spawn('python3', ['-m', 'http.server', '-b', LOOPBACK, '-d', dir, String(port)], { stdio: 'ignore' });
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const probe = createNetServer();
        probe.once('error', () => resolve(true)); // the port is taken: python listens
        probe.listen(port, LOOPBACK, () => probe.close(() => resolve(false)));
      }),
    'python -m http.server to listen',
    10_000,
  );
  return {
    name: 'python3 -m http.server (HTTP/1.0, closes after each response)',
    target: `${LOOPBACK}:${port}`,
    expectGet: (path) => `file ${path.slice(1)}\n`,
    posted: undefined,
    stop: async () => {
      await killByPid(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let curlMissing: string | undefined;
let pythonMissing: string | undefined;
before(async () => {
  if (!(await has('curl', ['--version']))) curlMissing = 'curl is not installed';
  if (!(await has('python3', ['--version']))) pythonMissing = 'python3 is not installed';
});

const upstreams: Array<{ make: () => Promise<Upstream>; python: boolean }> = [
  { make: nodeUpstream, python: false },
  { make: pythonHandlerUpstream, python: true },
  { make: pythonFileServer, python: true },
];

for (const { make, python } of upstreams) {
  describe(`PROTOCOL=http interop, ${make.name}`, () => {
    let upstream: Upstream | undefined;
    let app: App | undefined;
    let port = 0;
    const skipped = (t: TestContext): boolean => {
      if (python && pythonMissing) {
        skipOrFail(t, pythonMissing);
        return true;
      }
      return false;
    };
    before(async () => {
      if (python && pythonMissing) return;
      upstream = await make();
      app = await httpMux(upstream.target, {}, false);
      await waitFor(() => ['up', 'connecting'].includes((app!.engine.status() as { upstream: { state: string } }).upstream.state), 'the upstream dialled');
      port = app.port('tcp');
    });
    after(async () => {
      await app?.stop();
      await upstream?.stop();
    });

    it('curl: GETs on one connection, HEAD, POST', async (t) => {
      if (skipped(t)) return;
      if (curlMissing) return skipOrFail(t, curlMissing);
      const u = upstream!;
      const base = `http://${LOOPBACK}:${port}`;
      assert.equal(await curl([`${base}/a`, `${base}/b`]), u.expectGet('/a') + u.expectGet('/b'));
      const head = await curl(['--head', `${base}/c`]);
      assert.match(head, /^HTTP\/1\.[01] 200 /);
      if (u.posted) assert.equal(await curl(['--data-binary', 'hello from curl', `${base}/post`]), `${u.posted}hello from curl`);
      assert.ok((await metric(app!, 'switchboard_requests_total', { protocol: 'http', outcome: 'ok' })) >= 3);
    });

    it("Node's http client with a keep-alive agent: sequential and concurrent requests each get their own answer", async (t) => {
      if (skipped(t)) return;
      const u = upstream!;
      const agent = new Agent({ keepAlive: true, maxSockets: 3 });
      try {
        for (const path of ['/a', '/b']) assert.deepEqual(await nodeRequest(agent, port, 'GET', path), { status: 200, body: u.expectGet(path) });
        const paths = ['/a', '/b', '/c', '/d', '/a', '/b'];
        const answers = await Promise.all(paths.map((path) => nodeRequest(agent, port, 'GET', path)));
        assert.deepEqual(answers.map((a) => a.body), paths.map((path) => u.expectGet(path)));
        if (u.posted) {
          const posted = await nodeRequest(agent, port, 'POST', '/post', 'x'.repeat(100_000));
          assert.equal(posted.body, u.posted + 'x'.repeat(100_000));
        }
      } finally {
        agent.destroy();
      }
    });

    it('fetch (undici): concurrent requests each get their own answer', async (t) => {
      if (skipped(t)) return;
      const u = upstream!;
      const paths = ['/a', '/b', '/c', '/d', '/c', '/b', '/a', '/d'];
      const bodies = await Promise.all(paths.map(async (path) => (await fetch(`http://${LOOPBACK}:${port}${path}`)).text()));
      assert.deepEqual(bodies, paths.map((path) => u.expectGet(path)));
      if (u.posted) {
        const response = await fetch(`http://${LOOPBACK}:${port}/post`, { method: 'POST', body: 'from fetch' });
        assert.equal(await response.text(), `${u.posted}from fetch`);
      }
    });
  });
}
