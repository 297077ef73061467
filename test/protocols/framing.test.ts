import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ByteQueue } from '../../src/protocols/framing.js';
import { PROPERTY_RUNS, cutsArb, splitAt } from './codec-harness.js';

describe('ByteQueue', () => {
  it('peek joins bytes across chunks without consuming them; take consumes', () => {
    const queue = new ByteQueue();
    queue.push(Buffer.from([1]));
    queue.push(Buffer.from([2, 3]));
    queue.push(Buffer.from([4, 5, 6]));
    assert.equal(queue.peek(7), undefined);
    assert.deepEqual(queue.peek(4), Buffer.from([1, 2, 3, 4]));
    assert.equal(queue.length, 6);
    assert.deepEqual(queue.take(2), Buffer.from([1, 2]));
    assert.deepEqual(queue.peek(4), Buffer.from([3, 4, 5, 6]));
    assert.deepEqual(queue.take(4), Buffer.from([3, 4, 5, 6]));
    assert.equal(queue.length, 0);
    assert.deepEqual(queue.peek(0), Buffer.alloc(0));
    assert.throws(() => queue.take(1), RangeError);
  });

  it('take returns a copy that does not alias the pushed chunk', () => {
    const queue = new ByteQueue();
    const chunk = Buffer.from([1, 2, 3]);
    queue.push(chunk);
    const taken = queue.take(3);
    chunk.fill(9);
    assert.deepEqual(taken, Buffer.from([1, 2, 3]));
  });

  it('any sequence of peeks and takes over any chunking reads the stream in order', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 500 }),
        cutsArb,
        fc.array(fc.tuple(fc.boolean(), fc.nat({ max: 40 })), { maxLength: 60 }),
        (data, cuts, operations) => {
          const stream = Buffer.from(data);
          const queue = new ByteQueue();
          for (const chunk of splitAt(stream, cuts)) queue.push(chunk);
          let consumed = 0;
          for (const [isTake, count] of operations) {
            const available = stream.length - consumed;
            if (isTake) {
              const n = Math.min(count, available);
              assert.deepEqual(queue.take(n), stream.subarray(consumed, consumed + n));
              consumed += n;
            } else if (count > available) {
              assert.equal(queue.peek(count), undefined);
            } else {
              assert.deepEqual(queue.peek(count), stream.subarray(consumed, consumed + count));
            }
            assert.equal(queue.length, stream.length - consumed);
          }
        },
      ),
      PROPERTY_RUNS,
    );
  });
});
