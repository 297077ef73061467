/**
 * HTTP/1.1 framer (RFC 9112): annotated byte tables for every framing rule, the smuggling attempts it must refuse, a 100 MB
 * streaming check, and properties over arbitrary chunking and arbitrary bytes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ErrorCodes, FrameError } from '../../src/errors.js';
import { DEFAULT_MAX_HEADER_BYTES, Http1Decoder, Http1FrameError, type Http1Event } from '../../src/protocols/http1.js';

// ------------------------------------------------------------------------------------------------------------ helpers

/** A comparable view of events: body slices merged (chunking decides how a body is sliced, not what it is). */
type Summary =
  | { type: 'head'; [field: string]: unknown }
  | { type: 'body'; data: string }
  | { type: 'chunk'; size: number; extensions: string; wire: string }
  | { type: 'end'; trailers: [string, string][]; wire: string }
  | { type: 'error'; reason: string; status: number; code: string };

function summarize(events: readonly Http1Event[]): Summary[] {
  const out: Summary[] = [];
  for (const event of events) {
    switch (event.type) {
      case 'head': {
        const { raw, headers, ...rest } = event.head;
        assert.equal(event.wire, raw);
        out.push({ ...rest, type: 'head', raw: raw.toString('latin1'), headers: headers.map((h) => [h.name, h.value]) });
        break;
      }
      case 'body': {
        assert.equal(event.wire, event.data);
        const last = out.at(-1);
        if (last?.type === 'body') last.data += event.data.toString('latin1');
        else out.push({ type: 'body', data: event.data.toString('latin1') });
        break;
      }
      case 'chunk':
        out.push({ type: 'chunk', size: event.size, extensions: event.extensions, wire: event.wire.toString('latin1') });
        break;
      case 'end':
        out.push({ type: 'end', trailers: event.trailers.map((h) => [h.name, h.value]), wire: event.wire.toString('latin1') });
        break;
      case 'error':
        assert.ok(event.error instanceof Http1FrameError);
        assert.ok(event.error instanceof FrameError);
        out.push({ type: 'error', reason: event.error.reason, status: event.error.status, code: event.error.code });
        break;
    }
  }
  return out;
}

/** Splits `input` into pieces whose sizes cycle through `sizes`. */
function split(input: Buffer, sizes: readonly number[]): Buffer[] {
  const pieces: Buffer[] = [];
  for (let pos = 0, k = 0; pos < input.length; k++) {
    const size = Math.max(1, sizes[k % sizes.length]!);
    pieces.push(input.subarray(pos, pos + size));
    pos += size;
  }
  return pieces;
}

interface FrameOptions {
  /** Response side: methods of the requests sent, in order. */
  methods?: string[];
  /** Piece sizes; default one push. */
  sizes?: number[];
  /** Call end() after the input (EOF). */
  eof?: boolean;
}

function frame(side: 'request' | 'response', input: string | Buffer, options: FrameOptions = {}): Http1Event[] {
  const bytes = typeof input === 'string' ? Buffer.from(input, 'latin1') : input;
  const decoder = new Http1Decoder(side);
  for (const method of options.methods ?? []) decoder.expectResponseTo(method);
  const events: Http1Event[] = [];
  for (const piece of options.sizes ? split(bytes, options.sizes) : [bytes]) events.push(...decoder.push(piece));
  if (options.eof) events.push(...decoder.end());
  return events;
}

const wireOf = (events: readonly Http1Event[]): Buffer => Buffer.concat(events.map((event) => event.wire));
const types = (events: readonly Http1Event[]): string => summarize(events).map((e) => e.type).join(' ');
function errorOf(events: readonly Http1Event[]): { reason: string; status: number; code: string } {
  const last = summarize(events).at(-1);
  assert.equal(last?.type, 'error', `expected an error, got ${JSON.stringify(summarize(events))}`);
  const { reason, status, code } = last as Extract<Summary, { type: 'error' }>;
  return { reason, status, code };
}
function heads(events: readonly Http1Event[]) {
  return events.flatMap((event) => (event.type === 'head' ? [event.head] : []));
}
function bodyText(events: readonly Http1Event[]): string {
  return events.map((event) => (event.type === 'body' ? event.data.toString('latin1') : '')).join('');
}

// ------------------------------------------------------------------------------------------------------- requests

