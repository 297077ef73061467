import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { connectTcp, joinGroup, metric, Recorder, sleep, startApp, waitFor, waitForMembers } from '../../helpers.js';

const PREFIX = 'SOCKETFORWARDER-NEW:';

describe('groups mode over TCP', () => {
  const apps: Array<{ stop(): Promise<void> }> = [];
  const sockets: Socket[] = [];
  after(async () => {
    for (const s of sockets) s.destroy();
    await Promise.all(apps.map((a) => a.stop()));
  });
  async function app(env: Record<string, string> = {}) {
    const started = await startApp({ UDP_PORT: 'off', ...env });
    apps.push(started);
    return started;
  }
  async function member(port: number, group: string) {
    const recorder = await joinGroup(port, group);
    sockets.push(recorder.socket);
    return recorder;
  }

  it('fans bytes out to the other members only, never back to the sender', async () => {
    const sw = await app();
    const port = sw.port('tcp');
    const [a, b, c] = [await member(port, 'g'), await member(port, 'g'), await member(port, 'g')];
    await waitForMembers(sw, 'g', 3);
    a.socket.write('from-a');
    await waitFor(() => b.text === 'from-a' && c.text === 'from-a', 'b and c to hear a');
    await sleep(50);
    assert.equal(a.length, 0, 'the sender hears nothing of its own');
  });

  it('keeps groups apart', async () => {
    const sw = await app();
    const port = sw.port('tcp');
    const [a, b, other] = [await member(port, 'one'), await member(port, 'one'), await member(port, 'two')];
    await waitForMembers(sw, 'one', 2);
    await waitForMembers(sw, 'two', 1);
    a.socket.write('secret');
    await waitFor(() => b.text === 'secret', 'b to hear a');
    await sleep(50);
    assert.equal(other.length, 0);
  });

  it('closes a client whose first bytes are not the prefix, and counts it', async () => {
    const sw = await app();
    const socket = await connectTcp(sw.port('tcp'));
    sockets.push(socket);
    const recorder = new Recorder(socket);
    socket.write('HELLO-NOT-A-JOIN\n');
    await waitFor(() => recorder.closed, 'the socket to be closed');
    assert.equal(await metric(sw, 'switchboard_connections_rejected_total', { reason: 'join_no_prefix' }), 1);
  });

  it('ends a join line without newline after JOIN_QUIET_MS of silence (SocketForwarder clients)', async () => {
    const sw = await app({ JOIN_QUIET_MS: '30' });
    const port = sw.port('tcp');
    const listener = await member(port, 'q');
    const socket = await connectTcp(port);
    sockets.push(socket);
    socket.write(`${PREFIX}q`);
    await waitForMembers(sw, 'q', 2);
    socket.write('payload');
    await waitFor(() => listener.text === 'payload', 'the payload after the quiet gap');
  });

  it('takes bytes after the newline in the same write as the first data, and strips \\r', async () => {
    const sw = await app();
    const port = sw.port('tcp');
    const listener = await member(port, 'crlf');
    const socket = await connectTcp(port);
    sockets.push(socket);
    socket.write(`${PREFIX}crlf\r\nfirst-data`);
    await waitFor(() => listener.text === 'first-data', 'the data that followed the join line');
    await waitForMembers(sw, 'crlf', 2);
  });

  it('assembles a join line split across several writes', async () => {
    const sw = await app({ JOIN_QUIET_MS: '200' });
    const port = sw.port('tcp');
    const listener = await member(port, 'split-group');
    const socket = await connectTcp(port);
    sockets.push(socket);
    for (const piece of ['SOCKET', 'FORWARDER-N', 'EW:split', '-gro', 'up\nx']) {
      socket.write(piece);
      await sleep(10);
    }
    await waitFor(() => listener.text === 'x', 'data after a split join line');
  });

  it('accepts an empty group id as a group of its own', async () => {
    const sw = await app();
    const port = sw.port('tcp');
    const [a, b] = [await member(port, ''), await member(port, '')];
    await waitForMembers(sw, '', 2);
    a.socket.write('empty');
    await waitFor(() => b.text === 'empty', 'the empty group to work');
  });

  it('delivers 1,000 messages from one sender to 199 members, every byte in order', async () => {
    const sw = await app();
    const port = sw.port('tcp');
    const members: Recorder[] = [];
    for (let i = 0; i < 200; i++) members.push(await member(port, 'big'));
    await waitForMembers(sw, 'big', 200);
    const [sender, ...receivers] = members;
    const messages = Array.from({ length: 1000 }, (_, i) => `message ${i.toString().padStart(4, '0')};`);
    const expected = messages.join('');
    for (const m of messages) sender!.socket.write(m);
    await waitFor(() => receivers.every((r) => r.length >= expected.length), 'every receiver to get every byte', 20_000);
    for (const r of receivers) assert.equal(r.text, expected);
    assert.equal(sender!.length, 0);
  });

  it('removes a member that disconnects at once, and counts it', async () => {
    const sw = await app();
    const port = sw.port('tcp');
    const [a, b] = [await member(port, 'leave'), await member(port, 'leave')];
    await waitForMembers(sw, 'leave', 2);
    assert.equal(await metric(sw, 'switchboard_connections_active', { listener: 'tcp' }), 2);
    b.socket.destroy();
    await waitForMembers(sw, 'leave', 1);
    assert.equal(await metric(sw, 'switchboard_connections_active', { listener: 'tcp' }), 1);
    assert.equal(await metric(sw, 'switchboard_connections_total', { listener: 'tcp' }), 2);
    a.socket.destroy();
    await waitFor(async () => (await metric(sw, 'switchboard_groups')) === 0, 'the empty group to disappear');
  });

  it('matches TCP_PRECONFIG_ADDRESSES for IPv4 clients of a :: listener (no join line needed)', async () => {
    const sw = await app({ HOST: '::', TCP_PRECONFIG_ADDRESSES: 'pre:127.0.0.1:0' });
    const port = sw.port('tcp');
    const a = new Recorder(await connectTcp(port));
    const b = new Recorder(await connectTcp(port));
    sockets.push(a.socket, b.socket);
    await waitForMembers(sw, 'pre', 2);
    a.socket.write('no join line');
    await waitFor(() => b.text === 'no join line', 'a pre-configured member to hear another');
  });

  it('matches a pre-configured port only for that port', async () => {
    const sw = await app({ TCP_PRECONFIG_ADDRESSES: 'pre:127.0.0.1:1' });
    const socket = await connectTcp(sw.port('tcp'));
    sockets.push(socket);
    const recorder = new Recorder(socket);
    socket.write('not a join line\n');
    await waitFor(() => recorder.closed, 'a client from another port to need a join line');
  });

  it('closes a client that never sends after JOIN_TIMEOUT_MS while others join meanwhile', async () => {
    const sw = await app({ JOIN_TIMEOUT_MS: '300' });
    const port = sw.port('tcp');
    const silent = new Recorder(await connectTcp(port));
    sockets.push(silent.socket);
    const [a, b] = [await member(port, 'busy'), await member(port, 'busy')];
    await waitForMembers(sw, 'busy', 2);
    assert.equal(silent.closed, false, 'joining did not wait for the silent client');
    a.socket.write('meanwhile');
    await waitFor(() => b.text === 'meanwhile', 'others to talk while one is silent');
    await waitFor(() => silent.closed, 'the silent client to be closed', 3000);
    assert.equal(await metric(sw, 'switchboard_connections_rejected_total', { reason: 'join_timeout' }), 1);
  });

  it('closes a client whose join line is longer than MAX_MESSAGE_BYTES', async () => {
    const sw = await app({ MAX_MESSAGE_BYTES: '64' });
    const socket = await connectTcp(sw.port('tcp'));
    sockets.push(socket);
    const recorder = new Recorder(socket);
    socket.write(`${PREFIX}${'x'.repeat(100)}`);
    await waitFor(() => recorder.closed, 'the long join line to be refused');
    assert.equal(await metric(sw, 'switchboard_connections_rejected_total', { reason: 'join_too_long' }), 1);
  });

  it('closes connections beyond MAX_CLIENTS at once and counts them', async () => {
    const sw = await app({ MAX_CLIENTS: '2' });
    const port = sw.port('tcp');
    await member(port, 'm');
    await member(port, 'm');
    await waitForMembers(sw, 'm', 2);
    const third = new Recorder(await connectTcp(port));
    sockets.push(third.socket);
    await waitFor(() => third.closed, 'the third connection to be closed');
    assert.equal(await metric(sw, 'switchboard_connections_rejected_total', { reason: 'max_clients' }), 1);
  });

  it('dials TCP_DIAL_ADDRESSES, keeps them in their group and redials after a loss', async () => {
    const accepted: Socket[] = [];
    const server = createServer((s) => accepted.push(s));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const dialPort = (server.address() as { port: number }).port;
    after(() => {
      for (const s of accepted) s.destroy();
      server.close();
    });
    const sw = await app({ TCP_DIAL_ADDRESSES: `plant:127.0.0.1:${dialPort}`, RECONNECT_MIN_MS: '20', RECONNECT_MAX_MS: '50' });
    await waitFor(() => accepted.length === 1, 'switchboard to dial');
    const dialled = new Recorder(accepted[0]!);
    const client = await member(sw.port('tcp'), 'plant');
    await waitForMembers(sw, 'plant', 2);
    client.socket.write('to the dialled peer');
    await waitFor(() => dialled.text === 'to the dialled peer', 'the dialled peer to hear the group');
    accepted[0]!.write('from the dialled peer');
    await waitFor(() => client.text === 'from the dialled peer', 'the group to hear the dialled peer');
    accepted[0]!.destroy();
    await waitFor(() => accepted.length === 2, 'switchboard to redial');
    assert.ok((await metric(sw, 'switchboard_upstream_reconnects_total')) >= 1);
  });
});

