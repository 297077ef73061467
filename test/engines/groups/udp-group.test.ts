import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { after, describe, it } from 'node:test';
import { LOOPBACK, metric, sleep, startApp, waitFor } from '../../helpers.js';

const PREFIX = 'SOCKETFORWARDER-NEW:';

/** A UDP endpoint on loopback that records datagrams. */
class Peer {
  received: string[] = [];
  private constructor(readonly socket: Socket) {
    socket.on('message', (m) => this.received.push(m.toString()));
  }
  static async open(type: 'udp4' | 'udp6' = 'udp4'): Promise<Peer> {
    const socket = createSocket(type);
    socket.bind(0, type === 'udp4' ? LOOPBACK : '::1');
    await once(socket, 'listening');
    return new Peer(socket);
  }
  get port(): number {
    return this.socket.address().port;
  }
  send(text: string | Buffer, port: number, host = LOOPBACK): void {
    this.socket.send(text, port, host);
  }
}

describe('groups mode over UDP', () => {
  const apps: Array<{ stop(): Promise<void> }> = [];
  const peers: Peer[] = [];
  after(async () => {
    for (const p of peers) p.socket.close();
    await Promise.all(apps.map((a) => a.stop()));
  });
  async function app(env: Record<string, string> = {}) {
    const started = await startApp({ TCP_PORT: 'off', ...env });
    apps.push(started);
    return started;
  }
  async function peer(type: 'udp4' | 'udp6' = 'udp4') {
    const p = await Peer.open(type);
    peers.push(p);
    return p;
  }
  const peerCount = async (sw: Awaited<ReturnType<typeof app>>) => metric(sw, 'switchboard_udp_peers');

  it('registers a sender by PREFIX alone (source port) and forwards to the others, not back to it', async () => {
    const sw = await app();
    const port = sw.port('udp');
    const [a, b] = [await peer(), await peer()];
    a.send(PREFIX, port);
    b.send(PREFIX, port);
    await waitFor(async () => (await peerCount(sw)) === 2, 'two registrations');
    a.send('hello', port);
    await waitFor(() => b.received.includes('hello'), 'b to receive');
    await sleep(50);
    assert.deepEqual(a.received, [], 'no echo and the registration is not forwarded');
  });

  it('registers PREFIX<port>: the source IP with that port receives, and the registering socket may send', async () => {
    const sw = await app();
    const port = sw.port('udp');
    const [registrar, receiver, other] = [await peer(), await peer(), await peer()];
    registrar.send(`${PREFIX}${receiver.port}`, port);
    other.send(PREFIX, port);
    await waitFor(async () => (await peerCount(sw)) === 2, 'two registrations');
    other.send('to the registered port', port);
    await waitFor(() => receiver.received.includes('to the registered port'), 'the registered port to receive');
    registrar.send('from the registrar', port);
    await waitFor(() => other.received.includes('from the registrar'), 'the registering socket to count as registered');
    await sleep(30);
    assert.deepEqual(receiver.received, ['to the registered port'], 'its own datagram does not come back');
  });

  it('echoes to the sender with UDP_ECHO_SENDER=true', async () => {
    const sw = await app({ UDP_ECHO_SENDER: 'true' });
    const port = sw.port('udp');
    const a = await peer();
    a.send(PREFIX, port);
    await waitFor(async () => (await peerCount(sw)) === 1, 'registration');
    a.send('echo me', port);
    await waitFor(() => a.received.includes('echo me'), 'the echo');
  });

  it('refuses unregistered senders by default and forwards them with UDP_OPEN=true', async () => {
    for (const open of [false, true]) {
      const sw = await app({ UDP_OPEN: String(open) });
      const port = sw.port('udp');
      const [registered, stranger] = [await peer(), await peer()];
      registered.send(PREFIX, port);
      await waitFor(async () => (await peerCount(sw)) === 1, 'registration');
      stranger.send(`stranger ${open}`, port);
      if (open) {
        await waitFor(() => registered.received.includes(`stranger ${open}`), 'an open group to forward');
      } else {
        await waitFor(
          async () => (await metric(sw, 'switchboard_dropped_bytes_total', { reason: 'udp_unregistered' })) > 0,
          'the drop to be counted',
        );
        assert.deepEqual(registered.received, []);
      }
    }
  });

  it('never duplicates a peer that registers again', async () => {
    const sw = await app();
    const port = sw.port('udp');
    const [a, b] = [await peer(), await peer()];
    for (let i = 0; i < 5; i++) a.send(PREFIX, port);
    b.send(PREFIX, port);
    await waitFor(async () => (await peerCount(sw)) === 2, 'registrations');
    await sleep(30);
    assert.equal(await peerCount(sw), 2);
    b.send('once', port);
    await waitFor(() => a.received.length > 0, 'delivery');
    await sleep(50);
    assert.deepEqual(a.received, ['once']);
  });

  it('expires peers after UDP_PEER_TTL_MS without traffic', async () => {
    const sw = await app({ UDP_PEER_TTL_MS: '150' });
    const port = sw.port('udp');
    const a = await peer();
    a.send(PREFIX, port);
    await waitFor(async () => (await peerCount(sw)) === 1, 'registration');
    await waitFor(async () => (await peerCount(sw)) === 0, 'expiry', 2000);
  });

  it('refuses registrations beyond MAX_UDP_PEERS and counts them', async () => {
    const sw = await app({ MAX_UDP_PEERS: '2' });
    const port = sw.port('udp');
    const [a, b, c] = [await peer(), await peer(), await peer()];
    for (const p of [a, b, c]) p.send(PREFIX, port);
    await waitFor(
      async () => (await metric(sw, 'switchboard_connections_rejected_total', { reason: 'max_udp_peers' })) === 1,
      'the third registration to be refused',
    );
    assert.equal(await peerCount(sw), 2);
  });

  it('drops an oversized datagram whole and counts it', async () => {
    const sw = await app({ MAX_MESSAGE_BYTES: '100', UDP_OPEN: 'true' });
    const port = sw.port('udp');
    const [a, b] = [await peer(), await peer()];
    b.send(PREFIX, port);
    await waitFor(async () => (await peerCount(sw)) === 1, 'registration');
    a.send(Buffer.alloc(101, 0x41), port);
    a.send(Buffer.alloc(100, 0x42), port);
    await waitFor(() => b.received.length === 1, 'the datagram that fits');
    assert.equal(b.received[0], 'B'.repeat(100));
    assert.equal(await metric(sw, 'switchboard_dropped_bytes_total', { reason: 'oversize' }), 101);
  });

  it('sends to UDP_PRECONFIG_ADDRESSES from start-up, IPv4 and IPv6, from the listening port', async () => {
    const [v4, v6, sender] = [await peer('udp4'), await peer('udp6'), await peer()];
    const sw = await app({ HOST: '::', UDP_OPEN: 'true', UDP_PRECONFIG_ADDRESSES: `127.0.0.1:${v4.port},[::1]:${v6.port}` });
    const port = sw.port('udp');
    const sources: number[] = [];
    v4.socket.on('message', (_m, rinfo) => sources.push(rinfo.port));
    sender.send('to all', port);
    await waitFor(() => v4.received.includes('to all') && v6.received.includes('to all'), 'both pre-configured peers');
    assert.deepEqual(sources, [port], 'replies come from the listening port');
  });

  it('counts datagrams in and out', async () => {
    const sw = await app();
    const port = sw.port('udp');
    const [a, b, c] = [await peer(), await peer(), await peer()];
    for (const p of [a, b, c]) p.send(PREFIX, port);
    await waitFor(async () => (await peerCount(sw)) === 3, 'registrations');
    a.send('x', port);
    await waitFor(() => b.received.length === 1 && c.received.length === 1, 'delivery');
    assert.equal(await metric(sw, 'switchboard_datagrams_total', { direction: 'in' }), 4);
    assert.equal(await metric(sw, 'switchboard_datagrams_total', { direction: 'out' }), 2);
  });
});
