/**
 * HTTP/1.1 in mux mode, framing end to end (DESIGN §5 `http`, issue 7): raw bytes from a client through switchboard to a
 * scripted upstream and back. Every case asserts bytes: what reached the upstream, and what the client received.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { metric, sleep, waitFor } from '../../../helpers.js';
import { get, ok, withMux, type App, type Script } from './peers.js';

/** The upstream answers each request with these exact bytes, in turn. */
function replies(...answers: string[]): Script {
  return (_request, socket, index) => socket.write(answers[index] ?? answers.at(-1)!);
}

const outcome = (app: App, name: string) => metric(app, 'switchboard_requests_total', { protocol: 'http', outcome: name });

describe('mux mode, HTTP/1.1 framing', () => {
  it('a Content-Length request and response pass byte for byte, and the connection is reused', async () => {
    const response = 'HTTP/1.1 201 Created\r\nX-Order: b\r\nx-order: a\r\nContent-Length: 5\r\n\r\nhello';
    await withMux(replies(response), {}, async ({ upstream, app, client }) => {
      const c = await client();
      const request = 'POST /submit?q=1 HTTP/1.1\r\nHost: device\r\nX-Weird:   spaced  \r\nContent-Length: 11\r\n\r\nhello world';
      c.send(request, 'POST');
      const [first] = await c.waitFinals(1);
      assert.equal(first!.raw.toString('latin1'), response);
      assert.equal(upstream.allBytes.toString('latin1'), request);
      c.send(request, 'POST');
      await c.waitFinals(2);
      assert.equal(upstream.connections, 1);
      assert.equal(await outcome(app, 'ok'), 2);
    });
  });

  it('chunked bodies with extensions and trailers pass byte for byte both ways', async () => {
    const response =
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n' +
      '4;name=value\r\nWiki\r\n5 ; quoted="a;b"\r\npedia\r\n0\r\nX-Sum: 9\r\n\r\n';
    await withMux(replies(response), {}, async ({ upstream, client }) => {
      const c = await client();
      const request =
        'PUT /chunks HTTP/1.1\r\nHost: device\r\nTransfer-Encoding: chunked\r\n\r\n' +
        '3;ext\r\nabc\r\n10\r\n0123456789abcdef\r\n0;last\r\nX-Trailer: t\r\nX-Other: o\r\n\r\n';
      c.send(request, 'PUT');
      const [first] = await c.waitFinals(1);
      assert.equal(first!.raw.toString('latin1'), response);
      assert.equal(first!.body.toString(), 'Wikipedia');
      assert.equal(upstream.allBytes.toString('latin1'), request);
      assert.equal(upstream.requests[0]!.body.toString(), 'abc0123456789abcdef');
    });
  });

  it('HEAD, 204 and 304 responses end at their header section whatever their length fields say', async () => {
    const answers = [
      'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n',
      'HTTP/1.1 204 No Content\r\n\r\n',
      'HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\nETag: "x"\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
    ];
    await withMux(replies(...answers), {}, async ({ upstream, client }) => {
      const c = await client();
      c.send(get('/head', '', 'HEAD') + get('/204', '', 'DELETE') + get('/304', 'If-None-Match: "x"\r\n') + get('/after'), 'HEAD', 'DELETE', 'GET', 'GET');
      const finals = await c.waitFinals(4);
      assert.deepEqual(finals.map((r) => r.raw.toString('latin1')), answers);
      assert.equal(c.text, answers.join(''));
      assert.equal(upstream.connections, 1);
    });
  });

  it('1xx interim responses (103, 100 Continue) are forwarded before the final response', async () => {
    const echo: Script = (request, socket) => {
      if (request.head.target !== '/upload') socket.write('HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n');
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${request.body.length}\r\n\r\n`);
      socket.write(request.body);
    };
    await withMux(echo, {}, async ({ upstream, client }) => {
      const c = await client();
      c.send(get('/a') + get('/b'), 'GET', 'GET');
      await c.waitFinals(2);
      assert.deepEqual(c.responses.map((r) => r.head.status), [103, 200, 103, 200]);
      assert.equal(c.responses[0]!.raw.toString('latin1'), 'HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n');

      // Expect: 100-continue: the upstream gets the head alone, answers 100, and only then does the client send its body.
      upstream.onHead = (head, socket) => {
        if (head.expectContinue) socket.write('HTTP/1.1 100 Continue\r\n\r\n');
      };
      const d = await client();
      d.send('POST /upload HTTP/1.1\r\nHost: device\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n', 'POST');
      await waitFor(() => d.responses.length === 1, '100 Continue');
      assert.equal(d.responses[0]!.raw.toString('latin1'), 'HTTP/1.1 100 Continue\r\n\r\n');
      d.socket.write('data');
      const [final] = await d.waitFinals(1);
      assert.equal(final!.body.toString(), 'data');
      assert.equal(upstream.connections, 1);
    });
  });

  it('a response delimited by close reaches the client whole, the client is closed, and the upstream is redialled', async () => {
    const script: Script = (request, socket) => {
      if (request.head.target === '/close') socket.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end');
      else ok()(request, socket, 0);
    };
    await withMux(script, {}, async ({ upstream, app, client }) => {
      const a = await client();
      a.send(get('/close'), 'GET');
      await a.waitClosed();
      assert.equal(a.text, 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end');
      const b = await client();
      b.send(get('/next'), 'GET');
      const [answer] = await b.waitFinals(1);
      assert.equal(answer!.body.toString(), 'you asked for /next');
      assert.equal(upstream.connections, 2);
      assert.equal(upstream.requests[1]!.connection, 1);
      assert.equal(await outcome(app, 'ok'), 2);
    });
  });

  it('Connection: close from the client closes it after its response and the upstream is redialled', async () => {
    await withMux(ok(), {}, async ({ upstream, client }) => {
      const a = await client();
      // The request after the closing one is never sent (RFC 9112 §9.6: the client must not send it).
      a.send(get('/bye', 'Connection: close\r\n') + get('/never'), 'GET');
      await a.waitClosed();
      assert.equal(a.finals.length, 1);
      assert.equal(a.finals[0]!.body.toString(), 'you asked for /bye');
      await waitFor(() => upstream.connections === 2, 'a redial');
      assert.deepEqual(upstream.requests.map((r) => r.head.target), ['/bye']);
      const b = await client();
      b.send(get('/next'), 'GET');
      assert.equal((await b.waitFinals(1))[0]!.body.toString(), 'you asked for /next');
    });
  });

  it('Connection: close from the upstream closes that client after the response and redials; other clients are unaffected', async () => {
    await withMux(ok('Connection: close\r\n'), {}, async ({ upstream, client }) => {
      const a = await client();
      a.send(get('/one'), 'GET');
      await a.waitClosed();
      assert.equal(a.finals[0]!.body.toString(), 'you asked for /one');
      const b = await client();
      b.send(get('/two'), 'GET');
      assert.equal((await b.waitFinals(1))[0]!.body.toString(), 'you asked for /two');
      assert.equal(upstream.requests[1]!.connection, 1);
    });
  });

  it('pipelined requests in one write are answered in order', async () => {
    await withMux(ok(), {}, async ({ upstream, client }) => {
      const c = await client();
      const paths = Array.from({ length: 10 }, (_, i) => `/p${i}`);
      c.send(
        paths.map((path) => get(path)).join(''),
        ...paths.map(() => 'GET'),
      );
      const finals = await c.waitFinals(10);
      assert.deepEqual(
        finals.map((r) => r.body.toString()),
        paths.map((path) => `you asked for ${path}`),
      );
      assert.equal(upstream.connections, 1);
    });
  });

  it('a response split into single bytes reaches the client byte for byte', async () => {
    const response = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nT: 1\r\n\r\n';
    const script: Script = (_request, socket) => {
      let i = 0;
      const next = () => {
        if (i >= response.length) return;
        socket.write(response[i++]!);
        setImmediate(next);
      };
      next();
    };
    await withMux(script, {}, async ({ client }) => {
      const c = await client();
      c.send(get('/slow'), 'GET');
      await c.waitFinals(1);
      c.send(get('/again'), 'GET');
      await c.waitFinals(2);
      assert.equal(c.text, response + response);
    });
  });

  it('two clients at once each get exactly their own responses', async () => {
    await withMux(ok(), {}, async ({ client }) => {
      const clients = await Promise.all(Array.from({ length: 5 }, () => client()));
      clients.forEach((c, n) => {
        const paths = Array.from({ length: 6 }, (_, i) => `/client${n}/req${i}`);
        c.send(paths.map((path) => get(path)).join(''), ...paths.map(() => 'GET'));
      });
      await Promise.all(clients.map((c) => c.waitFinals(6)));
      clients.forEach((c, n) => {
        assert.deepEqual(
          c.finals.map((r) => r.body.toString()),
          Array.from({ length: 6 }, (_, i) => `you asked for /client${n}/req${i}`),
        );
      });
    });
  });
});

describe('mux mode, HTTP/1.1 refusals', () => {
  const refused: Array<[string, string, number]> = [
    ['Content-Length with Transfer-Encoding (smuggling)', 'POST / HTTP/1.1\r\nHost: d\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
    ['two Content-Length lines, even equal (smuggling)', 'POST / HTTP/1.1\r\nHost: d\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc', 400],
    ['conflicting Content-Length values', 'POST / HTTP/1.1\r\nHost: d\r\nContent-Length: 3, 4\r\n\r\nabcd', 400],
    ['Transfer-Encoding: chunked, identity (smuggling)', 'POST / HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n', 400],
    ['a negative Content-Length', 'POST / HTTP/1.1\r\nHost: d\r\nContent-Length: -1\r\n\r\n', 400],
    ['a Content-Length that is not a number', 'POST / HTTP/1.1\r\nHost: d\r\nContent-Length: 1e3\r\n\r\n', 400],
    ['obsolete line folding', 'GET / HTTP/1.1\r\nHost: d\r\nX-Folded: a\r\n  b\r\n\r\n', 400],
    ['a header section over MAX_HEADER_BYTES', `GET / HTTP/1.1\r\nHost: d\r\nX-Big: ${'x'.repeat(2000)}\r\n\r\n`, 400],
    ['Upgrade (WebSocket)', 'GET /ws HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n', 501],
    ['CONNECT', 'CONNECT device:443 HTTP/1.1\r\nHost: device:443\r\n\r\n', 501],
    ['HTTP/2.0 in an HTTP/1 request line', 'GET / HTTP/2.0\r\nHost: d\r\n\r\n', 505],
    ['a bad chunk size', 'POST / HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 400],
  ];
  for (const [what, bytes, status] of refused) {
    it(`${what}: ${status} with connection: close, the client is closed, nothing reaches the upstream`, async () => {
      await withMux(ok(), { MAX_HEADER_BYTES: '1024' }, async ({ upstream, app, client }) => {
        const c = await client();
        c.send(bytes, 'GET');
        await c.waitClosed();
        const [answer] = c.finals;
        assert.ok(answer, `a response to ${JSON.stringify(bytes)}; got ${JSON.stringify(c.text)}`);
        assert.equal(answer.head.status, status);
        assert.match(answer.raw.toString('latin1'), /\r\ncontent-type: text\/plain\r\ncontent-length: \d+\r\nconnection: close\r\n\r\nswitchboard: /);
        assert.equal(answer.head.keepAlive, false);
        await sleep(50);
        assert.equal(upstream.allBytes.length, 0, `upstream got ${JSON.stringify(upstream.allBytes.toString('latin1'))}`);
        assert.equal(await outcome(app, 'rejected'), 1);
      });
    });
  }

  it('earlier pipelined requests are answered first, then the refusal, then the close; nothing after it is sent', async () => {
    await withMux(ok(), {}, async ({ upstream, client }) => {
      const c = await client();
      c.send(get('/first') + get('/second') + 'GET / HTTP/1.1\r\nHost: d\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n' + get('/never'), 'GET', 'GET', 'GET');
      await c.waitClosed();
      assert.deepEqual(c.finals.map((r) => r.head.status), [200, 200, 400]);
      assert.deepEqual(c.finals.slice(0, 2).map((r) => r.body.toString()), ['you asked for /first', 'you asked for /second']);
      assert.deepEqual(upstream.requests.map((r) => r.head.target), ['/first', '/second']);
    });
  });

  it('a malformed chunk in a body being streamed: the upstream is reset, the client gets 400 and is closed', async () => {
    // The upstream waits for the whole body before answering; the body breaks halfway.
    await withMux(ok(), {}, async ({ upstream, client }) => {
      const c = await client();
      c.send('POST /x HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n', 'POST');
      await waitFor(() => upstream.allBytes.length > 0, 'the head upstream');
      c.socket.write('nope\r\n');
      await c.waitClosed();
      assert.equal(c.finals[0]?.head.status, 400);
      await waitFor(() => upstream.connections === 2, 'a fresh upstream connection');
      const b = await client();
      b.send(get('/clean'), 'GET');
      assert.equal((await b.waitFinals(1))[0]!.body.toString(), 'you asked for /clean');
      assert.equal(upstream.requests.length, 1);
    });
  });
});
