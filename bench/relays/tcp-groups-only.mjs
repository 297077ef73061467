// A relay for `npm run bench:groups-ab -- script:bench/relays/tcp-groups-only.mjs`: the groups engine's TcpGroups from
// dist/ (npm run build first) with its metrics, buffer budget and logger, but without the App, the sidecar or any other
// engine's modules. AB_BALLAST=n keeps n small objects alive first, to grow the heap as the full module graph does.
import { loadConfig } from '../../dist/config/load.js';
import { createLogger } from '../../dist/log.js';
import { Metrics } from '../../dist/metrics.js';
import { BufferBudget } from '../../dist/net/flow.js';
import { TcpGroups } from '../../dist/engines/groups/tcp-groups.js';

globalThis.ballast = Array.from({ length: Number(process.env.AB_BALLAST ?? 0) }, (_, i) => ({ i, s: `x${i}` }));
const { config } = loadConfig({ HOST: '127.0.0.1', TCP_PORT: '0', UDP_PORT: 'off', HTTP_PORT: 'off' });
const log = createLogger({ level: 'info', format: 'json' });
const tcp = new TcpGroups({ common: config, groups: config.groups, log, metrics: new Metrics('groups'), budget: new BufferBudget(config.maxBufferedBytes) });
await tcp.start();
console.log(JSON.stringify({ port: tcp.listenerInfo()[0].port }));
