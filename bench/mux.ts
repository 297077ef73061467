/**
 * `npm run bench:mux` (DESIGN §9, issue 5): switchboard in mux mode against a direct connection to the same Modbus device
 * (the simulator of src/sim/), N clients polling. The device and the pollers run in their own processes (this file, started again with the
 * role `device` or `poller`); switchboard runs from dist/ on its own core. Each point: warm-up, then BENCH_SECONDS
 * (default 5) of measurement, BENCH_REPEATS (default 3) times, median reported. Writes the `## mux` section of
 * bench/RESULTS.md.
 *
 * Points (issue 5's targets):
 *   1 client: p50(switchboard) − p50(direct) ≤ 0.15 ms
 *   10 clients, MAX_INFLIGHT=1: throughput ≥ 0.6 × one direct client's
 *   10 clients, MAX_INFLIGHT=8 (the device answers pipelined requests): ≥ 1.0 × one direct client's
 *   1,000 idle Modbus clients: RSS ≤ 100 MB
 * "Direct" is the generator alone against the device, so it also shows the generator is not the bottleneck.
 * References (no target): the same 10 clients through a minimal mux in Node and in C (bench/relays/mux-minimal.*), on
 * switchboard's core, in turn with switchboard in each repeat: the floor under the serialised point on this machine.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeModbusTcp, ModbusTcpDecoder } from '../src/protocols/modbus-tcp.js';
import { ModbusDevice, registerValue } from '../src/sim/modbus-device.js';
import {
  benchRole,
  type Child,
  connectClients,
  CORES,
  HOST,
  listeningPort,
  machine,
  median,
  REPEATS,
  reportRequestLoad,
  ROOT,
  type RequestLoad,
  rssMiB,
  run,
  runRequestLoad,
  SECONDS,
  sleep,
  startSwitchboard,
  stop,
  summariseRequestLoads,
  until,
  WARMUP_SECONDS,
  writeResultsSection,
} from './lib.js';

/** Registers read per request (a typical inverter poll block). */
const QUANTITY = 10;

// ---------------------------------------------------------------------------------------------------------------------
// Roles in their own processes.

/**
 * The project's simulator (src/sim/modbus-device.ts) with zero latency, answering pipelined requests as they come (one
 * write per chunk), one connection at a time: the points below connect to it one after another.
 */
async function deviceRole(): Promise<void> {
  const device = await ModbusDevice.start({ pipelined: true, recordRequests: false }, 0, HOST);
  console.log(JSON.stringify({ port: device.port }));
}

interface PollerOptions {
  port: number;
  clients: number;
  warmupSeconds: number;
  seconds: number;
  /** Idle clients only connect and wait (RSS point). */
  idle?: boolean;
}

