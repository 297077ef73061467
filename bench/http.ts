/**
 * `npm run bench:http` (DESIGN §9, issue 7): switchboard in mux mode with PROTOCOL=http against a direct keep-alive
 * connection to the same fast Node `http` server, small GET requests. The server and the load run in their own processes
 * (this file, started again with the role `server` or `client`); switchboard runs from dist/ on its own core. Each point:
 * warm-up, then BENCH_SECONDS (default 5) of measurement, BENCH_REPEATS (default 3) times, median reported. Writes the
 * `## http` section of bench/RESULTS.md. For a quick try: `BENCH_SECONDS=1 BENCH_WARMUP_SECONDS=0.5 BENCH_REPEATS=1`.
 *
 * Points (issue 7's targets):
 *   10 clients through switchboard vs 1 direct keep-alive client: request rate ≥ 0.6 ×
 *   1 client: p50(switchboard) − p50(direct) ≤ 0.2 ms
 * "Direct" is the generator alone against the server, so it also shows the generator is not the bottleneck.
 */
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { Http1Decoder } from '../src/protocols/http1.js';
import {
  benchRole,
  type Child,
  connectClients,
  HOST,
  listeningPort,
  machine,
  median,
  REPEATS,
  reportRequestLoad,
  type RequestLoad,
  runRequestLoad,
  SECONDS,
  startSwitchboard,
  stop,
  summariseRequestLoads,
  until,
  WARMUP_SECONDS,
  writeResultsSection,
} from './lib.js';

// ---------------------------------------------------------------------------------------------------------------------
// Roles in their own processes.

