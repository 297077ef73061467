/**
 * Property (issue 7): whatever the chunking of a client's pipelined request stream and of the upstream's response stream,
 * switchboard delivers the same messages byte for byte: the upstream receives exactly the requests the client wrote, and
 * the client exactly the responses the upstream wrote (1xx, Content-Length, chunked with extensions and trailers, HEAD,
 * 204). End to end through real sockets; runs are bounded to keep the file fast.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { httpMux, RawClient, ScriptedUpstream } from './peers.js';
import { waitFor } from '../../../helpers.js';

type Body = { kind: 'none' } | { kind: 'length'; data: string } | { kind: 'chunked'; chunks: Array<[string, string]>; trailers: Array<[string, string]> };

interface Exchange {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT';
  target: string;
  fields: Array<[string, string]>;
  requestBody: Body;
  interim: boolean;
  status: number;
  responseBody: Body;
}

const token = fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,8}$/).filter((name) => !/^(content-length|transfer-encoding|host|connection|upgrade|expect|te|trailer)$/i.test(name));
const value = fc.stringMatching(/^[\x21-\x7e]([\x20-\x7e]{0,12}[\x21-\x7e])?$/);
const data = fc.string({ minLength: 1, maxLength: 60 });
const extension = fc.constantFrom('', ';a', ';a=b', ';q="x;y"');
const chunked = fc.record({
  kind: fc.constant('chunked' as const),
  chunks: fc.array(fc.tuple(data, extension), { maxLength: 3 }),
  trailers: fc.array(fc.tuple(token, value), { maxLength: 2 }),
});
const body: fc.Arbitrary<Body> = fc.oneof(fc.constant({ kind: 'none' as const }), fc.record({ kind: fc.constant('length' as const), data }), chunked);

const exchangeArb: fc.Arbitrary<Exchange> = fc
  .record({
    method: fc.constantFrom('GET' as const, 'HEAD' as const, 'POST' as const, 'PUT' as const),
    target: fc.stringMatching(/^\/[a-z0-9/._-]{0,20}$/),
    fields: fc.array(fc.tuple(token, value), { maxLength: 3 }),
    requestBody: body,
    interim: fc.boolean(),
    status: fc.constantFrom(200, 201, 204, 404, 500),
    responseBody: body,
  })
  .map((e) => ({
    ...e,
    requestBody: e.method === 'GET' || e.method === 'HEAD' ? { kind: 'none' as const } : e.requestBody,
    // A response without any length field would run to the close; that case has its own test.
    responseBody: e.status === 204 ? { kind: 'none' as const } : e.responseBody.kind === 'none' ? { kind: 'length' as const, data: '' } : e.responseBody,
  }));

function encodeBody(b: Body): { fields: string; bytes: string } {
  switch (b.kind) {
    case 'none':
      return { fields: '', bytes: '' };
    case 'length':
      return { fields: `Content-Length: ${Buffer.byteLength(b.data)}\r\n`, bytes: b.data };
    case 'chunked':
      return {
        fields: 'Transfer-Encoding: chunked\r\n',
        bytes:
          b.chunks.map(([d, ext]) => `${Buffer.byteLength(d).toString(16)}${ext}\r\n${d}\r\n`).join('') +
          `0\r\n${b.trailers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`,
      };
  }
}

function request(e: Exchange): string {
  const { fields, bytes } = encodeBody(e.requestBody);
  return `${e.method} ${e.target} HTTP/1.1\r\nHost: device\r\n${e.fields.map(([n, v]) => `${n}: ${v}\r\n`).join('')}${fields}\r\n${bytes}`;
}

function response(e: Exchange): string {
  const { fields, bytes } = encodeBody(e.responseBody);
  const interim = e.interim ? 'HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n' : '';
  // HEAD and 204: the head may announce a body, none follows (RFC 9112 §6.3 rule 1).
  const sendsBody = e.method !== 'HEAD' && e.status !== 204;
  return `${interim}HTTP/1.1 ${e.status} X\r\nX-Id: ${e.target}\r\n${fields}\r\n${sendsBody ? bytes : ''}`;
}

/** Cuts `bytes` at the given (sorted, deduplicated) fractions. */
function cut(bytes: Buffer, fractions: number[]): Buffer[] {
  const points = [...new Set(fractions.map((f) => Math.floor(f * bytes.length)))].filter((p) => p > 0 && p < bytes.length).sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const point of [...points, bytes.length]) {
    pieces.push(bytes.subarray(from, point));
    from = point;
  }
  return pieces;
}

/** Writes pieces one per event-loop turn, so they tend to arrive as separate reads. */
async function writePieces(write: (piece: Buffer) => void, pieces: Buffer[]): Promise<void> {
  for (const piece of pieces) {
    write(piece);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('mux mode, HTTP/1.1 property', () => {
  it('arbitrary chunking of requests and responses gives the same messages byte for byte', async () => {
    const upstream = await ScriptedUpstream.start();
    const app = await httpMux(upstream.target, { UPSTREAM_TIMEOUT_MS: '5000', REQUEST_DEADLINE_MS: '8000' });
    const fractions = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 });
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(exchangeArb, { minLength: 1, maxLength: 5 }), fractions, fractions, async (exchanges, requestCuts, responseCuts) => {
          const before = upstream.allBytes.length;
          const first = upstream.requests.length;
          const responses = exchanges.map((e) => Buffer.from(response(e), 'latin1'));
          upstream.script = (_request, socket, index) => {
            const bytes = responses[index - first]!;
            void writePieces((piece) => socket.write(piece), cut(bytes, responseCuts));
          };
          const client = await RawClient.connect(app.port('tcp'));
          try {
            const requests = Buffer.from(exchanges.map(request).join(''), 'latin1');
            for (const e of exchanges) client.send(Buffer.alloc(0), e.method);
            await writePieces((piece) => client.socket.write(piece), cut(requests, requestCuts));
            await client.waitFinals(exchanges.length, 10_000);
            await waitFor(() => upstream.allBytes.length - before >= requests.length, 'all request bytes upstream');
            assert.equal(upstream.allBytes.subarray(before).toString('latin1'), requests.toString('latin1'));
            assert.equal(client.text, Buffer.concat(responses).toString('latin1'));
          } finally {
            client.close();
          }
        }),
        { numRuns: 25 },
      );
      assert.equal(upstream.connections, 1, 'every exchange kept the one upstream connection');
    } finally {
      await app.stop();
      await upstream.stop();
    }
  });
});
