/** Which leader a read may join (src/engines/mux/modbus/coalescing.ts), and readdressing an answer. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CoalescingIndex, readdress } from '../../../../src/engines/mux/modbus/coalescing.js';

interface Leader {
  state: 'queued' | 'inflight' | 'joined' | 'done';
  sentTick: number;
  name: string;
}

describe('CoalescingIndex', () => {
  it('a queued leader can always be joined', () => {
    const index = new CoalescingIndex<Leader>();
    const queued: Leader = { state: 'queued', sentTick: 0, name: 'q' };
    index.add('k', queued);
    assert.equal(index.find('k', 0), queued);
    assert.equal(index.find('k', 1000), queued);
    assert.equal(index.find('other', 0), undefined);
  });

  it('an in-flight leader only by a client whose last write was answered before it was sent (read-your-writes)', () => {
    const index = new CoalescingIndex<Leader>();
    const inflight: Leader = { state: 'inflight', sentTick: 10, name: 'i' };
    index.add('k', inflight);
    assert.equal(index.find('k', 0), inflight);
    assert.equal(index.find('k', 9), inflight);
    assert.equal(index.find('k', 10), undefined);
    assert.equal(index.find('k', 11), undefined);
  });

  it('prefers the earliest eligible in-flight leader, then a queued one', () => {
    const index = new CoalescingIndex<Leader>();
    const old: Leader = { state: 'inflight', sentTick: 5, name: 'old' };
    const recent: Leader = { state: 'inflight', sentTick: 20, name: 'recent' };
    const queued: Leader = { state: 'queued', sentTick: 0, name: 'queued' };
    index.add('k', queued);
    index.add('k', recent);
    index.add('k', old);
    assert.equal(index.find('k', 0)?.name, 'old');
    assert.equal(index.find('k', 7)?.name, 'recent');
    assert.equal(index.find('k', 25)?.name, 'queued');
    index.remove('k', queued);
    assert.equal(index.find('k', 25), undefined);
    index.remove('k', old);
    index.remove('k', recent);
    assert.equal(index.size, 0);
  });

  it('replace hands a leader place to another request', () => {
    const index = new CoalescingIndex<Leader>();
    const a: Leader = { state: 'queued', sentTick: 0, name: 'a' };
    const b: Leader = { state: 'queued', sentTick: 0, name: 'b' };
    index.add('k', a);
    a.state = 'done';
    index.replace('k', a, b);
    assert.equal(index.find('k', 0), b);
    index.remove('k', b);
    assert.equal(index.size, 0);
  });
});

describe('readdress', () => {
  it('copies the ADU with another transaction id and unit id, leaving the original alone', () => {
    const original = Buffer.from('00070000000501030200ff', 'hex');
    const copy = readdress(original, 0x1234, 9);
    assert.equal(copy.toString('hex'), '12340000000509030200ff');
    assert.equal(original.toString('hex'), '00070000000501030200ff');
  });
});