/** N connections, each polling with one request outstanding; prints counts and latency percentiles after the warm-up. */
async function pollerRole(options: PollerOptions): Promise<void> {
  const sockets = await connectClients(options.port, options.clients);
  if (options.idle) {
    console.log(JSON.stringify({ connected: sockets.length }));
    await new Promise(() => {}); // killed by the parent
  }
  const start = performance.now();
  const measureFrom = start + options.warmupSeconds * 1000;
  const end = measureFrom + options.seconds * 1000;
  const latencies: number[] = [];
  let mismatches = 0;
  await Promise.all(
    sockets.map(
      (socket, k) =>
        new Promise<void>((resolve) => {
          const decoder = new ModbusTcpDecoder();
          const address = (k * 100) % 60000;
          const expectedFirst = registerValue(1, address);
          let transactionId = 1;
          let sentAt = 0;
          const send = () => {
            sentAt = performance.now();
            if (sentAt >= end) return resolve();
            transactionId = (transactionId + 1) & 0xffff;
            const pdu = Buffer.from([3, address >> 8, address & 0xff, 0, QUANTITY]);
            socket.write(encodeModbusTcp(transactionId, 1, pdu));
          };
          socket.on('data', (chunk: Buffer) => {
            for (const frame of decoder.push(chunk).frames) {
              const now = performance.now();
              if (frame.transactionId !== transactionId || frame.pdu.readUInt16BE(2) !== expectedFirst) mismatches++;
              if (sentAt >= measureFrom) {
                latencies.push(now - sentAt);
              }
              send();
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

function role(name: 'device' | 'poller', options: object = {}, cpu?: string): Child {
  return benchRole('mux.ts', name, options, cpu);
}

async function poll(port: number, clients: number): Promise<RequestLoad> {
  const poller = role('poller', { port, clients, warmupSeconds: WARMUP_SECONDS, seconds: SECONDS });
  return runRequestLoad(poller, 'poller');
}

/** `cpu`: the core the device runs on (the load core unless given). */
async function startDevice(cpu?: string): Promise<{ device: Child; port: number }> {
  const device = role('device', {}, cpu);
  return { device, port: await listeningPort(device, 'the device simulator') };
}

/** Builds the C reference; undefined (and the reason printed) when there is no C compiler. */
function buildCReference(directory: string): string | undefined {
  const binary = join(directory, 'mux-minimal');
  try {
    execFileSync('cc', ['-O2', '-o', binary, 'bench/relays/mux-minimal.c'], { cwd: ROOT, stdio: 'pipe' });
    return binary;
  } catch (error) {
    console.error(`the C reference mux is skipped: cc failed (${(error as Error).message.split('\n')[0]})`);
    return undefined;
  }
}

/**
 * 10 clients through a reference mux (bench/relays/mux-minimal.*) on switchboard's core: the least a mux must do, in Node
 * or in C, with the same device, pollers and cores. It shows how much of the gap to the direct client is the machine's.
 */
async function pollReference(command: string, args: string[]): Promise<RequestLoad> {
  const reference = run(command, args, { cpu: CORES?.subject });
  try {
    return await poll(await listeningPort(reference, command), 10);
  } finally {
    await stop(reference);
  }
}

async function muxSwitchboard(devicePort: number, env: Record<string, string> = {}) {
  const sb = await startSwitchboard({
    TARGET: `${HOST}:${devicePort}`,
    PROTOCOL: 'modbus',
    LISTEN_PORT: '0',
    ...env,
  });
  return sb;
}

async function main(): Promise<void> {
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' });
  const { device, port: devicePort } = await startDevice();
  // The same serialised point with the device on switchboard's core instead of beside the pollers (see RESULTS).
  const { device: deviceB, port: devicePortB } = CORES ? await startDevice(CORES.subject) : { device, port: devicePort };
  const raw: string[] = [];
  const buildDirectory = mkdtempSync(join(tmpdir(), 'bench-mux-'));
  const cReference = buildCReference(buildDirectory);
  const points: Record<string, RequestLoad[]> = {
    direct1: [],
    sb1: [],
    sb10: [],
    minimalNode10: [],
    minimalC10: [],
    sb10x8: [],
    direct1_deviceOnSubjectCore: [],
    sb10_deviceOnSubjectCore: [],
  };
  try {
    for (let repeat = 0; repeat < REPEATS; repeat++) {
      // The serialised points of one repeat back to back (direct, switchboard, the references): this VM's pace drifts.
      points.direct1!.push(await poll(devicePort, 1));

      const sb = await muxSwitchboard(devicePort);
      // Startup log lines come before "ready"; wait for "upstream up" too.
      await until(() => sb.stderr().includes('"msg":"upstream up"'), 'switchboard upstream up');
      points.sb10!.push(await poll(sb.ports.tcp!, 10));
      points.sb1!.push(await poll(sb.ports.tcp!, 1));
      await stop(sb);

      points.minimalNode10!.push(await pollReference(process.execPath, ['bench/relays/mux-minimal.cjs', String(devicePort)]));
      if (cReference) points.minimalC10!.push(await pollReference(cReference, [String(devicePort)]));

      const sb8 = await muxSwitchboard(devicePort, { MAX_INFLIGHT: '8' });
      await until(() => sb8.stderr().includes('"msg":"upstream up"'), 'switchboard upstream up');
      points.sb10x8!.push(await poll(sb8.ports.tcp!, 10));
      await stop(sb8);

      if (CORES) {
        points.direct1_deviceOnSubjectCore!.push(await poll(devicePortB, 1));
        const sbB = await muxSwitchboard(devicePortB);
        await until(() => sbB.stderr().includes('"msg":"upstream up"'), 'switchboard upstream up');
        points.sb10_deviceOnSubjectCore!.push(await poll(sbB.ports.tcp!, 10));
        await stop(sbB);
      }
    }

    // 1,000 idle clients: RSS of the switchboard process (two poller processes of 500).
    const idleSb = await muxSwitchboard(devicePort, { MAX_CLIENTS: '2000' });
    const idleRssBefore = rssMiB(idleSb.child.pid!);
    const idlers = [role('poller', { port: idleSb.ports.tcp, clients: 500, idle: true, warmupSeconds: 0, seconds: 0 }), role('poller', { port: idleSb.ports.tcp, clients: 500, idle: true, warmupSeconds: 0, seconds: 0 })];
    await until(() => idlers.every((p) => p.lines.some((l) => 'connected' in l)), '1,000 idle clients', 60_000);
    await sleep(500);
    const idleRss = rssMiB(idleSb.child.pid!);
    for (const p of idlers) await stop(p);
    await stop(idleSb);

    const direct1 = summariseRequestLoads(points.direct1!);
    const sb1 = summariseRequestLoads(points.sb1!);
    const sb10 = summariseRequestLoads(points.sb10!);
    const sb10x8 = summariseRequestLoads(points.sb10x8!);
    for (const [name, runs] of Object.entries(points)) {
      if (runs.length === 0) continue; // the device-on-subject-core points need taskset and two cores
      raw.push(`- ${name}: ${runs.map((r) => `${Math.round(r.rate)} req/s (p50 ${r.p50.toFixed(3)} ms, p99 ${r.p99.toFixed(3)} ms)`).join('; ')}`);
    }
    const direct1B = CORES ? summariseRequestLoads(points.direct1_deviceOnSubjectCore!) : undefined;
    const sb10B = CORES ? summariseRequestLoads(points.sb10_deviceOnSubjectCore!) : undefined;
    // Ratios within one repeat (the direct run minutes apart from its switchboard run): this VM changes speed between
    // repeats, so a median of paired ratios says more than a ratio of medians taken from different repeats.
    const paired = (sb: RequestLoad[], direct: RequestLoad[]) => sb.map((run, i) => run.rate / direct[i]!.rate);
    const pairedText = (ratios: number[]) => `${ratios.map((r) => r.toFixed(2)).join(', ')} (median ${median(ratios).toFixed(2)})`;
    raw.push(`- paired ratios per repeat, sb10 / direct1: ${pairedText(paired(points.sb10!, points.direct1!))}; sb10x8 / direct1: ${pairedText(paired(points.sb10x8!, points.direct1!))}`);
    const minimalNode10 = summariseRequestLoads(points.minimalNode10!);
    const minimalC10 = cReference ? summariseRequestLoads(points.minimalC10!) : undefined;
    raw.push(`- paired ratios per repeat, minimalNode10 / direct1: ${pairedText(paired(points.minimalNode10!, points.direct1!))}; sb10 / minimalNode10: ${pairedText(paired(points.sb10!, points.minimalNode10!))}`);
    if (minimalC10) raw.push(`- paired ratios per repeat, minimalC10 / direct1: ${pairedText(paired(points.minimalC10!, points.direct1!))}`);
    if (CORES) {
      raw.push(`- paired ratios per repeat, device on switchboard's core, sb10 / direct1: ${pairedText(paired(points.sb10_deviceOnSubjectCore!, points.direct1_deviceOnSubjectCore!))}`);
    }
    const mismatches = [direct1, sb1, sb10, sb10x8, minimalNode10, minimalC10, direct1B, sb10B].reduce((sum, load) => sum + (load?.mismatches ?? 0), 0);
    const ratioOfMedians = (a: RequestLoad, b: RequestLoad) => (a.rate / b.rate).toFixed(2);
    const ms = (x: number) => `${x.toFixed(3)} ms`;
    const body = [
      `Run on ${new Date().toISOString().slice(0, 10)} with \`npm run bench:mux\` (BENCH_SECONDS=${SECONDS}, BENCH_WARMUP_SECONDS=${WARMUP_SECONDS}, BENCH_REPEATS=${REPEATS}) on ${machine()}.`,
      '',
      `Device: the Modbus device simulator (\`src/sim/modbus-device.ts\`, zero latency, answers pipelined requests, one connection at a time) in its own process (role \`device\` of \`bench/mux.ts\`); load: role \`poller\` (its own process), each client one request outstanding, FC 3 × ${QUANTITY} registers at its own address. "direct" is the generator alone against the device.`,
      '',
      '| measure | figures (median) | result | target |',
      '|---|---|---|---|',
      `| 1 client: p50 switchboard − direct | ${ms(sb1.p50)} − ${ms(direct1.p50)} | ${ms(sb1.p50 - direct1.p50)} | ≤ 0.15 ms |`,
      `| 10 clients, MAX_INFLIGHT=1 vs 1 direct client | ${Math.round(sb10.rate)} vs ${Math.round(direct1.rate)} req/s | ${(sb10.rate / direct1.rate).toFixed(2)} | ≥ 0.6 (stretch 0.8) |`,
      ...(direct1B && sb10B
        ? [`| same, the device on switchboard's core (direct: device on core 0, client on core 1) | ${Math.round(sb10B.rate)} vs ${Math.round(direct1B.rate)} req/s | ${(sb10B.rate / direct1B.rate).toFixed(2)} | ≥ 0.6 (stretch 0.8) |`]
        : []),
      `| reference: a minimal Node mux (\`bench/relays/mux-minimal.cjs\`), 10 clients, vs 1 direct client | ${Math.round(minimalNode10.rate)} vs ${Math.round(direct1.rate)} req/s | ${ratioOfMedians(minimalNode10, direct1)} (switchboard / it: ${ratioOfMedians(sb10, minimalNode10)}) | (none: what Node reaches here) |`,
      ...(minimalC10
        ? [`| reference: a minimal C mux (\`bench/relays/mux-minimal.c\`), 10 clients, vs 1 direct client | ${Math.round(minimalC10.rate)} vs ${Math.round(direct1.rate)} req/s | ${ratioOfMedians(minimalC10, direct1)} | (none: what native code reaches here) |`]
        : ['| reference: a minimal C mux | skipped: no C compiler (`cc`) |  |  |']),
      `| 10 clients, MAX_INFLIGHT=8 vs 1 direct client | ${Math.round(sb10x8.rate)} vs ${Math.round(direct1.rate)} req/s | ${(sb10x8.rate / direct1.rate).toFixed(2)} | ≥ 1.0 |`,
      `| 1,000 idle Modbus clients: RSS | ${Math.round(idleRss)} MiB (${Math.round(idleRssBefore)} MiB before) |  | ≤ 100 MB |`,
      `| answers with a wrong transaction id or address | ${mismatches} |  | 0 |`,
      '',
      'Raw runs (requests answered after the warm-up, divided by the measured seconds):',
      ...raw,
      '',
      'Commands: switchboard `node dist/main.js` with `TARGET=127.0.0.1:<device> PROTOCOL=modbus LISTEN_PORT=0` (and `MAX_INFLIGHT=8`); device and pollers `node --import tsx bench/mux.ts device|poller <json>`; references `node bench/relays/mux-minimal.cjs <device port>` and `cc -O2 bench/relays/mux-minimal.c` run with the device port, on switchboard\'s core, in turn with it in each repeat.',
    ].join('\n');
    writeResultsSection('mux', body);
    console.log(body);
  } finally {
    await stop(device);
    if (deviceB !== device) await stop(deviceB);
    rmSync(buildDirectory, { recursive: true, force: true });
  }
}

const [, , roleName, json] = process.argv;
if (roleName === 'device') await deviceRole();
else if (roleName === 'poller') await pollerRole(JSON.parse(json ?? '{}') as PollerOptions);
else await main();
