// What bounds the helper's work for one packet and one user (issue 11, item 3): the socket
// owner index's time budget and how a search cut short goes on at the next packet, the
// resolver's answers when time runs out or the connecting process let go of its socket, the
// per-uid queues and time shares, and the deadline clock that stops while the helper is blocked.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { IdentifyBudget } from '../../helper/identifyBudget.js';
import { ProcessResolver } from '../../helper/identify/processResolver.js';
import { SocketOwnerIndex } from '../../helper/identify/socketOwnerIndex.js';
import { PendingVerdicts } from '../../helper/pendingVerdicts.js';
import { UidQueues } from '../../helper/uidQueues.js';
import { addSocket, fakeProc, removeFakeProcs } from '../support/fakeProc.js';

const LOOPBACK4 = new Uint8Array([127, 0, 0, 1]);
const FDS = 3000;

after(() => removeFakeProcs());

/** A clock that moves on 1 ms each time it is read: a budget of n ms allows about n reads. */
function tickingClock(): () => number {
  let t = 0;
  return () => ++t;
}

/** A process with FDS fds that are not sockets, all read once; then fd FDS-100 becomes the socket. */
function hugeTable(now: () => number): { index: SocketOwnerIndex; inode: number } {
  const root = fakeProc([{ pid: 100, startTime: 10, stdio: FDS }]);
  const index = new SocketOwnerIndex({ procRoot: root, now });
  index.warm();
  const inode = 9001;
  addSocket(root, 100, FDS - 100, inode);
  return { index, inode };
}

describe('the socket owner index within a time budget', () => {
  it('stops a search at its budget and says so; the search for the same socket goes on where it stopped', () => {
    const { index, inode } = hugeTable(tickingClock());
    let lookups = 0;
    let found = null;
    let mostReads = 0;
    while (found === null && lookups < 100) {
      const reads = index.counters.fdReads;
      found = index.findPid(inode, null, 5);
      lookups++;
      mostReads = Math.max(mostReads, index.counters.fdReads - reads);
      if (found === null) assert.equal(index.timedOut, true, 'a search that found nothing must have run out of time');
    }
    assert.equal(found?.pid, 100);
    assert.equal(index.timedOut, false);
    // Each lookup read a bounded part of the table, and together they read it about once.
    assert.ok(mostReads < 400, `one lookup read ${mostReads} fd links`);
    assert.ok(lookups > 5 && lookups * mostReads < 3 * FDS, `${lookups} lookups of up to ${mostReads} reads each`);
  });

  it('without a budget, searches the whole table at once', () => {
    const { index, inode } = hugeTable(tickingClock());
    assert.equal(index.findPid(inode, null)?.pid, 100);
    assert.equal(index.timedOut, false);
  });

  it('with no budget left, still answers a socket it knows (one readlink), but searches nothing', () => {
    const { index, inode } = hugeTable(tickingClock());
    assert.equal(index.findPid(inode, null)?.pid, 100);
    const reads = index.counters.fdReads;
    assert.equal(index.findPid(inode, null, 0)?.pid, 100);
    assert.ok(index.counters.fdReads - reads <= 2);
    const scans = index.counters.scans;
    assert.equal(index.findPid(424242, null, 0), null);
    assert.equal(index.timedOut, true);
    assert.equal(index.counters.scans, scans, 'no fd table was read for a lookup without budget');
  });
});

describe('the resolver when time runs out, or the connecting process let go of its socket', () => {
  it("credits no one ('lookup_timeout') when the search runs out of time", () => {
    const root = fakeProc([{ pid: 100, startTime: 10, stdio: FDS }]);
    const resolver = new ProcessResolver({ lookupSocket: () => ({ inode: 9002, uid: 0 }), procRoot: root, index: { now: tickingClock() } });
    resolver.index.warm();
    const r = resolver.resolve(4, 6, LOOPBACK4, 40000, LOOPBACK4, 80, 0, 5);
    assert.deepEqual([r.attribution, r.process, r.socketInode], ['lookup_timeout', null, 9002]);
  });

  it("answers the retransmissions of a socket its caller no longer holds without reading the caller's fds again", () => {
    // The kernel says pid 100 connected socket 9003, but pid 100 holds no such socket any more
    // (it passed it on in an SCM_RIGHTS message nobody reads, and closed it).
    const root = fakeProc([{ pid: 100, startTime: 10, stdio: 500 }]);
    // A clock that stands still: this is about retransmissions, not time (a loaded machine could
    // take more than the 10 ms budget to read 500 fds, and the answer would be 'lookup_timeout').
    const resolver = new ProcessResolver({
      lookupSocket: () => ({ inode: 9003, uid: 0, caller: { pid: 100, uid: 0, process: null } }),
      procRoot: root,
      index: { now: () => 0 },
    });
    resolver.index.warm();
    const first = resolver.resolve(4, 6, LOOPBACK4, 40001, LOOPBACK4, 80, 0, 10);
    assert.equal(first.attribution, 'process_gone');
    const reads = resolver.index.counters.fdReads;
    for (let i = 0; i < 5; i++) assert.equal(resolver.resolve(4, 6, LOOPBACK4, 40001, LOOPBACK4, 80, 0, 10).attribution, 'process_gone');
    assert.equal(resolver.index.counters.fdReads, reads);
  });
});

