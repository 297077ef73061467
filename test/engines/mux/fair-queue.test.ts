/**
 * The per-client round-robin queue of mux mode, without sockets.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FairQueue, type QueueOwner } from '../../../src/engines/mux/fair-queue.js';

const owner = (): QueueOwner<string> => ({ queue: [], inRing: false });

describe('FairQueue', () => {
  it('serves one request per client in turn, so a flooder cannot starve a poller', () => {
    const q = new FairQueue<string, QueueOwner<string>>();
    const flooder = owner();
    const poller = owner();
    for (let i = 0; i < 5; i++) q.push(flooder, `f${i}`);
    q.push(poller, 'p0');
    assert.equal(q.size, 6);
    assert.deepEqual([q.shift(), q.shift(), q.shift()], ['f0', 'p0', 'f1']);
    assert.deepEqual([q.shift(), q.shift(), q.shift(), q.shift()], ['f2', 'f3', 'f4', undefined]);
    assert.equal(q.size, 0);
    assert.equal(flooder.inRing, false);
    assert.equal(poller.inRing, false);
  });

  it('a client that had nothing queued is served next, ahead of the backlogged round (sparse flow first)', () => {
    const q = new FairQueue<string, QueueOwner<string>>();
    const [a, b, poller] = [owner(), owner(), owner()];
    for (let i = 0; i < 4; i++) {
      q.push(a, `a${i}`);
      q.push(b, `b${i}`);
    }
    assert.deepEqual([q.shift(), q.shift(), q.shift()], ['a0', 'b0', 'a1']);
    q.push(poller, 'p0');
    assert.equal(q.shift(), 'p0', 'the poll goes before b1');
    // Once the round has come back to it and found it empty, its next poll is fresh again.
    assert.deepEqual([q.shift(), q.shift()], ['b1', 'a2']);
    assert.equal(poller.inRing, true, 'the round has not reached it yet');
    assert.equal(q.shift(), 'b2');
    assert.equal(poller.inRing, false);
    q.push(poller, 'p1');
    assert.equal(q.shift(), 'p1');
  });

  it('emptying and refilling at once does not earn a second fresh turn: the client waits for its place in the round', () => {
    const q = new FairQueue<string, QueueOwner<string>>();
    const [a, b, gamer] = [owner(), owner(), owner()];
    for (let i = 0; i < 4; i++) {
      q.push(a, `a${i}`);
      q.push(b, `b${i}`);
    }
    assert.deepEqual([q.shift(), q.shift()], ['a0', 'b0']);
    q.push(gamer, 'g0');
    assert.equal(q.shift(), 'g0');
    q.push(gamer, 'g1'); // still scheduled (at the back of the round), so not fresh
    assert.deepEqual([q.shift(), q.shift(), q.shift(), q.shift()], ['a1', 'b1', 'g1', 'a2']);
  });

  it('fresh clients are served in arrival order', () => {
    const q = new FairQueue<string, QueueOwner<string>>();
    const [a, b, c] = [owner(), owner(), owner()];
    q.push(a, 'a0');
    q.push(a, 'a1');
    q.push(b, 'b0');
    q.push(c, 'c0');
    assert.deepEqual([q.shift(), q.shift(), q.shift(), q.shift(), q.shift()], ['a0', 'b0', 'c0', 'a1', undefined]);
  });

  it('remove and removeAll take requests out without disturbing the others', () => {
    const q = new FairQueue<string, QueueOwner<string>>();
    const [a, b] = [owner(), owner()];
    q.push(a, 'a0');
    q.push(a, 'a1');
    q.push(b, 'b0');
    assert.equal(q.remove(a, 'a0'), true);
    assert.equal(q.remove(a, 'zz'), false);
    assert.deepEqual(q.removeAll(b), ['b0']);
    assert.equal(b.inRing, false);
    assert.equal(q.size, 1);
    assert.deepEqual(q.drainAll(), ['a1']);
    assert.equal(q.size, 0);
  });
});
