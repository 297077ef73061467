/**
 * HTTP/1.1 in mux mode when things go wrong (DESIGN §5 `http`): 502/504 to the client waiting, its keep-alive connection
 * still usable afterwards, a fresh upstream connection after any doubt, and the next client unaffected. Timing bounds are
 * loose (a loaded 2-core VM): they check order of magnitude, never precision.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { LOOPBACK, metric, sleep, waitFor } from '../../../helpers.js';
import { get, httpMux, ok, RawClient, ScriptedUpstream, upstreamState, withMux, type App, type Script } from './peers.js';

const outcome = (app: App, name: string) => metric(app, 'switchboard_requests_total', { protocol: 'http', outcome: name });

/** Answers normally, except for the paths listed, which it swallows (a hung device). */
function hangOn(...paths: string[]): Script {
  return (request, socket, index) => {
    if (!paths.includes(request.head.target)) ok()(request, socket, index);
  };
}

describe('mux mode, HTTP/1.1 upstream failures', () => {
  it('a hung upstream gives 504 after UPSTREAM_TIMEOUT_MS; the same client connection then works on a fresh upstream connection', async () => {
    await withMux(hangOn('/hang'), { UPSTREAM_TIMEOUT_MS: '300' }, async ({ upstream, app, client }) => {
      const c = await client();
      const started = Date.now();
      c.send(get('/hang'), 'GET');
      const [timeout] = await c.waitFinals(1);
      const took = Date.now() - started;
      assert.equal(timeout!.head.status, 504);
      assert.equal(timeout!.head.keepAlive, true);
      assert.match(timeout!.body.toString(), /^switchboard: /);
      assert.ok(took >= 250, `504 after ${took} ms`);
      c.send(get('/after'), 'GET');
      const finals = await c.waitFinals(2);
      assert.equal(finals[1]!.body.toString(), 'you asked for /after');
      assert.equal(c.closed, false);
      // The hung connection was dropped, so a late answer to /hang can never reach anyone.
      assert.equal(upstream.requests[1]!.connection, 1);
      assert.equal(await outcome(app, 'timeout'), 1);
      assert.equal(await outcome(app, 'ok'), 1);
    });
  });

  it('a late answer after a 504 never reaches the next client', async () => {
    const script: Script = (request, socket, index) => {
      if (request.head.target === '/late') setTimeout(() => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nLATE'), 500);
      else ok()(request, socket, index);
    };
    await withMux(script, { UPSTREAM_TIMEOUT_MS: '200' }, async ({ client }) => {
      const a = await client();
      a.send(get('/late'), 'GET');
      assert.equal((await a.waitFinals(1))[0]!.head.status, 504);
      const b = await client();
      b.send(get('/b1'), 'GET');
      await b.waitFinals(1);
      await sleep(500);
      b.send(get('/b2'), 'GET');
      const finals = await b.waitFinals(2);
      assert.deepEqual(finals.map((r) => r.body.toString()), ['you asked for /b1', 'you asked for /b2']);
      assert.ok(!b.text.includes('LATE') && !a.text.includes('LATE'));
    });
  });

  it('a queued request past REQUEST_DEADLINE_MS gets 504 and is never sent; its connection stays usable', async () => {
    await withMux(hangOn('/hang'), { UPSTREAM_TIMEOUT_MS: '1500', REQUEST_DEADLINE_MS: '300' }, async ({ upstream, app, client }) => {
      const a = await client();
      a.send(get('/hang'), 'GET');
      await waitFor(() => upstream.requests.length === 1, 'the hung request upstream');
      const b = await client();
      b.send(get('/queued', '', 'HEAD'), 'HEAD');
      const [deadline] = await b.waitFinals(1);
      assert.equal(deadline!.head.status, 504);
      // A 504 to HEAD has no body.
      assert.equal(deadline!.body.length, 0);
      assert.match(deadline!.raw.toString('latin1'), /content-length: \d+\r\n\r\n$/);
      assert.equal(await outcome(app, 'timeout'), 1);
      await a.waitFinals(1, 4000);
      b.send(get('/after'), 'GET');
      assert.equal((await b.waitFinals(2))[1]!.body.toString(), 'you asked for /after');
      assert.deepEqual(upstream.requests.map((r) => r.head.target), ['/hang', '/after']);
    });
  });

  it('an unreachable upstream gives 502 at once, and the client connection stays usable', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, LOOPBACK, resolve));
    const port = (closed.address() as { port: number }).port;
    await new Promise((resolve) => closed.close(resolve));
    const app = await httpMux(`${LOOPBACK}:${port}`, { RECONNECT_MIN_MS: '5000', RECONNECT_MAX_MS: '10000' }, false);
    try {
      await waitFor(() => upstreamState(app) === 'backoff', 'backoff');
      const c = await RawClient.connect(app.port('tcp'));
      c.send(get('/a') + get('/b', '', 'HEAD'), 'GET', 'HEAD');
      const finals = await c.waitFinals(2);
      assert.deepEqual(finals.map((r) => r.head.status), [502, 502]);
      assert.match(finals[0]!.body.toString(), /^switchboard: the upstream is unreachable/);
      assert.equal(finals[1]!.body.length, 0);
      assert.equal(c.closed, false);
      assert.equal(await metric(app, 'switchboard_requests_total', { protocol: 'http', outcome: 'unavailable' }), 2);
      c.close();
    } finally {
      await app.stop();
    }
  });

  it('an upstream that closes before the response head gives 502; a non-idempotent request is not sent twice', async () => {
    const script: Script = (request, socket, index) => {
      if (request.head.target === '/die') socket.destroy();
      else ok()(request, socket, index);
    };
    await withMux(script, {}, async ({ upstream, app, client }) => {
      const c = await client();
      c.send('POST /die HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\n\r\nhi', 'POST');
      const [bad] = await c.waitFinals(1);
      assert.equal(bad!.head.status, 502);
      assert.equal(bad!.head.keepAlive, true);
      c.send(get('/fine'), 'GET');
      assert.equal((await c.waitFinals(2))[1]!.body.toString(), 'you asked for /fine');
      assert.deepEqual(upstream.requests.map((r) => r.head.target), ['/die', '/fine']);
      assert.equal(await outcome(app, 'unavailable'), 1);
    });
  });

  it('a GET on a reused connection the upstream drops before answering is sent once more on a fresh connection', async () => {
    const script: Script = (request, socket, index) => {
      if (request.head.target === '/stale' && request.connection === 0) socket.destroy();
      else ok()(request, socket, index);
    };
    await withMux(script, {}, async ({ upstream, client }) => {
      const c = await client();
      c.send(get('/first') + get('/stale'), 'GET', 'GET');
      const finals = await c.waitFinals(2);
      assert.deepEqual(finals.map((r) => r.body.toString()), ['you asked for /first', 'you asked for /stale']);
      assert.deepEqual(upstream.requests.map((r) => [r.head.target, r.connection]), [['/first', 0], ['/stale', 0], ['/stale', 1]]);
    });
  });

  it('an upstream closing mid-body: the client gets its partial response and is closed; the next client gets a fresh connection', async () => {
    const script: Script = (request, socket, index) => {
      if (request.head.target === '/partial') {
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part');
        setTimeout(() => socket.destroy(), 50);
      } else ok()(request, socket, index);
    };
    await withMux(script, {}, async ({ upstream, app, client }) => {
      const a = await client();
      a.send(get('/partial'), 'GET');
      await a.waitClosed();
      assert.equal(a.text, 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part');
      const b = await client();
      b.send(get('/next'), 'GET');
      assert.equal((await b.waitFinals(1))[0]!.body.toString(), 'you asked for /next');
      assert.equal(upstream.requests[1]!.connection, 1);
      assert.equal(await outcome(app, 'unavailable'), 1);
    });
  });

  it('a response that cannot be framed gives 502 and a fresh upstream connection', async () => {
    const script: Script = (request, socket, index) => {
      if (request.head.target === '/bad') socket.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
      else ok()(request, socket, index);
    };
    await withMux(script, {}, async ({ upstream, client }) => {
      const c = await client();
      c.send(get('/bad'), 'GET');
      assert.equal((await c.waitFinals(1))[0]!.head.status, 502);
      c.send(get('/good'), 'GET');
      assert.equal((await c.waitFinals(2))[1]!.body.toString(), 'you asked for /good');
      assert.equal(upstream.requests[1]!.connection, 1);
    });
  });

  it('bytes the upstream sends between exchanges are counted and dropped with its connection, never delivered', async () => {
    await withMux(ok(), {}, async ({ upstream, app, client }) => {
      const c = await client();
      c.send(get('/one'), 'GET');
      await c.waitFinals(1);
      for (const socket of upstream.sockets) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nSTRAY');
      await waitFor(async () => (await metric(app, 'switchboard_stray_replies_total')) === 1, 'the stray counted');
      await waitFor(() => upstreamState(app) === 'up', 'upstream up again');
      c.send(get('/two'), 'GET');
      const finals = await c.waitFinals(2);
      assert.equal(finals[1]!.body.toString(), 'you asked for /two');
      assert.ok(!c.text.includes('STRAY'));
      assert.equal(upstream.connections, 2);
    });
  });

  it('a client that leaves mid-exchange: the upstream is reset and its queued requests are never sent', async () => {
    await withMux(hangOn('/hang'), { UPSTREAM_TIMEOUT_MS: '5000' }, async ({ upstream, app, client }) => {
      const a = await client();
      a.send(get('/hang') + get('/queued-1') + get('/queued-2'), 'GET', 'GET', 'GET');
      await waitFor(() => upstream.requests.length === 1, 'the first request upstream');
      a.close();
      await waitFor(() => upstream.connections === 2, 'a fresh upstream connection');
      const b = await client();
      b.send(get('/b'), 'GET');
      assert.equal((await b.waitFinals(1))[0]!.body.toString(), 'you asked for /b');
      assert.deepEqual(upstream.requests.map((r) => r.head.target), ['/hang', '/b']);
      assert.equal(await outcome(app, 'client_gone'), 3);
    });
  });

  it('/status shows clients, the upstream, queued and inflight', async () => {
    await withMux(hangOn('/hang'), { UPSTREAM_TIMEOUT_MS: '5000' }, async ({ upstream, app, client }) => {
      const a = await client();
      a.send(get('/hang') + get('/next'), 'GET', 'GET');
      await waitFor(() => upstream.requests.length === 1, 'the first request upstream');
      await waitFor(() => (app.engine.status() as { queued: number }).queued === 1, 'one queued');
      const status = app.engine.status() as Record<string, unknown>;
      assert.equal(status.protocol, 'http');
      assert.equal(status.inflight, 1);
      assert.equal(status.clientCount, 1);
      assert.equal((status.upstream as { state: string }).state, 'up');
      assert.equal(await metric(app, 'switchboard_queue_depth'), 1);
    });
  });
});

