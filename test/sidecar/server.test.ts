import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { App } from '../../src/app.js';
import { loadConfig } from '../../src/config/load.js';
import { joinGroup, LOOPBACK, startApp, waitForMembers, waitFor } from '../helpers.js';

const REQUIRED_SERIES = [
  'connections_active',
  'connections_total',
  'connections_rejected_total',
  'bytes_total',
  'groups',
  'group_members',
  'datagrams_total',
  'udp_peers',
  'upstream_up',
  'upstream_reconnects_total',
  'requests_total',
  'request_duration_seconds',
  'queue_depth',
  'slow_clients_total',
  'dropped_bytes_total',
  'stray_replies_total',
  'tunnels_active',
  'streams_active',
];

async function get(port: number, path: string): Promise<{ status: number; body: string; type: string }> {
  const response = await fetch(`http://${LOOPBACK}:${port}${path}`);
  return { status: response.status, body: await response.text(), type: response.headers.get('content-type') ?? '' };
}

/** Value of one Prometheus text-format series line, e.g. `switchboard_bytes_total{mode="groups",direction="in"}`. */
function seriesValue(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : NaN;
}

describe('sidecar', () => {
  const stops: Array<() => Promise<void>> = [];
  after(async () => {
    for (const stop of stops) await stop();
  });

  it('is 503 on /readyz while starting, 200 once listening, and 503 at once when draining while /livez stays 200', async () => {
    const loaded = loadConfig({ HOST: LOOPBACK, HTTP_HOST: LOOPBACK, HTTP_PORT: '0', TCP_PORT: '0', UDP_PORT: '0', SHUTDOWN_GRACE_MS: '2000' });
    const app = new App(loaded, pino({ level: 'silent' }));
    await app.sidecar!.start();
    const http = app.sidecar!.port;
    assert.equal((await get(http, '/readyz')).status, 503);
    assert.equal((await get(http, '/livez')).status, 200);
    await app.engine.start();
    (app as unknown as { currentPhase: string }).currentPhase = 'ready';
    assert.equal((await get(http, '/readyz')).status, 200);

    // A member that does not read keeps the drain busy, so the sidecar can be asked in the middle of it.
    const [a, b] = [await joinGroup(app.port('tcp'), 'd'), await joinGroup(app.port('tcp'), 'd')];
    await waitForMembers(app, 'd', 2);
    b.socket.pause();
    const big = Buffer.alloc(8 * 1024 * 1024);
    a.socket.write(big);
    await waitFor(() => app.budget.total > 0, 'bytes to queue for the paused member');
    const draining = app.engine.drain(1500);
    (app as unknown as { currentPhase: string }).currentPhase = 'draining';
    assert.equal((await get(http, '/readyz')).status, 503);
    assert.equal((await get(http, '/livez')).status, 200);
    assert.equal(JSON.parse((await get(http, '/status')).body).ready, false);
    await draining;
    await app.sidecar!.close();
    a.socket.destroy();
    b.socket.destroy();
  });

  it('publishes every required series with the switchboard_ prefix, plus process metrics', async () => {
    const app = await startApp();
    stops.push(() => app.stop());
    const { body, type, status } = await get(app.port('http'), '/metrics');
    assert.equal(status, 200);
    assert.match(type, /^text\/plain/);
    for (const name of REQUIRED_SERIES) assert.match(body, new RegExp(`^# TYPE switchboard_${name} `, 'm'), name);
    assert.match(body, /^switchboard_process_cpu_user_seconds_total /m);
  });

  it('moves bytes_total, connections and group gauges when members talk', async () => {
    const app = await startApp();
    stops.push(() => app.stop());
    const http = app.port('http');
    const [a, b] = [await joinGroup(app.port('tcp'), 'm'), await joinGroup(app.port('tcp'), 'm')];
    await waitForMembers(app, 'm', 2);
    const before = (await get(http, '/metrics')).body;
    a.socket.write('12345');
    await waitFor(() => b.text === '12345', 'delivery');
    const afterText = (await get(http, '/metrics')).body;
    const inSeries = 'switchboard_bytes_total{mode="groups",direction="in"}';
    const outSeries = 'switchboard_bytes_total{mode="groups",direction="out"}';
    assert.equal(seriesValue(afterText, inSeries) - seriesValue(before, inSeries), 5);
    assert.equal(seriesValue(afterText, outSeries) - seriesValue(before, outSeries), 5);
    assert.equal(seriesValue(afterText, 'switchboard_groups'), 1);
    assert.equal(seriesValue(afterText, 'switchboard_group_members{group="m"}'), 2);
    assert.equal(seriesValue(afterText, 'switchboard_connections_active{mode="groups",listener="tcp"}'), 2);
    a.socket.destroy();
    b.socket.destroy();
  });

  it('answers /status with the stable field names', async () => {
    const app = await startApp({ UDP_PRECONFIG_ADDRESSES: '127.0.0.1:9' });
    stops.push(() => app.stop());
    const a = await joinGroup(app.port('tcp'), 'status-group');
    await waitForMembers(app, 'status-group', 1);
    a.socket.write('abc');
    await waitFor(async () => JSON.parse((await get(app.port('http'), '/status')).body).groups[0]?.bytes === 3, 'group bytes');
    const status = JSON.parse((await get(app.port('http'), '/status')).body);
    assert.equal(status.mode, 'groups');
    assert.equal(typeof status.version, 'string');
    assert.equal(typeof status.uptimeSeconds, 'number');
    assert.equal(status.ready, true);
    assert.deepEqual(
      status.listeners.map((l: { name: string; protocol: string }) => `${l.name}/${l.protocol}`),
      ['tcp/tcp', 'udp/udp', 'http/tcp'],
    );
    for (const l of status.listeners) assert.ok(l.port > 0, 'the bound port, not 0, is shown');
    assert.deepEqual(status.groups, [{ id: 'status-group', members: 1, bytes: 3 }]);
    assert.deepEqual(Object.keys(status.clients[0]).sort(), ['address', 'bytesIn', 'bytesOut', 'connectedAt', 'group', 'joinedBy']);
    assert.equal(status.clients[0].address.startsWith('127.0.0.1:'), true);
    assert.equal(status.udpPeers[0].address, '127.0.0.1:9');
    a.socket.destroy();
  });
});
