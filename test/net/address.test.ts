import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AddressError, formatHostPort, normalizeAddress, parseGroupAddress, parseHostPort, parseList } from '../../src/net/address.js';

describe('address parsing', () => {
  it('reads host:port, [v6]:port and group:host:port', () => {
    assert.deepEqual(parseHostPort('10.0.0.1:502'), { host: '10.0.0.1', port: 502 });
    assert.deepEqual(parseHostPort('[::1]:7100'), { host: '::1', port: 7100 });
    assert.deepEqual(parseHostPort('inverter.local:502'), { host: 'inverter.local', port: 502 });
    assert.deepEqual(parseHostPort('[::ffff:10.1.2.3]:1'), { host: '10.1.2.3', port: 1 });
    assert.deepEqual(parseGroupAddress('g1:127.0.0.1:0'), { groupId: 'g1', host: '127.0.0.1', port: 0 });
    assert.deepEqual(parseGroupAddress('plc:[::1]:0'), { groupId: 'plc', host: '::1', port: 0 });
    assert.deepEqual(parseGroupAddress(':10.0.0.1:5'), { groupId: '', host: '10.0.0.1', port: 5 });
  });

  it('refuses what it cannot read, with a reason', () => {
    for (const bad of ['', 'host', ':502', '::1:502', '[::1]502', '[1.2.3.4]:5', 'h:70000', 'h:-1', 'h:', 'bad host:1', 'h:1x']) {
      assert.throws(() => parseHostPort(bad), AddressError, bad);
    }
    for (const bad of ['g1:host', 'g1', 'g1:[::1]']) assert.throws(() => parseGroupAddress(bad), AddressError, bad);
  });

  it('reads comma-separated lists, ignoring empty entries', () => {
    assert.deepEqual(parseList('a:1.1.1.1:1, b:[::1]:2,', parseGroupAddress), [
      { groupId: 'a', host: '1.1.1.1', port: 1 },
      { groupId: 'b', host: '::1', port: 2 },
    ]);
    assert.deepEqual(parseList('', parseHostPort), []);
  });

  it('shows IPv4-mapped addresses as plain IPv4', () => {
    assert.equal(normalizeAddress('::ffff:192.168.1.50'), '192.168.1.50');
    assert.equal(normalizeAddress('::FFFF:10.0.0.1'), '10.0.0.1');
    assert.equal(normalizeAddress('::1'), '::1');
    assert.equal(normalizeAddress('::ffff:abcd'), '::ffff:abcd');
  });

  it('formats and parses back (property)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), fc.integer({ min: 0, max: 65535 }), (host, port) => {
        const parsed = parseHostPort(formatHostPort(host, port));
        assert.equal(parsed.port, port);
        assert.equal(parsed.host, normalizeAddress(host));
      }),
    );
  });
});
