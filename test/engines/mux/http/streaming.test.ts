/**
 * HTTP/1.1 in mux mode with large bodies (issue 7): 100 MB up and down through switchboard with memory flat (retained
 * heap and Buffer memory measured after forced GCs, switchboard, peers and test all in this process), and backpressure:
 * a client whose request waits in the queue is not read, a client with CLIENT_QUEUE requests queued is not read, and a
 * client that stops reading stops the upstream instead of filling switchboard's memory.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { connectTcp, LOOPBACK, sleep, waitFor } from '../../../helpers.js';
import { Http1Decoder } from '../../../../src/protocols/http1.js';
import { get, held, httpMux, RawClient, withMux, type App } from './peers.js';

setFlagsFromString('--expose-gc');
// By default V8 frees dead ArrayBuffers on a background thread after a GC, and process.memoryUsage().arrayBuffers counts
// them until that thread is done: right after gc() on a busy machine it still showed 32 MiB of dead 64 KiB read buffers
// (a CI failure). Sweeping on the main thread makes gc() leave only what is retained.
setFlagsFromString('--no-concurrent-array-buffer-sweeping');
const gc = runInNewContext('gc') as () => void;

const BLOCK = Buffer.alloc(65536);
for (let i = 0; i < BLOCK.length; i++) BLOCK[i] = (i * 7919 + (i >> 8)) & 0xff;
const BLOCKS = 1600; // 100 MiB
const TOTAL = BLOCK.length * BLOCKS;
const EXPECTED_SHA = (() => {
  const hash = createHash('sha256');
  for (let i = 0; i < BLOCKS; i++) hash.update(BLOCK);
  return hash.digest('hex');
})();
/** Retained memory may grow by at most this much during a 100 MiB transfer. */
const FLAT_BYTES = 30 * 1024 * 1024;

function retained(): number {
  gc();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

/** Samples retained memory every 250 ms until stopped; returns the peak growth over the baseline. */
function watchMemory(): () => number {
  const baseline = retained();
  let peak = 0;
  const timer = setInterval(() => (peak = Math.max(peak, retained() - baseline)), 250);
  return () => {
    clearInterval(timer);
    return Math.max(peak, retained() - baseline);
  };
}

/** Writes BLOCK `count` times, waiting for drain whenever the socket asks. */
async function writeBlocks(stream: { write(b: Buffer): boolean; once(e: 'drain', f: () => void): unknown }, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    if (!stream.write(BLOCK)) await new Promise<void>((resolve) => stream.once('drain', resolve));
  }
}

async function nodeServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Server> {
  const server = createServer({ keepAliveTimeout: 60_000 }, handler);
  server.listen(0, LOOPBACK);
  await once(server, 'listening');
  return server;
}

const portOf = (server: Server) => (server.address() as { port: number }).port;

