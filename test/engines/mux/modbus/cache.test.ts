/**
 * The read cache as a pure structure (src/engines/mux/modbus/cache.ts): time is an argument, so TTL, invalidation,
 * epochs and the bound are tested exactly.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReadCache } from '../../../../src/engines/mux/modbus/cache.js';

const answer = (n: number) => Buffer.from([0, n, 0, 0, 0, 5, 1, 3, 2, 0, n]);

describe('ReadCache', () => {
  it('an entry is served while at most TTL old (counted from the store), then expires', () => {
    const cache = new ReadCache(1000);
    assert.equal(cache.store('1:3:0:1', 1, answer(1), cache.epochOf(1), 1, 5000), true);
    assert.deepEqual(cache.get('1:3:0:1', 5000)?.answer, answer(1));
    assert.ok(cache.get('1:3:0:1', 6000));
    assert.equal(cache.get('1:3:0:1', 6001), undefined);
    assert.deepEqual(cache.status(6001), { entries: 0, oldestAgeMs: null });
  });

  it('keeps its own copy of the answer', () => {
    const cache = new ReadCache(1000);
    const bytes = answer(1);
    cache.store('k', 1, bytes, cache.epochOf(1), 1, 0);
    bytes.fill(0xee);
    assert.deepEqual(cache.get('k', 1)?.answer, answer(1));
  });

  it("a write sent to a unit drops that unit's entries only", () => {
    const cache = new ReadCache(1000);
    cache.store('1:3:0:1', 1, answer(1), cache.epochOf(1), 1, 0);
    cache.store('2:3:0:1', 2, answer(2), cache.epochOf(2), 2, 0);
    cache.writeSent(1);
    assert.equal(cache.get('1:3:0:1', 1), undefined);
    assert.ok(cache.get('2:3:0:1', 1));
  });

  it('a write to unit 0 (broadcast) drops every entry', () => {
    const cache = new ReadCache(1000);
    cache.store('1:3:0:1', 1, answer(1), cache.epochOf(1), 1, 0);
    cache.store('2:3:0:1', 2, answer(2), cache.epochOf(2), 2, 0);
    const epochOf2 = cache.epochOf(2);
    cache.writeSent(0);
    assert.equal(cache.status(1).entries, 0);
    assert.notEqual(cache.epochOf(2), epochOf2);
  });

  it('a reply to a read sent before a write to its unit is not stored (the write may not be in it)', () => {
    const cache = new ReadCache(1000);
    const epochAtSend = cache.epochOf(1);
    cache.writeSent(1);
    assert.equal(cache.store('1:3:0:1', 1, answer(1), epochAtSend, 1, 0), false);
    assert.equal(cache.get('1:3:0:1', 0), undefined);
    // a write to another unit does not matter
    const epochOf1 = cache.epochOf(1);
    cache.writeSent(2);
    assert.equal(cache.store('1:3:0:1', 1, answer(1), epochOf1, 2, 0), true);
  });

  it('is bounded: beyond maxEntries the oldest goes; a refreshed key counts as new', () => {
    const cache = new ReadCache(10_000, 3);
    for (let i = 0; i < 3; i++) cache.store(`k${i}`, 1, answer(i), cache.epochOf(1), i + 1, i);
    cache.store('k0', 1, answer(9), cache.epochOf(1), 4, 3); // k0 is now the newest
    cache.store('k3', 1, answer(3), cache.epochOf(1), 5, 4); // k1 is the oldest: dropped
    assert.equal(cache.get('k1', 5), undefined);
    assert.ok(cache.get('k0', 5));
    assert.ok(cache.get('k2', 5));
    assert.ok(cache.get('k3', 5));
    assert.deepEqual(cache.status(5), { entries: 3, oldestAgeMs: 3 });
  });

  it('status reports live entries and the age of the oldest one', () => {
    const cache = new ReadCache(100);
    cache.store('a', 1, answer(1), cache.epochOf(1), 1, 0);
    cache.store('b', 1, answer(2), cache.epochOf(1), 2, 50);
    assert.deepEqual(cache.status(60), { entries: 2, oldestAgeMs: 60 });
    assert.deepEqual(cache.status(120), { entries: 1, oldestAgeMs: 70 });
  });
});