describe('mux mode, HTTP/1.1 lifecycle', () => {
  it("a failed exchange that closes its client does not take the next client's request down with its connection", async () => {
    await withMux(hangOn('/hang'), { UPSTREAM_TIMEOUT_MS: '300', REQUEST_DEADLINE_MS: '5000' }, async ({ upstream, client }) => {
      const a = await client();
      // Connection: close, so its 504 closes it, which frees the way for the next request at once.
      a.send(get('/hang', 'Connection: close\r\n'), 'GET');
      await waitFor(() => upstream.requests.length === 1, 'the hung request upstream');
      const b = await client();
      b.send('POST /b HTTP/1.1\r\nHost: d\r\nContent-Length: 3\r\n\r\nabc', 'POST');
      await a.waitClosed();
      assert.equal(a.finals[0]?.head.status, 504);
      const [answer] = await b.waitFinals(1);
      assert.equal(answer!.head.status, 200);
      assert.equal(answer!.body.toString(), 'you asked for /b with 3 bytes');
      assert.deepEqual(upstream.requests.map((r) => [r.head.target, r.connection]), [['/hang', 0], ['/b', 1]]);
    });
  });

  it('drain (SIGTERM) lets the exchange in flight finish, then closes the clients', async () => {
    const script: Script = (request, socket, index) => setTimeout(() => ok()(request, socket, index), 150);
    const upstream = await ScriptedUpstream.start(script);
    const app = await httpMux(upstream.target, { SHUTDOWN_GRACE_MS: '3000' });
    try {
      const c = await RawClient.connect(app.port('tcp'));
      c.send(get('/slow'), 'GET');
      await waitFor(() => upstream.requests.length === 1, 'the request upstream');
      const stopping = app.stop();
      const [answer] = await c.waitFinals(1);
      assert.equal(answer!.body.toString(), 'you asked for /slow');
      await stopping;
      await c.waitClosed();
      assert.equal(await metric(app, 'switchboard_requests_total', { protocol: 'http', outcome: 'ok' }), 1);
    } finally {
      await app.stop();
      await upstream.stop();
    }
  });

  it('UPSTREAM_IDLE_CLOSE_MS closes the upstream without clients; the next request dials again', async () => {
    await withMux(ok(), { UPSTREAM_IDLE_CLOSE_MS: '100' }, async ({ upstream, app, client }) => {
      const a = await client();
      a.send(get('/one'), 'GET');
      await a.waitFinals(1);
      a.close();
      await waitFor(() => upstreamState(app) === 'idle', 'the idle close');
      const b = await client();
      b.send(get('/two'), 'GET');
      assert.equal((await b.waitFinals(1))[0]!.body.toString(), 'you asked for /two');
      assert.equal(upstream.connections, 2);
    });
  });
});