describe('http1 requests: framing', () => {
  it('a GET without length fields has no body (RFC 9112 §6.3 rule 7)', () => {
    const input = 'GET /status?x=1 HTTP/1.1\r\nHost: device\r\nAccept: */*\r\n\r\n';
    const events = frame('request', input);
    assert.equal(types(events), 'head end');
    const [head] = heads(events);
    assert.ok(head?.kind === 'request');
    assert.equal(head.method, 'GET');
    assert.equal(head.target, '/status?x=1');
    assert.equal(head.version, '1.1');
    assert.deepEqual(head.body, { kind: 'none' });
    assert.equal(head.keepAlive, true);
    assert.equal(head.expectContinue, false);
    assert.deepEqual(head.headers, [
      { name: 'Host', value: 'device' },
      { name: 'Accept', value: '*/*' },
    ]);
    assert.equal(head.raw.toString('latin1'), input, 'the head is forwarded byte for byte');
  });

  it('header names keep their case and order; values lose only surrounding whitespace', () => {
    const input = 'GET / HTTP/1.1\r\nhOsT:   device  \r\nX-B: 2\r\nx-a:\t1 2\t\r\nEmpty:\r\n\r\n';
    const [head] = heads(frame('request', input));
    assert.deepEqual(head?.headers, [
      { name: 'hOsT', value: 'device' },
      { name: 'X-B', value: '2' },
      { name: 'x-a', value: '1 2' },
      { name: 'Empty', value: '' },
    ]);
  });

  it('a Content-Length body is emitted as slices and then end', () => {
    const events = frame('request', 'POST /w HTTP/1.1\r\nHost: d\r\nContent-Length: 5\r\n\r\nhello');
    assert.equal(types(events), 'head body end');
    assert.deepEqual(heads(events)[0]?.body, { kind: 'length', length: 5 });
    assert.equal(bodyText(events), 'hello');
  });

  it('Content-Length: 0 ends the message at the head', () => {
    const events = frame('request', 'POST / HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n');
    assert.equal(types(events), 'head end');
  });

  it('leading zeros in Content-Length are decimal (RFC 9110 §8.6: 1*DIGIT)', () => {
    const events = frame('request', 'POST / HTTP/1.1\r\nHost: d\r\nContent-Length: 010\r\n\r\n0123456789');
    assert.equal(types(events), 'head body end');
    assert.equal(bodyText(events), '0123456789');
  });

  it('chunked with extensions and trailers: chunk lines, data slices, trailers on end', () => {
    const input =
      'POST /upload HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n' +
      '5;name=value;flag\r\nhello\r\n' + //     token and bare extension
      '6 ; q="a \\"quoted\\" ;x"\r\n world\r\n' + // BWS and a quoted-string with quoted-pairs
      'A\r\n0123456789\r\n' + //                  upper-case hex
      '0\r\n' + //                               last-chunk
      'Checksum: abc\r\nX-Done: yes\r\n\r\n'; //  trailer section
    const events = frame('request', input);
    assert.deepEqual(heads(events)[0]?.body, { kind: 'chunked' });
    const summary = summarize(events).slice(1);
    assert.deepEqual(summary, [
      { type: 'chunk', size: 5, extensions: ';name=value;flag', wire: '5;name=value;flag\r\n' },
      { type: 'body', data: 'hello' },
      { type: 'chunk', size: 6, extensions: ' ; q="a \\"quoted\\" ;x"', wire: '\r\n6 ; q="a \\"quoted\\" ;x"\r\n' },
      { type: 'body', data: ' world' },
      { type: 'chunk', size: 10, extensions: '', wire: '\r\nA\r\n' },
      { type: 'body', data: '0123456789' },
      { type: 'chunk', size: 0, extensions: '', wire: '\r\n0\r\n' },
      { type: 'end', trailers: [['Checksum', 'abc'], ['X-Done', 'yes']], wire: 'Checksum: abc\r\nX-Done: yes\r\n\r\n' },
    ]);
    assert.equal(wireOf(events).toString('latin1'), input, 'every byte is accounted for, in order');
  });

  it('chunked without trailers ends at the empty line after the last chunk', () => {
    const events = frame('request', 'POST / HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n');
    assert.equal(types(events), 'head chunk end');
  });

  it('pipelined requests in one write are all framed, in order, without losing a byte', () => {
    const input =
      'GET /1 HTTP/1.1\r\nHost: d\r\n\r\n' +
      'POST /2 HTTP/1.1\r\nHost: d\r\nContent-Length: 3\r\n\r\nabc' +
      'PUT /3 HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n' +
      'GET /4 HTTP/1.1\r\nHost: d\r\n\r\n' +
      'GET /5 HTT'; // the start of a sixth, kept for the next push
    const decoder = new Http1Decoder('request');
    const events = decoder.push(Buffer.from(input));
    assert.deepEqual(
      heads(events).map((head) => (head.kind === 'request' ? head.target : '')),
      ['/1', '/2', '/3', '/4'],
    );
    assert.equal(types(events), 'head end head body end head chunk body chunk end head end');
    assert.equal(decoder.bufferedBytes, 'GET /5 HTT'.length);
    assert.equal(decoder.state, 'head');
    const rest = decoder.push(Buffer.from('P/1.1\r\nHost: d\r\n\r\n'));
    assert.equal(heads(rest)[0]?.raw.toString(), 'GET /5 HTTP/1.1\r\nHost: d\r\n\r\n');
    assert.equal(decoder.state, 'idle');
  });

  it('keep-alive follows RFC 9112 §9.3 and input after a closing request is discarded', () => {
    const cases: [string, boolean][] = [
      ['GET / HTTP/1.1\r\nHost: d\r\n\r\n', true],
      ['GET / HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n', false],
      ['GET / HTTP/1.1\r\nHost: d\r\nConnection: keep-alive, CLOSE\r\n\r\n', false],
      ['GET / HTTP/1.0\r\n\r\n', false], //                    1.0 closes unless asked
      ['GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n', true],
    ];
    for (const [input, keepAlive] of cases) {
      const decoder = new Http1Decoder('request');
      const events = decoder.push(Buffer.from(input + 'GET /next HTTP/1.1\r\nHost: d\r\n\r\n'));
      assert.equal(heads(events)[0]?.keepAlive, keepAlive, input);
      assert.equal(heads(events).length, keepAlive ? 2 : 1, input);
      assert.equal(decoder.state, keepAlive ? 'idle' : 'closed', input);
      if (!keepAlive) assert.equal(decoder.discardedBytes, 'GET /next HTTP/1.1\r\nHost: d\r\n\r\n'.length);
    }
  });

  it('Expect: 100-continue is reported for HTTP/1.1 only (RFC 9110 §10.1.1)', () => {
    const fields = 'Content-Length: 2\r\nExpect: 100-Continue\r\n\r\n';
    const [v11] = heads(frame('request', `PUT / HTTP/1.1\r\nHost: d\r\n${fields}`));
    const [v10] = heads(frame('request', `PUT / HTTP/1.0\r\n${fields}`));
    assert.ok(v11?.kind === 'request' && v10?.kind === 'request');
    assert.equal(v11.expectContinue, true);
    assert.equal(v10.expectContinue, false);
  });

  it('empty lines before a request line are skipped, not forwarded (RFC 9112 §2.2)', () => {
    const events = frame('request', '\r\n\r\nGET / HTTP/1.1\r\nHost: d\r\n\r\n');
    assert.equal(types(events), 'head end');
    assert.equal(heads(events)[0]?.raw.toString(), 'GET / HTTP/1.1\r\nHost: d\r\n\r\n');
  });

  it('HTTP/1.0 needs no Host; absolute-form and asterisk-form targets pass', () => {
    assert.equal(types(frame('request', 'GET / HTTP/1.0\r\n\r\n')), 'head end');
    assert.equal(types(frame('request', 'GET http://d/x HTTP/1.1\r\nHost: d\r\n\r\n')), 'head end');
    assert.equal(types(frame('request', 'OPTIONS * HTTP/1.1\r\nHost: d\r\n\r\n')), 'head end');
  });

  it('EOF between requests is clean; EOF inside one is `truncated`', () => {
    const clean = new Http1Decoder('request');
    clean.push(Buffer.from('GET / HTTP/1.1\r\nHost: d\r\n\r\n'));
    assert.deepEqual(clean.end(), []);
    assert.equal(clean.state, 'ended');
    assert.deepEqual(clean.push(Buffer.from('GET')), [], 'no input after end()');
    assert.equal(errorOf(frame('request', 'GET / HTTP/1.1\r\nHo', { eof: true })).reason, 'truncated');
    assert.equal(errorOf(frame('request', 'POST / HTTP/1.1\r\nHost: d\r\nContent-Length: 9\r\n\r\nabc', { eof: true })).reason, 'truncated');
  });
});

