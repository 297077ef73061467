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
    q.push(poller, 'p1');
    assert.deepEqual([q.shift(), q.shift(), q.shift(), q.shift(), q.shift()], ['f2', 'p1', 'f3', 'f4', undefined]);
    assert.equal(q.size, 0);
    assert.equal(flooder.inRing, false);
  });

  it('a newcomer joins at the back: it is served after every client already waiting has had a turn', () => {
    const q = new FairQueue<string, QueueOwner<string>>();
    const [a, b, c] = [owner(), owner(), owner()];
    q.push(a, 'a0');
    q.push(a, 'a1');
    q.push(b, 'b0');
    q.push(b, 'b1');
    assert.equal(q.shift(), 'a0');
    q.push(c, 'c0');
    assert.deepEqual([q.shift(), q.shift(), q.shift(), q.shift()], ['b0', 'a1', 'c0', 'b1']);
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