describe('mux mode, HTTP/1.1 streaming', () => {
  it('a 100 MiB upload streams through with memory flat, byte for byte, also when the upstream stops reading', async () => {
    const server = await nodeServer((req, res) => {
      const hash = createHash('sha256');
      let length = 0;
      let paused = false;
      req.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        length += chunk.length;
        // A slow device: stop reading for a while, so switchboard must stop reading the client rather than buffer.
        if (!paused && length > 10 * BLOCK.length) {
          paused = true;
          req.pause();
          setTimeout(() => req.resume(), 600);
        }
      });
      req.on('end', () => res.end(`${length} ${hash.digest('hex')}`));
    });
    const app = await httpMux(`${LOOPBACK}:${portOf(server)}`, { UPSTREAM_TIMEOUT_MS: '10000' });
    try {
      const client = await RawClient.connect(app.port('tcp'));
      const stop = watchMemory();
      client.send(`POST /upload HTTP/1.1\r\nHost: device\r\nContent-Length: ${TOTAL}\r\n\r\n`, 'POST');
      await writeBlocks(client.socket, BLOCKS);
      const [response] = await client.waitFinals(1, 60_000);
      const growth = stop();
      assert.equal(response!.head.status, 200);
      assert.equal(response!.body.toString(), `${TOTAL} ${EXPECTED_SHA}`);
      assert.ok(growth < FLAT_BYTES, `retained memory grew by ${(growth / 1048576).toFixed(1)} MiB`);
      client.close();
    } finally {
      await app.stop();
      server.closeAllConnections();
      server.close();
    }
  });

  it('a 100 MiB chunked download streams through with memory flat, byte for byte, also when the client pauses', async () => {
    const server = await nodeServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' }); // no length: chunked
      void writeBlocks(res, BLOCKS).then(() => res.end());
    });
    const app = await httpMux(`${LOOPBACK}:${portOf(server)}`, { UPSTREAM_TIMEOUT_MS: '10000' });
    try {
      const socket = await connectTcp(app.port('tcp'));
      const stop = watchMemory();
      // Counts the body without keeping it: chunked framing is parsed by a RawClient fed chunk by chunk, bodies dropped.
      const { body, done } = digestResponse(socket);
      socket.write(get('/download'));
      // Stop reading for a while: switchboard must stop reading the upstream rather than buffer for us.
      await waitFor(() => body.length > 10 * BLOCK.length, 'the download to start', 10_000);
      socket.pause();
      await sleep(600);
      const pausedGrowth = retained();
      socket.resume();
      await done;
      const growth = stop();
      assert.equal(body.length, TOTAL);
      assert.equal(body.sha, EXPECTED_SHA);
      assert.ok(growth < FLAT_BYTES, `retained memory grew by ${(growth / 1048576).toFixed(1)} MiB (${pausedGrowth} while paused)`);
      socket.destroy();
    } finally {
      await app.stop();
      server.closeAllConnections();
      server.close();
    }
  });

  it('a queued request is not read: its body waits in the client TCP window until its exchange starts', async () => {
    const device = held('/hold');
    await withMux(device.script, { UPSTREAM_TIMEOUT_MS: '10000', REQUEST_DEADLINE_MS: '10000' }, async ({ app, client }) => {
      const a = await client();
      a.send(get('/hold'), 'GET');
      await waitFor(() => device.holding, 'the held request upstream');
      const b = await client();
      const size = 20 * 1024 * 1024;
      b.send(`PUT /big HTTP/1.1\r\nHost: device\r\nContent-Length: ${size}\r\n\r\n`, 'PUT');
      const writing = writeBlocks(b.socket, size / BLOCK.length);
      await sleep(500);
      const bytesIn = clientBytesIn(app, 1);
      // At most a few socket reads arrive before the request is seen queued and the client is paused.
      assert.ok(bytesIn >= 0 && bytesIn < 1024 * 1024, `switchboard read ${bytesIn} bytes of a queued request`);
      device.release();
      await writing;
      const [answer] = await b.waitFinals(1, 20_000);
      assert.equal(answer!.body.toString(), `you asked for /big with ${size} bytes`);
      await a.waitFinals(1);
    });
  });

  it('past CLIENT_QUEUE queued requests the client is not read; everything is answered in order afterwards', async () => {
    const device = held('/hold');
    await withMux(device.script, { CLIENT_QUEUE: '3', UPSTREAM_TIMEOUT_MS: '10000', REQUEST_DEADLINE_MS: '10000' }, async ({ app, client }) => {
      const c = await client();
      c.send(get('/hold'), 'GET');
      await waitFor(() => device.holding, 'the held request upstream');
      for (let i = 0; i < 8; i++) {
        c.send(get(`/q${i}`), 'GET');
        await sleep(20);
      }
      await sleep(200);
      assert.equal((app.engine.status() as { queued: number }).queued, 3);
      device.release();
      const finals = await c.waitFinals(9);
      assert.deepEqual(
        finals.map((r) => r.body.toString()),
        ['/hold', ...Array.from({ length: 8 }, (_, i) => `/q${i}`)].map((path) => `you asked for ${path}`),
      );
    });
  });
});

function clientBytesIn(app: App, index: number): number {
  return (app.engine.status() as { clients: Array<{ bytesIn: number }> }).clients[index]?.bytesIn ?? -1;
}

/** Frames one response on `socket` with the project's framer and hashes its body without keeping it. */
function digestResponse(socket: Socket): { body: { length: number; sha: string }; done: Promise<void> } {
  const body = { length: 0, sha: '' };
  const hash = createHash('sha256');
  const decoder = new Http1Decoder('response');
  decoder.expectResponseTo('GET');
  const done = new Promise<void>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      for (const event of decoder.push(chunk)) {
        if (event.type === 'body') {
          hash.update(event.data);
          body.length += event.data.length;
        } else if (event.type === 'end') {
          body.sha = hash.digest('hex');
          resolve();
        } else if (event.type === 'error') reject(event.error);
      }
    });
    socket.on('close', () => reject(new Error(`closed after ${body.length} body bytes`)));
  });
  return { body, done };
}