describe('http1 requests: refused (smuggling and malformed input)', () => {
  const head = (fields: string, version = '1.1') => `POST / HTTP/${version}\r\nHost: d\r\n${fields}\r\n`;
  // [what, input, reason, status]
  const table: [string, string, string, number][] = [
    // Smuggling: two framings, or one framing read two ways.
    ['Content-Length and Transfer-Encoding', head('Content-Length: 3\r\nTransfer-Encoding: chunked\r\n') + '0\r\n\r\n', 'cl-and-te', 400],
    ['Transfer-Encoding and Content-Length', head('Transfer-Encoding: chunked\r\nContent-Length: 3\r\n') + '0\r\n\r\n', 'cl-and-te', 400],
    ['duplicate differing Content-Length', head('Content-Length: 3\r\nContent-Length: 4\r\n') + 'abcd', 'conflicting-content-length', 400],
    ['Content-Length list with differing values', head('Content-Length: 3, 4\r\n'), 'conflicting-content-length', 400],
    // RFC 9110 §8.6 lets a recipient fold equal values into one; a relay forwarding them verbatim leaves that to the upstream.
    ['Content-Length twice with equal values', head('Content-Length: 3\r\nContent-Length: 3\r\n') + 'abc', 'duplicate-content-length', 400],
    ['Content-Length: 3, 3', head('Content-Length: 3, 3\r\n') + 'abc', 'duplicate-content-length', 400],
    ['Content-Length: -1', head('Content-Length: -1\r\n'), 'bad-content-length', 400],
    ['Content-Length: +5', head('Content-Length: +5\r\n'), 'bad-content-length', 400],
    ['Content-Length: 0x10', head('Content-Length: 0x10\r\n'), 'bad-content-length', 400],
    ['Content-Length: 5 5', head('Content-Length: 5 5\r\n'), 'bad-content-length', 400],
    ['empty Content-Length', head('Content-Length:\r\n'), 'bad-content-length', 400],
    ['Content-Length with an empty list member', head('Content-Length: 5,\r\n'), 'bad-content-length', 400],
    ['Content-Length beyond 2^53', head('Content-Length: 99999999999999999999\r\n'), 'bad-content-length', 400],
    ['Transfer-Encoding: chunked, identity', head('Transfer-Encoding: chunked, identity\r\n'), 'bad-transfer-encoding', 400],
    ['Transfer-Encoding: identity', head('Transfer-Encoding: identity\r\n'), 'bad-transfer-encoding', 400],
    ['Transfer-Encoding: gzip (final coding not chunked)', head('Transfer-Encoding: gzip\r\n'), 'bad-transfer-encoding', 400],
    ['Transfer-Encoding: chunked, chunked', head('Transfer-Encoding: chunked, chunked\r\n'), 'bad-transfer-encoding', 400],
    ['two Transfer-Encoding: chunked lines', head('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n'), 'bad-transfer-encoding', 400],
    ['Transfer-Encoding: xchunked', head('Transfer-Encoding: xchunked\r\n'), 'bad-transfer-encoding', 400],
    ['Transfer-Encoding with an empty member', head('Transfer-Encoding: , chunked\r\n'), 'bad-transfer-encoding', 400],
    ['Transfer-Encoding: chunked followed by NBSP (0xA0 is not whitespace)', head('Transfer-Encoding: chunked\xa0\r\n'), 'bad-transfer-encoding', 400],
    ['Content-Length followed by NBSP', head('Content-Length: 5\xa0\r\n'), 'bad-content-length', 400],
    ['Transfer-Encoding with a vertical tab', head('Transfer-Encoding: chunked\x0b\r\n'), 'bad-header', 400],
    ['Transfer-Encoding: chunked;x=1 (chunked takes no parameters)', head('Transfer-Encoding: chunked;x=1\r\n'), 'bad-transfer-encoding', 400],
    ['Transfer-Encoding in HTTP/1.0 (RFC 9112 §6.1)', 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'te-in-http10', 400],
    ['Transfer-Encoding: gzip, chunked (not understood)', head('Transfer-Encoding: gzip, chunked\r\n'), 'unsupported-transfer-coding', 501],
    // Line syntax (RFC 9112 §2.2, §5).
    ['obs-fold', head('X-Long: a\r\n  continued\r\n'), 'obs-fold', 400],
    ['obs-fold with a tab', head('X-Long: a\r\n\tcontinued\r\n'), 'obs-fold', 400],
    ['whitespace before the first field line', 'GET / HTTP/1.1\r\n Host: d\r\n\r\n', 'obs-fold', 400],
    ['bare CR inside a value', head('X-A: a\rb\r\n'), 'bare-cr', 400],
    ['bare CR ending a line', 'GET / HTTP/1.1\rHost: d\r\n\r\n', 'bare-cr', 400],
    ['bare LF ending a line', 'GET / HTTP/1.1\nHost: d\n\n', 'bare-lf', 400],
    ['whitespace between field name and colon', head('Content-Length : 3\r\n'), 'bad-header', 400],
    ['field line without colon', head('NoColon\r\n'), 'bad-header', 400],
    ['empty field name', head(': value\r\n'), 'bad-header', 400],
    ['Transfer_Encoding (CGI servers read it as Transfer-Encoding)', head('Transfer_Encoding: chunked\r\nContent-Length: 3\r\n'), 'bad-header', 400],
    ['field name with a separator', head('X(a): 1\r\n'), 'bad-header', 400],
    ['NUL in a value', head('X-A: a\0b\r\n'), 'bad-header', 400],
    ['DEL in a value', head('X-A: a\x7fb\r\n'), 'bad-header', 400],
    // Request line (RFC 9112 §3).
    ['two spaces in the request line', 'GET  / HTTP/1.1\r\nHost: d\r\n\r\n', 'bad-start-line', 400],
    ['no version (HTTP/0.9 style)', 'GET /\r\n\r\n', 'bad-start-line', 400],
    ['lower-case http version', 'GET / http/1.1\r\nHost: d\r\n\r\n', 'bad-start-line', 400],
    ['method that is not a token', 'G{T / HTTP/1.1\r\nHost: d\r\n\r\n', 'bad-start-line', 400],
    ['raw UTF-8 in the target', 'GET /caf\xc3\xa9 HTTP/1.1\r\nHost: d\r\n\r\n', 'bad-start-line', 400],
    ['control byte in the target', 'GET /a\x01b HTTP/1.1\r\nHost: d\r\n\r\n', 'bad-start-line', 400],
    ['HTTP/2.0 request line', 'GET / HTTP/2.0\r\nHost: d\r\n\r\n', 'unsupported-version', 505],
    ['HTTP/1.2 request line', 'GET / HTTP/1.2\r\nHost: d\r\n\r\n', 'unsupported-version', 505],
    ['HTTP/1.1 without Host (RFC 9112 §3.2)', 'GET / HTTP/1.1\r\n\r\n', 'missing-host', 400],
    ['two Host lines', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 'duplicate-host', 400],
    // What a one-exchange-at-a-time relay cannot carry.
    ['CONNECT', 'CONNECT device:443 HTTP/1.1\r\nHost: device:443\r\n\r\n', 'connect', 501],
    ['Upgrade: websocket', 'GET /ws HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n', 'upgrade', 501],
    ['Upgrade: h2c (curl --http2)', 'GET / HTTP/1.1\r\nHost: d\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n', 'upgrade', 501],
    // Chunk framing (RFC 9112 §7.1).
    ['chunk size that is not hex', head('Transfer-Encoding: chunked\r\n') + 'zz\r\n', 'bad-chunk', 400],
    ['negative chunk size', head('Transfer-Encoding: chunked\r\n') + '-1\r\n', 'bad-chunk', 400],
    ['0x-prefixed chunk size', head('Transfer-Encoding: chunked\r\n') + '0x5\r\n', 'bad-chunk', 400],
    ['whitespace after the chunk size', head('Transfer-Encoding: chunked\r\n') + '5 \r\nhello\r\n', 'bad-chunk', 400],
    ['empty chunk-size line', head('Transfer-Encoding: chunked\r\n') + '\r\n', 'bad-chunk', 400],
    ['chunk size beyond 2^53', head('Transfer-Encoding: chunked\r\n') + 'fffffffffffffffff\r\n', 'bad-chunk', 400],
    ['chunk data longer than its size', head('Transfer-Encoding: chunked\r\n') + '3\r\nhello\r\n0\r\n\r\n', 'bad-chunk', 400],
    ['chunk data not followed by CRLF', head('Transfer-Encoding: chunked\r\n') + '3\r\nabc0\r\n\r\n', 'bad-chunk', 400],
    ['extension without a name', head('Transfer-Encoding: chunked\r\n') + '3;=x\r\n', 'bad-chunk', 400],
    ['extension with "=" and no value', head('Transfer-Encoding: chunked\r\n') + '3;a=\r\n', 'bad-chunk', 400],
    ['unterminated quoted extension', head('Transfer-Encoding: chunked\r\n') + '3;a="x\r\n', 'bad-chunk', 400],
    ['bare LF inside a quoted extension', head('Transfer-Encoding: chunked\r\n') + '3;a="x\ny"\r\n', 'bare-lf', 400],
    ['obs-fold in trailers', head('Transfer-Encoding: chunked\r\n') + '0\r\nX: a\r\n b\r\n\r\n', 'obs-fold', 400],
  ];
  for (const [what, input, reason, status] of table) {
    it(`${what} → ${status} ${reason}`, () => {
      const events = frame('request', input);
      assert.deepEqual(errorOf(events), { reason, status, code: ErrorCodes.FRAME });
      assert.equal(events.filter((e) => e.type === 'error').length, 1, 'nothing follows an error');
    });
  }

  it('refusals are the same when the input arrives one byte at a time', () => {
    for (const [what, input, reason, status] of table) {
      assert.deepEqual(errorOf(frame('request', input, { sizes: [1] })), { reason, status, code: ErrorCodes.FRAME }, what);
    }
  });

  it('a dead decoder stays dead: every later push returns the same error, and nothing is buffered', () => {
    const decoder = new Http1Decoder('request');
    const [first] = decoder.push(Buffer.from('GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: d\r\n\r\n'));
    assert.ok(first?.type === 'error');
    assert.equal(first.error.reason, 'missing-host');
    assert.equal(decoder.state, 'failed');
    assert.equal(decoder.error, first.error);
    assert.equal(decoder.bufferedBytes, 0);
    const later = decoder.push(Buffer.from('GET / HTTP/1.1\r\nHost: d\r\n\r\n'));
    assert.equal(later.length, 1);
    assert.ok(later[0]?.type === 'error' && later[0].error === first.error);
    assert.deepEqual(decoder.end(), []);
    assert.deepEqual(decoder.push(Buffer.from('x')), [], 'nothing after end()');
  });

  it('a head is an owned copy; body slices are views of the pushed chunk', () => {
    const chunk = Buffer.from('POST / HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\n\r\nhi');
    const [head, body] = new Http1Decoder('request').push(chunk);
    assert.ok(head?.type === 'head' && body?.type === 'body');
    chunk.fill(0x21); // the engine's buffer is reused or freed
    assert.equal(head.head.raw.toString(), 'POST / HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\n\r\n');
    assert.equal(body.data.toString(), '!!');
  });

  it('a header section over MAX_HEADER_BYTES is refused as soon as the bound is passed', () => {
    const decoder = new Http1Decoder('request', { maxHeaderBytes: 1024 });
    const events: Http1Event[] = [];
    events.push(...decoder.push(Buffer.from('GET / HTTP/1.1\r\nHost: d\r\nX-Big: ')));
    for (let i = 0; i < 100 && events.length === 0; i++) {
      events.push(...decoder.push(Buffer.alloc(100, 'a')));
      assert.ok(decoder.bufferedBytes <= 1024, 'never holds more than the bound');
    }
    assert.deepEqual(errorOf(events), { reason: 'headers-too-large', status: 400, code: ErrorCodes.FRAME_TOO_LARGE });
    assert.equal(decoder.bufferedBytes, 0);
  });

  it('the default bound is 16384 bytes, start line and empty line included', () => {
    const prefix = 'GET / HTTP/1.1\r\nHost: d\r\nX: ';
    const fits = prefix + 'a'.repeat(DEFAULT_MAX_HEADER_BYTES - prefix.length - 4) + '\r\n\r\n';
    assert.equal(fits.length, DEFAULT_MAX_HEADER_BYTES);
    assert.equal(types(frame('request', fits)), 'head end');
    const over = prefix + 'a'.repeat(DEFAULT_MAX_HEADER_BYTES - prefix.length - 3) + '\r\n\r\n';
    assert.equal(errorOf(frame('request', over)).reason, 'headers-too-large');
  });

  it('endless empty lines before a request line still count against the bound', () => {
    assert.equal(errorOf(frame('request', '\r\n'.repeat(DEFAULT_MAX_HEADER_BYTES))).reason, 'headers-too-large');
  });

  it('an oversized chunk-size line or trailer section is refused with FRAME_TOO_LARGE', () => {
    const chunked = 'POST / HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n';
    const longExtension = frame('request', chunked + `5;${'e'.repeat(5000)}\r\nhello\r\n`);
    assert.deepEqual(errorOf(longExtension), { reason: 'chunk-line-too-large', status: 400, code: ErrorCodes.FRAME_TOO_LARGE });
    const longTrailers = frame('request', chunked + `0\r\nX: ${'t'.repeat(DEFAULT_MAX_HEADER_BYTES)}\r\n\r\n`);
    assert.deepEqual(errorOf(longTrailers), { reason: 'trailers-too-large', status: 400, code: ErrorCodes.FRAME_TOO_LARGE });
  });
});

