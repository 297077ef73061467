/**
 * The mux dispatcher without sockets: a fake upstream and fake clients record the order of every write.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig, type MuxModeConfig } from '../../../src/config/load.js';
import { Dispatcher, type MuxClientPort, type MuxRequest } from '../../../src/engines/mux/dispatcher.js';
import { framerFor } from '../../../src/engines/mux/framers.js';
import type { Upstream } from '../../../src/engines/mux/upstream.js';
import { createLogger } from '../../../src/log.js';
import { Metrics } from '../../../src/metrics.js';
import { encodeModbusTcp, ModbusTcpDecoder } from '../../../src/protocols/modbus-tcp.js';

/** Writes in the order they would reach the wire; a corked upstream holds its writes until uncorked. */
function harness(maxInflight = 1) {
  const wire: string[] = [];
  const upstreamWrites: Buffer[] = [];
  let corked: Buffer[] | undefined;
  const upstream = {
    state: 'up',
    usable: true,
    write(bytes: Buffer) {
      if (corked) corked.push(bytes);
      else {
        upstreamWrites.push(bytes);
        wire.push('upstream');
      }
      return true;
    },
    batch(fn: () => void) {
      corked = [];
      try {
        fn();
      } finally {
        const held = corked;
        corked = undefined;
        if (held.length > 0) {
          upstreamWrites.push(...held);
          wire.push(`upstream ×${held.length}`);
        }
      }
    },
    markHealthy() {},
    reset() {},
    dial() {},
  } as unknown as Upstream;
  const { mux } = loadConfig({ TARGET: '127.0.0.1:1', PROTOCOL: 'modbus' }).config as MuxModeConfig;
  const metrics = new Metrics('mux');
  const dispatcher = new Dispatcher({
    config: mux,
    framer: framerFor(mux),
    maxInflight,
    upstream: () => upstream,
    log: createLogger({ level: 'silent', format: 'json' }),
    metrics,
  });
  const client = (name: string): MuxClientPort => ({
    queue: [],
    inRing: false,
    outbox: [] as MuxRequest[],
    unanswered: 0,
    pendingWrites: 0,
    lastWriteAnsweredTick: 0,
    gone: false,
    send: () => void wire.push(name),
    close: () => void wire.push(`${name} closed`),
    released: () => {},
  });
  return { dispatcher, wire, upstreamWrites, client };
}

/** A read of one register at `address` (different addresses: identical reads would be coalesced). */
const readRequest = (transactionId: number, address = transactionId) =>
  new ModbusTcpDecoder().push(encodeModbusTcp(transactionId, 1, Buffer.from([3, 0, address, 0, 1]))).frames[0]!;

/** The device's answer to an upstream request (same transaction id, one register). */
function answerTo(request: Buffer): Buffer {
  const frame = new ModbusTcpDecoder().push(request).frames[0]!;
  return encodeModbusTcp(frame.transactionId, frame.unitId, Buffer.from([3, 2, 0, 42]));
}

describe('Dispatcher', () => {
  it('sends the next queued request before it writes the answer to its client (the device never waits on that write)', (t) => {
    const { dispatcher, wire, upstreamWrites, client } = harness();
    t.after(() => dispatcher.stop());
    const a = client('a');
    const b = client('b');
    dispatcher.submit(a, readRequest(7));
    dispatcher.submit(b, readRequest(9));
    assert.deepEqual(wire, ['upstream'], 'MAX_INFLIGHT=1: one request sent, one queued');
    dispatcher.onUpstreamData(answerTo(upstreamWrites[0]!));
    assert.deepEqual(wire, ['upstream', 'upstream', 'a'], "b's request goes up before a's answer is written");
    dispatcher.onUpstreamData(answerTo(upstreamWrites[1]!));
    assert.deepEqual(wire, ['upstream', 'upstream', 'a', 'b']);
  });

  it('sends the requests that follow several replies of one read in one write', (t) => {
    const { dispatcher, wire, upstreamWrites, client } = harness(2);
    t.after(() => dispatcher.stop());
    const [a, b] = ['a', 'b'].map(client);
    dispatcher.submit(a!, readRequest(1));
    dispatcher.submit(b!, readRequest(2));
    dispatcher.submit(a!, readRequest(3));
    dispatcher.submit(b!, readRequest(4));
    assert.deepEqual(wire, ['upstream', 'upstream'], 'MAX_INFLIGHT=2');
    // Both replies in one chunk: the two queued requests leave together, after the answers.
    dispatcher.onUpstreamData(Buffer.concat(upstreamWrites.slice(0, 2).map(answerTo)));
    assert.deepEqual(wire, ['upstream', 'upstream', 'a', 'b', 'upstream ×2']);
    assert.equal(upstreamWrites.length, 4);
  });
});
