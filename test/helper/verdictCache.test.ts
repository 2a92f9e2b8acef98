// The helper's verdict cache and how held packets feed it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PendingVerdicts } from '../../helper/pendingVerdicts.js';
import { VerdictCache } from '../../helper/verdictCache.js';

describe('VerdictCache', () => {
  it('answers the same exe, protocol and port until the entry expires', () => {
    let now = 0;
    const cache = new VerdictCache(10, () => now);
    const key = VerdictCache.key('/usr/bin/curl', 6, 443);
    cache.store(key, true, undefined, 5000);
    assert.deepEqual(cache.lookup(key), { accept: true, mark: undefined, expiresAt: 5000 });
    assert.equal(cache.lookup(VerdictCache.key('/usr/bin/curl', 6, 80)), null, 'another port');
    assert.equal(cache.lookup(VerdictCache.key('/usr/bin/curl', 17, 443)), null, 'another protocol');
    assert.equal(cache.lookup(VerdictCache.key('/usr/bin/wget', 6, 443)), null, 'another program');
    now = 5000;
    assert.equal(cache.lookup(key), null, 'expired');
    assert.equal(cache.size, 0);
  });

  it('keeps paths with spaces and colons apart', () => {
    const cache = new VerdictCache(10);
    cache.store(VerdictCache.key('/opt/a:6:1', 6, 1), true, undefined, 1000);
    assert.equal(cache.lookup(VerdictCache.key('/opt/a', 6, 1)), null);
  });

  it('evicts the oldest entry when full, and clear() forgets everything', () => {
    const cache = new VerdictCache(2);
    cache.store('a', true, undefined, 1000);
    cache.store('b', true, undefined, 1000);
    cache.store('c', false, 7, 1000);
    assert.equal(cache.lookup('a'), null);
    assert.equal(cache.lookup('c')?.mark, 7);
    cache.clear();
    assert.equal(cache.lookup('b'), null);
  });

  it('never stores a verdict without a lifetime', () => {
    const cache = new VerdictCache(2);
    cache.store('a', true, undefined, 0);
    assert.equal(cache.size, 0);
  });
});

describe('PendingVerdicts and the cache', () => {
  function pending(): { p: PendingVerdicts; applied: [number, boolean][]; decided: [string, boolean, number][] } {
    const applied: [number, boolean][] = [];
    const decided: [string, boolean, number][] = [];
    const p = new PendingVerdicts(
      { ackDeadlineMs: 1000, maxHoldMs: 10000, sweepIntervalMs: 50, fallbackAccept: true, now: () => 0 },
      {
        apply: (id, accept) => {
          applied.push([id, accept]);
          return 0;
        },
        onFallback: () => undefined,
        onDecided: (key, accept, _mark, ms) => decided.push([key, accept, ms]),
      },
    );
    return { p, applied, decided };
  }

  it('hands the service verdict and its cache lifetime to the cache for a packet held with a key', () => {
    const { p, applied, decided } = pending();
    p.hold(1, 'k');
    p.resolve(1, 'accept', undefined, undefined, 5000);
    assert.deepEqual(applied, [[1, true]]);
    assert.deepEqual(decided, [['k', true, 5000]]);
  });

  it('caches nothing without a cache lifetime, without a key, for a hold, or for a fallback', () => {
    const { p, decided } = pending();
    p.hold(1, 'k');
    p.resolve(1, 'accept');
    p.hold(2, null);
    p.resolve(2, 'accept', undefined, undefined, 5000);
    p.hold(3, 'k3');
    p.resolve(3, 'hold', undefined, 1000, 5000);
    p.fallbackAll('service_lost');
    assert.deepEqual(decided, []);
  });
});