// ------------------------------------------------------------------------------------------------------ responses

describe('http1 responses: framing by request method and status', () => {
  it('a Content-Length response', () => {
    const events = frame('response', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi', { methods: ['GET'] });
    assert.equal(types(events), 'head body end');
    const [head] = heads(events);
    assert.ok(head?.kind === 'response');
    assert.equal(head.status, 200);
    assert.equal(head.reason, 'OK');
    assert.equal(head.requestMethod, 'GET');
    assert.equal(head.interim, false);
    assert.equal(head.closeDelimited, false);
    assert.equal(head.keepAlive, true);
    assert.equal(bodyText(events), 'hi');
  });

  it('a chunked response with trailers', () => {
    const input = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n0\r\nServer-Timing: 5\r\n\r\n';
    const events = frame('response', input, { methods: ['GET'] });
    assert.equal(types(events), 'head chunk body chunk end');
    assert.equal(bodyText(events), 'abc');
    assert.deepEqual(summarize(events).at(-1), { type: 'end', trailers: [['Server-Timing', '5']], wire: 'Server-Timing: 5\r\n\r\n' });
    assert.equal(wireOf(events).toString(), input);
  });

  it('a response to HEAD has no body whatever its Content-Length or Transfer-Encoding say (RFC 9112 §6.3 rule 1)', () => {
    const input =
      'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n' + //        answers HEAD: no body
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' + //  answers HEAD: no body
      'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc'; //          answers GET
    const events = frame('response', input, { methods: ['HEAD', 'HEAD', 'GET'] });
    assert.equal(types(events), 'head end head end head body end');
    assert.deepEqual(heads(events).map((h) => h.body.kind), ['none', 'none', 'length']);
    assert.equal(bodyText(events), 'abc');
  });

  it('100 Continue is a message of its own before the final response (RFC 9110 §15.2)', () => {
    const input = 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok';
    const decoder = new Http1Decoder('response');
    decoder.expectResponseTo('PUT');
    const first = decoder.push(Buffer.from(input.slice(0, 25)));
    assert.equal(types(first), 'head end');
    const [interim] = heads(first);
    assert.ok(interim?.kind === 'response');
    assert.equal(interim.status, 100);
    assert.equal(interim.interim, true);
    assert.equal(decoder.awaitingResponses, 1, 'the final response is still awaited');
    const rest = decoder.push(Buffer.from(input.slice(25)));
    assert.equal(types(rest), 'head body end');
    assert.equal(decoder.awaitingResponses, 0);
    assert.equal(decoder.state, 'idle');
  });

  it('several 1xx (102, 103 Early Hints with fields) precede the final response', () => {
    const input =
      'HTTP/1.1 102 Processing\r\n\r\n' +
      'HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n' +
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx';
    const events = frame('response', input, { methods: ['GET'] });
    assert.equal(types(events), 'head end head end head body end');
    assert.deepEqual(heads(events).map((h) => (h.kind === 'response' ? h.interim : null)), [true, true, false]);
  });

  it('204 and 304 have no body even with Content-Length', () => {
    const input = 'HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\nETag: "x"\r\n\r\n';
    const events = frame('response', input, { methods: ['DELETE', 'GET'] });
    assert.equal(types(events), 'head end head end');
  });

  it('a response without length fields is delimited by close: closeDelimited, not keep-alive, ended by end()', () => {
    const decoder = new Http1Decoder('response');
    decoder.expectResponseTo('GET');
    const events = decoder.push(Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, '));
    events.push(...decoder.push(Buffer.from('part two')));
    assert.equal(events.filter((e) => e.type === 'body').length, 2, 'each push gives its body slice');
    assert.equal(types(events), 'head body');
    const [head] = heads(events);
    assert.ok(head?.kind === 'response');
    assert.deepEqual(head.body, { kind: 'close' });
    assert.equal(head.closeDelimited, true);
    assert.equal(head.keepAlive, false);
    const tail = decoder.end();
    assert.equal(types(tail), 'end');
    assert.equal(bodyText(events), 'part one, part two');
    assert.equal(decoder.state, 'ended');
  });

  it('a final coding other than chunked makes a response close-delimited (RFC 9112 §6.3 rule 4)', () => {
    const events = frame('response', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b', { methods: ['GET'], eof: true });
    assert.equal(types(events), 'head body end');
    assert.equal(heads(events)[0]?.kind === 'response' && heads(events)[0]?.body.kind, 'close');
  });

  it('HTTP/1.0 responses close unless keep-alive; later bytes are discarded', () => {
    const decoder = new Http1Decoder('response');
    decoder.expectResponseTo('GET');
    const events = decoder.push(Buffer.from('HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nxjunk'));
    assert.equal(types(events), 'head body end');
    assert.equal(heads(events)[0]?.keepAlive, false);
    assert.equal(decoder.state, 'closed');
    assert.equal(decoder.discardedBytes, 4);
    const keep = frame('response', 'HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n', { methods: ['GET'] });
    assert.equal(heads(keep)[0]?.keepAlive, true);
  });

  it('equal repeated Content-Length values on a response count once (RFC 9110 §8.6)', () => {
    const events = frame('response', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2, 2\r\n\r\nhi', { methods: ['GET'] });
    assert.equal(types(events), 'head body end');
  });

  it('Connection: close on a response ends the connection after it', () => {
    const events = frame('response', 'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n', { methods: ['GET'] });
    assert.equal(heads(events)[0]?.keepAlive, false);
  });

  it('Connection: close on a 100 Continue does not end the exchange', () => {
    const events = frame('response', 'HTTP/1.1 100 Continue\r\nConnection: close\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', { methods: ['POST'] });
    assert.equal(types(events), 'head end head end');
  });

  it('a response fed one byte at a time gives the same events as one push', () => {
    const input =
      'HTTP/1.1 100 Continue\r\n\r\n' +
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n4;a="b"\r\nwxyz\r\n1\r\n!\r\n0\r\nT: 2\r\n\r\n' +
      'HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found';
    const methods = ['POST', 'GET'];
    const whole = frame('response', input, { methods });
    const bytewise = frame('response', input, { methods, sizes: [1] });
    assert.deepEqual(summarize(bytewise), summarize(whole));
    assert.equal(wireOf(bytewise).toString(), input);
  });

  it('an empty reason phrase, with or without its SP, is accepted', () => {
    assert.equal(types(frame('response', 'HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n', { methods: ['GET'] })), 'head end');
    assert.equal(types(frame('response', 'HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n', { methods: ['GET'] })), 'head end');
  });

  it('bare LF line endings are accepted from upstreams (RFC 9112 §2.2 MAY), unless allowBareLf is false', () => {
    const input = 'HTTP/1.1 200 OK\nContent-Length: 2\n\nhi';
    assert.equal(types(frame('response', input, { methods: ['GET'] })), 'head body end');
    const strict = new Http1Decoder('response', { allowBareLf: false });
    strict.expectResponseTo('GET');
    assert.equal(errorOf(strict.push(Buffer.from(input))).reason, 'bare-lf');
  });
});

describe('http1 responses: refused, always with 502 for the waiting client', () => {
  const table: [string, string, string[], string][] = [
    ['Content-Length and Transfer-Encoding', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n', ['GET'], 'cl-and-te'],
    ['differing Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\n', ['GET'], 'conflicting-content-length'],
    ['Content-Length: -1', 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', ['GET'], 'bad-content-length'],
    ['chunked twice', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n', ['GET'], 'bad-transfer-encoding'],
    ['Transfer-Encoding in HTTP/1.0', 'HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', ['GET'], 'te-in-http10'],
    ['obs-fold (a relay cannot unfold, RFC 9112 §5.2)', 'HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n', ['GET'], 'obs-fold'],
    ['101 Switching Protocols nobody asked for', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n', ['GET'], 'switching-protocols'],
    ['a tunnel opened by a 2xx to CONNECT', 'HTTP/1.1 200 Connection Established\r\n\r\n', ['CONNECT'], 'connect'],
    ['HTTP/2.0 status line', 'HTTP/2.0 200 OK\r\n\r\n', ['GET'], 'unsupported-version'],
    ['two-digit status', 'HTTP/1.1 20 OK\r\n\r\n', ['GET'], 'bad-start-line'],
    ['status below 100', 'HTTP/1.1 099 Odd\r\n\r\n', ['GET'], 'bad-start-line'],
    ['not HTTP at all', 'SSH-2.0-OpenSSH_9.6\r\n\r\n', ['GET'], 'bad-start-line'],
    ['bad chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n', ['GET'], 'bad-chunk'],
    ['bytes while no request is outstanding', 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n', [], 'unsolicited-response'],
    ['bytes after the last awaited response', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n', ['GET'], 'unsolicited-response'],
  ];
  for (const [what, input, methods, reason] of table) {
    it(`${what} → 502 ${reason}`, () => {
      assert.deepEqual(errorOf(frame('response', input, { methods })), { reason, status: 502, code: ErrorCodes.FRAME });
    });
  }

  it('an upstream that closes mid-body, or before answering, gives `truncated`', () => {
    const midBody = frame('response', 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc', { methods: ['GET'], eof: true });
    assert.equal(types(midBody), 'head body error', 'the partial response was framed before the error');
    assert.deepEqual(errorOf(midBody), { reason: 'truncated', status: 502, code: ErrorCodes.FRAME });
    assert.equal(errorOf(frame('response', '', { methods: ['GET'], eof: true })).reason, 'truncated');
    assert.equal(errorOf(frame('response', 'HTTP/1.1 100 Continue\r\n\r\n', { methods: ['GET'], eof: true })).reason, 'truncated');
    assert.equal(errorOf(frame('response', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab', { methods: ['GET'], eof: true })).reason, 'truncated');
    assert.deepEqual(frame('response', '', { eof: true }), [], 'an idle upstream closing is not an error');
  });

  it('expectResponseTo() belongs to response decoders', () => {
    assert.throws(() => new Http1Decoder('request').expectResponseTo('GET'), TypeError);
  });
});

// ------------------------------------------------------------------------------------------------------ streaming

describe('http1 streaming', () => {
  const MIB = 1024 * 1024;
  const PIECE = 64 * 1024;

  it('a 100 MB Content-Length body passes as slices of the pushed chunks, with nothing buffered', () => {
    const total = 100 * MIB;
    const decoder = new Http1Decoder('request');
    const headEvents = decoder.push(Buffer.from(`PUT /firmware HTTP/1.1\r\nHost: d\r\nContent-Length: ${total}\r\n\r\n`));
    assert.equal(types(headEvents), 'head');
    const piece = Buffer.alloc(PIECE, 0x5a);
    const arrayBuffersBefore = process.memoryUsage().arrayBuffers;
    let received = 0;
    let ended = 0;
    for (let pushed = 0; pushed < total; pushed += PIECE) {
      for (const event of decoder.push(piece)) {
        if (event.type === 'body') {
          assert.equal(event.data.buffer, piece.buffer, 'a slice, not a copy');
          received += event.data.length;
        } else if (event.type === 'end') ended++;
        else assert.fail(`unexpected ${event.type}`);
      }
      assert.equal(decoder.bufferedBytes, 0);
    }
    assert.equal(received, total);
    assert.equal(ended, 1);
    assert.equal(decoder.state, 'idle');
    assert.ok(process.memoryUsage().arrayBuffers - arrayBuffersBefore < 16 * MIB, 'no growth with the body size');
  });

  it('a 100 MB chunked body, chunk lines split across pushes, keeps at most one chunk line buffered', () => {
    const chunkSize = 60000;
    const chunks = Math.ceil((100 * MIB) / chunkSize);
    const decoder = new Http1Decoder('response');
    decoder.expectResponseTo('GET');
    decoder.push(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'));
    // Each push pair carries: "...data\r\nEA6" | "0\r\ndata..." so a chunk-size line always spans two pushes.
    const sizeLine = Buffer.from(`${chunkSize.toString(16)}\r\n`);
    const first = Buffer.concat([sizeLine, Buffer.alloc(chunkSize / 2, 1)]);
    const second = Buffer.concat([Buffer.alloc(chunkSize / 2, 2), Buffer.from('\r\n'), sizeLine.subarray(0, 3)]);
    const third = Buffer.concat([sizeLine.subarray(3), Buffer.alloc(chunkSize / 2, 1)]);
    let received = 0;
    let maxBuffered = 0;
    const count = (events: Http1Event[]) => {
      for (const event of events) {
        if (event.type === 'body') received += event.data.length;
        if (event.type === 'error') assert.fail(event.error.message);
      }
      maxBuffered = Math.max(maxBuffered, decoder.bufferedBytes);
    };
    count(decoder.push(first));
    for (let i = 1; i < chunks; i++) {
      count(decoder.push(second));
      count(decoder.push(third));
    }
    count(decoder.push(Buffer.alloc(chunkSize / 2, 2)));
    const tail = decoder.push(Buffer.from('\r\n0\r\n\r\n'));
    assert.equal(types(tail), 'chunk end');
    assert.equal(received, chunks * chunkSize);
    assert.ok(maxBuffered <= 5, `buffered ${maxBuffered} bytes`);
  });
});

// ----------------------------------------------------------------------------------------------------- properties

const tokenArb = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,10}$/);
const valueArb = fc.stringMatching(/^([\x21-\x7e]([\x20-\x7e]{0,16}[\x21-\x7e])?)?$/);
const FRAMING_NAMES = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'upgrade', 'expect', 'te', 'trailer']);
const fieldsArb = fc.array(fc.tuple(tokenArb.filter((name) => !FRAMING_NAMES.has(name.toLowerCase())), valueArb), { maxLength: 4 });
const bytesArb = fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes));
const chunkExtArb = fc.constantFrom('', ';a', ';a=b', ' ; name="q \\" v"', ';x=1;y');
const chunksArb = fc.array(fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 80 }).map((b) => Buffer.from(b)), chunkExtArb), { maxLength: 4 });
const sizesArb = fc.array(fc.integer({ min: 1, max: 48 }), { minLength: 1, maxLength: 8 });

type BodySpec = { kind: 'none' } | { kind: 'length'; data: Buffer } | { kind: 'chunked'; chunks: [Buffer, string][]; trailers: [string, string][] };
const bodyArb: fc.Arbitrary<BodySpec> = fc.oneof(
  fc.constant({ kind: 'none' as const }),
  bytesArb.map((data) => ({ kind: 'length' as const, data })),
  fc.record({ kind: fc.constant('chunked' as const), chunks: chunksArb, trailers: fieldsArb }),
);

function fieldLines(fields: readonly [string, string][]): string {
  return fields.map(([name, value]) => `${name}: ${value}\r\n`).join('');
}

function serializeBody(body: BodySpec): { fields: string; bytes: Buffer; data: Buffer } {
  if (body.kind === 'none') return { fields: '', bytes: Buffer.alloc(0), data: Buffer.alloc(0) };
  if (body.kind === 'length') return { fields: `Content-Length: ${body.data.length}\r\n`, bytes: body.data, data: body.data };
  const parts: Buffer[] = [];
  for (const [data, ext] of body.chunks) parts.push(Buffer.from(`${data.length.toString(16)}${ext}\r\n`), data, Buffer.from('\r\n'));
  parts.push(Buffer.from(`0\r\n${fieldLines(body.trailers)}\r\n`, 'latin1'));
  return { fields: 'Transfer-Encoding: chunked\r\n', bytes: Buffer.concat(parts), data: Buffer.concat(body.chunks.map(([d]) => d)) };
}

const requestArb = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'),
  target: fc.stringMatching(/^\/[A-Za-z0-9._~%!$&'()*+,;=:@/?-]{0,24}$/),
  fields: fieldsArb,
  body: bodyArb,
});

const responseArb = fc.record({
  method: fc.constantFrom('GET', 'POST', 'HEAD'),
  interim: fc.constantFrom<number[]>([], [100], [103, 100]),
  status: fc.constantFrom(200, 201, 204, 304, 404, 500),
  fields: fieldsArb,
  body: bodyArb,
});

describe('http1 properties', () => {
  it('any chunking of a sequence of valid requests gives the same events, and the wire reproduces the input', () => {
    fc.assert(
      fc.property(fc.array(requestArb, { minLength: 1, maxLength: 4 }), sizesArb, (requests, sizes) => {
        const parts: Buffer[] = [];
        for (const request of requests) {
          const body = serializeBody(request.body);
          parts.push(Buffer.from(`${request.method} ${request.target} HTTP/1.1\r\nHost: device\r\n${fieldLines(request.fields)}${body.fields}\r\n`, 'latin1'), body.bytes);
        }
        const input = Buffer.concat(parts);
        const whole = frame('request', input);
        assert.deepEqual(summarize(frame('request', input, { sizes })), summarize(whole));
        assert.ok(wireOf(whole).equals(input));
        const found = heads(whole);
        assert.deepEqual(found.map((head) => (head.kind === 'request' ? head.target : '')), requests.map((r) => r.target));
        assert.equal(whole.filter((e) => e.type === 'end').length, requests.length);
        const expectedBody = Buffer.concat(requests.map((r) => serializeBody(r.body).data));
        assert.ok(Buffer.concat(whole.flatMap((e) => (e.type === 'body' ? [e.data] : []))).equals(expectedBody));
      }),
      { numRuns: 300 },
    );
  });

  it('any chunking of responses, given their methods, gives the same events; the last may run to close', () => {
    fc.assert(
      fc.property(fc.array(responseArb, { minLength: 1, maxLength: 4 }), fc.boolean(), bytesArb, sizesArb, (responses, lastByClose, closeBody, sizes) => {
        const parts: Buffer[] = [];
        let expectedBody = Buffer.alloc(0);
        for (const response of responses) {
          for (const status of response.interim) parts.push(Buffer.from(`HTTP/1.1 ${status} Interim\r\n\r\n`));
          const bodyless = response.method === 'HEAD' || response.status === 204 || response.status === 304;
          // No length fields would make it close-delimited; that case is generated separately, last.
          const body = serializeBody(response.body.kind === 'none' ? { kind: 'length', data: Buffer.alloc(0) } : response.body);
          // A bodyless response may still carry the length fields it would have had (RFC 9110 §8.6 allows it for HEAD/304).
          parts.push(Buffer.from(`HTTP/1.1 ${response.status} Reason\r\n${fieldLines(response.fields)}${body.fields}\r\n`, 'latin1'));
          if (!bodyless) {
            parts.push(body.bytes);
            expectedBody = Buffer.concat([expectedBody, body.data]);
          }
        }
        if (lastByClose) {
          parts.push(Buffer.from('HTTP/1.1 200 OK\r\n\r\n'), closeBody);
          expectedBody = Buffer.concat([expectedBody, closeBody]);
        }
        const methods = [...responses.map((r) => r.method), ...(lastByClose ? ['GET'] : [])];
        const input = Buffer.concat(parts);
        const whole = frame('response', input, { methods, eof: true });
        assert.deepEqual(summarize(frame('response', input, { methods, sizes, eof: true })), summarize(whole));
        assert.ok(!whole.some((e) => e.type === 'error'), JSON.stringify(summarize(whole).filter((e) => e.type === 'error')));
        assert.ok(wireOf(whole).equals(input));
        const finals = heads(whole).filter((head) => head.kind === 'response' && !head.interim);
        assert.equal(finals.length, methods.length);
        assert.ok(Buffer.concat(whole.flatMap((e) => (e.type === 'body' ? [e.data] : []))).equals(expectedBody));
      }),
      { numRuns: 300 },
    );
  });

  it('arbitrary bytes never throw, and never account for more bytes than were pushed', () => {
    const noise = fc.uint8Array({ maxLength: 400 }).map((bytes) => Buffer.from(bytes));
    // Valid-looking prefixes get the fuzz past the start line into headers and bodies.
    const prefix = fc.constantFrom(
      '',
      'GET / HTTP/1.1\r\nHost: d\r\n',
      'POST / HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: d\r\nContent-Length: 20\r\n\r\n',
      'HTTP/1.1 200 OK\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n',
    );
    fc.assert(
      fc.property(prefix, noise, sizesArb, fc.constantFrom<'request' | 'response'>('request', 'response'), (start, bytes, sizes, side) => {
        const input = Buffer.concat([Buffer.from(start), bytes]);
        const decoder = new Http1Decoder(side, { maxHeaderBytes: 256 });
        if (side === 'response') for (const method of ['GET', 'HEAD', 'GET']) decoder.expectResponseTo(method);
        const events: Http1Event[] = [];
        for (const piece of split(input, sizes)) {
          events.push(...decoder.push(piece));
          assert.ok(decoder.bufferedBytes <= 256, `buffered ${decoder.bufferedBytes}`);
        }
        events.push(...decoder.end());
        assert.ok(wireOf(events).length <= input.length);
        const firstError = events.findIndex((e) => e.type === 'error');
        if (firstError >= 0) {
          const error = (events[firstError] as Extract<Http1Event, { type: 'error' }>).error;
          assert.ok(events.slice(firstError).every((e) => e.type === 'error' && e.error === error), 'a dead decoder stays dead');
          assert.equal(decoder.bufferedBytes, 0);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