describe('UidQueues', () => {
  it('serves uids in turn, each in its own order', () => {
    const q = new UidQueues<string>(10);
    for (const item of ['a1', 'a2', 'a3']) q.push(1000, item);
    q.push(0, 'r1');
    q.push(1001, 'b1');
    q.push(0, 'r2');
    const order: string[] = [];
    for (let next = q.next(); next !== null; next = q.next()) order.push(next.item);
    assert.deepEqual(order, ['a1', 'r1', 'b1', 'a2', 'r2', 'a3']);
  });

  it("refuses a uid's packets beyond its maximum in flight until some are released, and only that uid's", () => {
    const q = new UidQueues<number>(3);
    assert.deepEqual(
      [1, 2, 3, 4].map((n) => q.push(1000, n)),
      [true, true, true, false],
    );
    assert.equal(q.push(0, 1), true, "another uid's packet is taken");
    q.next(); // taken out to be identified: still in flight (held for the service)
    assert.equal(q.push(1000, 5), false);
    q.release(1000);
    assert.equal(q.push(1000, 5), true);
  });

  it('takes a packet back behind everything else waiting, still counted once against its uid', () => {
    const q = new UidQueues<string>(3);
    q.push(1000, 'a1');
    q.push(0, 'r1');
    q.push(1000, 'a2');
    q.push(1001, 'b1');
    const first = q.next()!;
    assert.equal(first.item, 'a1');
    // uid 1000 is at the back of the turn already; retry() must also put a1 behind a2.
    q.retry(first.uid, first.item);
    assert.equal(q.size, 4);
    assert.equal(q.push(1000, 'a3'), true, 'uid 1000 has 2 of its 3 in flight, a1 counted once');
    assert.equal(q.push(1000, 'a4'), false);
    const order: string[] = [];
    for (let next = q.next(); next !== null; next = q.next()) order.push(next.item);
    assert.deepEqual(order, ['r1', 'b1', 'a2', 'a1', 'a3']);
  });

  it('drains what waits at shutdown, releasing it', () => {
    const q = new UidQueues<number>(2);
    q.push(1, 1);
    q.push(2, 2);
    const drained: number[] = [];
    q.drain((_uid, item) => drained.push(item));
    assert.deepEqual(drained, [1, 2]);
    assert.equal(q.size, 0);
    assert.deepEqual([q.push(1, 3), q.push(1, 4)], [true, true]);
  });
});

describe('IdentifyBudget', () => {
  it("spends one uid's share without touching another's, and refills it with time", () => {
    let t = 0;
    const budget = new IdentifyBudget(100, 200, () => t);
    assert.equal(budget.available(1000), 200);
    budget.spend(1000, 250);
    assert.equal(budget.available(1000), 0);
    assert.equal(budget.available(0), 200);
    t += 1000; // +100 ms of share: -50 + 100
    assert.equal(budget.available(1000), 50);
    t += 10_000;
    assert.equal(budget.available(1000), 200, 'saves up no more than the burst');
  });
});

describe('PendingVerdicts while the event loop is blocked', () => {
  it("gives no packet the fallback for time the helper itself was blocked: the service's answer read afterwards still counts", async () => {
    const applied: [number, boolean][] = [];
    const fallbacks: number[] = [];
    const released: number[] = [];
    const pending = new PendingVerdicts(
      { ackDeadlineMs: 50, maxHoldMs: 1000, sweepIntervalMs: 10, fallbackAccept: true },
      { apply: (id, accept) => (applied.push([id, accept]), 0), onFallback: (id) => fallbacks.push(id), onReleased: (uid) => released.push(uid) },
    );
    pending.start();
    try {
      pending.hold(1, null, 1000);
      const until = performance.now() + 300; // a lookup that blocks the loop for 6 deadlines
      while (performance.now() < until) {
        /* blocked */
      }
      await new Promise((resolve) => setTimeout(resolve, 15)); // the late sweep runs
      pending.resolve(1, 'drop');
      assert.deepEqual(fallbacks, []);
      assert.deepEqual(applied, [[1, false]]);
      assert.deepEqual(released, [1000]);
      assert.ok(pending.stalledMs >= 200, `stalled ${pending.stalledMs} ms`);
      // Without a stall the deadline holds as before.
      pending.hold(2, null, 1000);
      await new Promise((resolve) => setTimeout(resolve, 150));
      assert.deepEqual(fallbacks, [2]);
      assert.deepEqual(released, [1000, 1000]);
    } finally {
      pending.stop();
    }
  });
});

describe('listing a huge fd table within a time budget', () => {
  it('lists a process never read in steps across lookups, and then finds its socket', () => {
    const root = fakeProc([{ pid: 100, startTime: 10, stdio: FDS, sockets: { [FDS]: 9004 } }]);
    const index = new SocketOwnerIndex({ procRoot: root, now: tickingClock() });
    let lookups = 0;
    let found = null;
    while (found === null && lookups < 100) {
      found = index.findPid(9004, null, 3);
      lookups++;
    }
    assert.equal(found?.pid, 100);
    assert.ok(lookups > 2, `found after ${lookups} lookups: the listing was not cut into steps`);
  });
});

describe('UidQueues with a preference', () => {
  it('serves a preferred uid (one whose lookups cost little) before the others, and the rest in turn', () => {
    const q = new UidQueues<string>(10);
    for (const item of ['a1', 'a2']) q.push(1000, item);
    q.push(0, 'r1');
    q.push(1001, 'b1');
    const cheap = (uid: number): boolean => uid === 0;
    const order: string[] = [];
    for (let next = q.next(cheap); next !== null; next = q.next(cheap)) order.push(next.item);
    assert.deepEqual(order, ['r1', 'a1', 'b1', 'a2']);
  });
});
