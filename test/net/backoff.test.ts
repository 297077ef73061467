import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Backoff } from '../../src/net/backoff.js';

describe('backoff', () => {
  it('doubles from min to max with half of each delay random, and starts over after reset', () => {
    const low = new Backoff(200, 10_000, () => 0);
    assert.deepEqual(Array.from({ length: 8 }, () => low.next()), [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    const high = new Backoff(200, 10_000, () => 1);
    assert.deepEqual(Array.from({ length: 8 }, () => high.next()), [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]);
    high.reset();
    assert.equal(high.next(), 200);
  });

  it('spreads instances out (jitter)', () => {
    const delays = new Set(Array.from({ length: 20 }, () => new Backoff(1000, 1000).next()));
    assert.ok(delays.size > 10);
    for (const d of delays) assert.ok(d >= 500 && d <= 1000);
  });
});