/** A fast keep-alive server: every GET is answered with its own path as a small text body. */
async function serverRole(): Promise<void> {
  const server = createServer({ keepAliveTimeout: 600_000, requestTimeout: 0 }, (req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end(req.url);
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  console.log(JSON.stringify({ port: (server.address() as { port: number }).port }));
}

interface ClientOptions {
  port: number;
  clients: number;
  warmupSeconds: number;
  seconds: number;
}

/**
 * N keep-alive connections, each with one request outstanding; prints the rate and latency percentiles measured after the
 * warm-up, and how many answers carried another request's path (must be 0).
 */
async function clientRole(options: ClientOptions): Promise<void> {
  const sockets = await connectClients(options.port, options.clients, 'client');
  const start = performance.now();
  const measureFrom = start + options.warmupSeconds * 1000;
  const end = measureFrom + options.seconds * 1000;
  const latencies: number[] = [];
  let mismatches = 0;
  await Promise.all(
    sockets.map(
      (socket, k) =>
        new Promise<void>((resolve) => {
          const decoder = new Http1Decoder('response');
          let n = 0;
          let path = '';
          let body = '';
          let sentAt = 0;
          const send = () => {
            sentAt = performance.now();
            if (sentAt >= end) return resolve();
            path = `/c${k}/${n++}`;
            decoder.expectResponseTo('GET');
            socket.write(`GET ${path} HTTP/1.1\r\nHost: bench\r\n\r\n`);
          };
          socket.on('data', (chunk: Buffer) => {
            for (const event of decoder.push(chunk)) {
              if (event.type === 'body') body += event.data.toString('latin1');
              else if (event.type === 'error') {
                console.error(`client: ${event.error.message}`);
                process.exit(1);
              } else if (event.type === 'end') {
                const now = performance.now();
                if (body !== path) mismatches++;
                body = '';
                if (sentAt >= measureFrom) {
                  latencies.push(now - sentAt);
                }
                send();
              }
            }
          });
          send();
        }),
    ),
  );
  reportRequestLoad(latencies, options.seconds, mismatches);
  for (const socket of sockets) socket.destroy();
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------------------------------
// The orchestrator.

function role(name: 'server' | 'client', options: object = {}): Child {
  return benchRole('http.ts', name, options);
}

async function load(port: number, clients: number): Promise<RequestLoad> {
  const client = role('client', { port, clients, warmupSeconds: WARMUP_SECONDS, seconds: SECONDS });
  return runRequestLoad(client, 'load client');
}

async function main(): Promise<void> {
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: new URL('..', import.meta.url).pathname, stdio: 'inherit' });
  const server = role('server');
  const serverPort = await listeningPort(server, 'the http server');
  const points: Record<'direct1' | 'sb1' | 'sb10', RequestLoad[]> = { direct1: [], sb1: [], sb10: [] };
  try {
    for (let repeat = 0; repeat < REPEATS; repeat++) {
      points.direct1.push(await load(serverPort, 1));
      const sb = await startSwitchboard({ TARGET: `${HOST}:${serverPort}`, PROTOCOL: 'http', LISTEN_PORT: '0' });
      await until(() => sb.stderr().includes('"msg":"upstream up"'), 'switchboard upstream up');
      points.sb1.push(await load(sb.ports.tcp!, 1));
      points.sb10.push(await load(sb.ports.tcp!, 10));
      await stop(sb);
    }
    const direct1 = summariseRequestLoads(points.direct1);
    const sb1 = summariseRequestLoads(points.sb1);
    const sb10 = summariseRequestLoads(points.sb10);
    const raw = Object.entries(points).map(
      ([name, runs]) => `- ${name}: ${runs.map((r) => `${Math.round(r.rate)} req/s (p50 ${r.p50.toFixed(3)} ms, p99 ${r.p99.toFixed(3)} ms)`).join('; ')}`,
    );
    const ms = (x: number) => `${x.toFixed(3)} ms`;
    const ratio = sb10.rate / direct1.rate;
    const overhead = sb1.p50 - direct1.p50;
    const body = [
      `Run on ${new Date().toISOString().slice(0, 10)} with \`npm run bench:http\` (BENCH_SECONDS=${SECONDS}, BENCH_WARMUP_SECONDS=${WARMUP_SECONDS}, BENCH_REPEATS=${REPEATS}) on ${machine()}.`,
      '',
      'Upstream: a Node `http` server (keep-alive, answers every GET with its path as a text body) in its own process (role `server` of `bench/http.ts`); load: role `client` (its own process), keep-alive connections, each with one small GET outstanding. "direct" is the generator alone against the server.',
      '',
      '| measure | figures (median) | result | target |',
      '|---|---|---|---|',
      `| 10 clients through switchboard vs 1 direct keep-alive client | ${Math.round(sb10.rate)} vs ${Math.round(direct1.rate)} req/s | ${ratio.toFixed(2)} ${ratio >= 0.6 ? '(met)' : '(NOT met)'} | ≥ 0.6 |`,
      `| 1 client: p50 switchboard − direct | ${ms(sb1.p50)} − ${ms(direct1.p50)} | ${ms(overhead)} ${overhead <= 0.2 ? '(met)' : '(NOT met)'} | ≤ 0.2 ms |`,
      `| 1 client through switchboard | ${Math.round(sb1.rate)} req/s, p99 ${ms(sb1.p99)} |  |  |`,
      `| answers carrying another request's path | ${direct1.mismatches + sb1.mismatches + sb10.mismatches} |  | 0 |`,
      '',
      'Raw runs (requests answered after the warm-up, divided by the measured seconds):',
      ...raw,
      '',
      'Commands: switchboard `node dist/main.js` with `TARGET=127.0.0.1:<server> PROTOCOL=http LISTEN_PORT=0`; server and load `node --import tsx bench/http.ts server|client <json>`.',
    ].join('\n');
    writeResultsSection('http', body);
    console.log(body);
  } finally {
    await stop(server);
  }
}

const [, , roleName, json] = process.argv;
if (roleName === 'server') await serverRole();
else if (roleName === 'client') await clientRole(JSON.parse(json ?? '{}') as ClientOptions);
else await main();