describe('groups mode over IPv6', () => {
  it('serves IPv6 clients and matches [::1] in TCP_PRECONFIG_ADDRESSES', async () => {
    const { startApp: start } = await import('../../helpers.js');
    const sw = await start({ HOST: '::', UDP_PORT: 'off', TCP_PRECONFIG_ADDRESSES: 'v6:[::1]:0' });
    try {
      const port = sw.port('tcp');
      const a = new Recorder(await connectTcp(port, '::1'));
      const b = new Recorder(await connectTcp(port, '::1'));
      await waitForMembers(sw, 'v6', 2);
      a.socket.write('over v6');
      await waitFor(() => b.text === 'over v6', 'IPv6 members to talk');
      const status = sw.engine.status() as { clients: Array<{ address: string }> };
      assert.ok(status.clients.every((c) => c.address.startsWith('[::1]:')), JSON.stringify(status.clients));
      a.socket.destroy();
      b.socket.destroy();
    } finally {
      await sw.stop();
    }
  });
});

describe('groups mode accounting', () => {
  it('counts bytes sent to a group nobody else is in as dropped (no_receiver)', async () => {
    const { startApp: start, metric: read } = await import('../../helpers.js');
    const sw = await start({ UDP_PORT: 'off' });
    try {
      const alone = await joinGroup(sw.port('tcp'), 'solo');
      await waitForMembers(sw, 'solo', 1);
      alone.socket.write('nobody hears this');
      await waitFor(async () => (await read(sw, 'switchboard_dropped_bytes_total', { reason: 'no_receiver' })) === 17, 'the drop to be counted');
      alone.socket.destroy();
    } finally {
      await sw.stop();
    }
  });
});
