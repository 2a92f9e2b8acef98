// How the socket owner index searches, and what the resolver does with process events, on
// fake /proc trees and fake events: which fds a miss reads, when /proc is listed, what is
// read ahead of a new program's first packet, what an exec or a lost event invalidates.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import type { ProcessEventListener, ProcessEventSource } from '../../helper/identify/procEvents.js';
import { ProcessFds } from '../../helper/identify/processFds.js';
import { ProcessResolver } from '../../helper/identify/processResolver.js';
import { SocketOwnerIndex } from '../../helper/identify/socketOwnerIndex.js';
import { addSocket, closeFd, fakeProc, removeFakeProcs, writeFakeProcess } from '../support/fakeProc.js';

const LOOPBACK4 = new Uint8Array([127, 0, 0, 1]);

after(() => removeFakeProcs());

/** Events queued by the test and handed over, in order, when the index or resolver drains. */
class FakeEvents implements ProcessEventSource {
  isOpen = true;
  private readonly listeners: ProcessEventListener[] = [];
  private readonly queued: ((l: ProcessEventListener) => void)[] = [];

  subscribe(listener: ProcessEventListener): void {
    this.listeners.push(listener);
  }

  drain(): void {
    for (const deliver of this.queued.splice(0)) for (const l of this.listeners) deliver(l);
  }

  fork(pid: number): this {
    this.queued.push((l) => l.onFork(pid, 1));
    return this;
  }

  exec(pid: number): this {
    this.queued.push((l) => l.onExec(pid));
    return this;
  }

  exit(pid: number): this {
    this.queued.push((l) => l.onExit(pid));
    return this;
  }

  lost(): this {
    this.queued.push((l) => l.onLost());
    return this;
  }
}

/** A warmed index over root with fake events; the events are drained once. */
function indexWithEvents(root: string): { index: SocketOwnerIndex; events: FakeEvents } {
  const events = new FakeEvents();
  const index = new SocketOwnerIndex({ procRoot: root, events });
  index.warm();
  return { index, events };
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('SocketOwnerIndex with process events', () => {
  it('finds a process it heard fork without listing /proc', () => {
    const root = fakeProc([{ pid: 100, startTime: 10 }]);
    const { index, events } = indexWithEvents(root);
    const { listings } = index.counters;
    writeFakeProcess(root, { pid: 300, startTime: 30, sockets: { 3: 701 } });
    events.fork(300);
    assert.equal(index.findPid(701, null)?.pid, 300);
    assert.equal(index.counters.listings, listings);
  });

  it('lists /proc at the next miss once events were lost', () => {
    const root = fakeProc([{ pid: 100, startTime: 10 }]);
    const { index, events } = indexWithEvents(root);
    const { listings } = index.counters;
    writeFakeProcess(root, { pid: 400, startTime: 40, sockets: { 3: 801 } }); // its fork was among the lost
    events.lost();
    assert.equal(index.findPid(801, null)?.pid, 400);
    assert.equal(index.counters.listings, listings + 1);
  });

  it('lists /proc as a last resort when no process the events named holds the socket', () => {
    const root = fakeProc([{ pid: 100, startTime: 10 }]);
    const { index } = indexWithEvents(root);
    writeFakeProcess(root, { pid: 500, startTime: 50, sockets: { 3: 901 } }); // no event at all
    assert.equal(index.findPid(901, null)?.pid, 500);
  });

  it('forgets a process on its exit event without reading /proc', () => {
    const root = fakeProc([
      { pid: 100, startTime: 10 },
      { pid: 200, startTime: 20 },
    ]);
    const { index, events } = indexWithEvents(root);
    assert.equal(index.trackedPids, 3);
    events.exit(200).drain();
    assert.equal(index.trackedPids, 2);
  });

  it("after an exec event, finds the new program's socket in the same pid", () => {
    const root = fakeProc([{ pid: 100, startTime: 10, sockets: { 3: 501 } }]);
    const { index, events } = indexWithEvents(root);
    assert.equal(index.findPid(501, null)?.pid, 100);
    writeFakeProcess(root, { pid: 100, startTime: 10, sockets: { 5: 502 } }); // execve keeps pid and start time
    events.exec(100);
    assert.equal(index.findPid(502, null)?.pid, 100);
    assert.equal(index.findPid(501, null), null);
  });
});

describe('SocketOwnerIndex guesses', () => {
  it('finds a program read ahead by learn() on its lowest free fd, after one guess at the recent owner: no scan', () => {
    const root = fakeProc([{ pid: 100, startTime: 10, sockets: { 3: 501 }, stdio: 3 }]);
    const { index, events } = indexWithEvents(root);
    writeFakeProcess(root, { pid: 300, startTime: 30, stdio: 3 });
    events.exec(300).drain();
    assert.equal(index.learn(300)?.pid, 300);
    assert.equal(index.findPid(501, null)?.pid, 100); // 100 is now a recent owner too
    addSocket(root, 300, 3, 701);
    const { scans, fdReads } = index.counters;
    assert.equal(index.findPid(701, null)?.pid, 300);
    assert.deepEqual([index.counters.scans, index.counters.fdReads, index.counters.guessed], [scans, fdReads + 2, 1]);
  });

  it('learns that a process reuses the fd number of its closed socket: its next socket costs one readlink', () => {
    const root = fakeProc([{ pid: 100, startTime: 10, sockets: { 3: 501 }, stdio: 3 }]);
    const { index } = indexWithEvents(root);
    assert.equal(index.findPid(501, null)?.pid, 100);
    closeFd(root, 100, 3);
    addSocket(root, 100, 3, 502);
    assert.equal(index.findPid(502, null)?.pid, 100);
    closeFd(root, 100, 3);
    addSocket(root, 100, 3, 503);
    const { scans, fdReads } = index.counters;
    assert.equal(index.findPid(503, null)?.pid, 100);
    assert.deepEqual([index.counters.scans, index.counters.fdReads], [scans, fdReads + 1]);
  });

  it('never credits a guessed fd to the old process of a reused pid: the exit event tells', () => {
    const root = fakeProc([{ pid: 100, startTime: 10, sockets: { 3: 501 }, stdio: 3 }]);
    const { index, events } = indexWithEvents(root);
    assert.equal(index.findPid(501, null)?.pid, 100);
    writeFakeProcess(root, { pid: 100, startTime: 77, sockets: { 3: 501, 4: 502 }, stdio: 3 }); // died; pid reused
    events.exit(100).fork(100);
    const found = index.findPid(502, null);
    assert.deepEqual([found?.pid, found?.startTime], [100, 77]);
  });

  it('reads start times again once events were lost, so a pid reused unseen is not credited', () => {
    const root = fakeProc([{ pid: 100, startTime: 10, sockets: { 3: 501 }, stdio: 3 }]);
    const { index, events } = indexWithEvents(root);
    assert.equal(index.findPid(501, null)?.pid, 100);
    writeFakeProcess(root, { pid: 100, startTime: 77, sockets: { 3: 501, 4: 502 }, stdio: 3 }); // its exit was lost
    events.lost();
    const found = index.findPid(502, null);
    assert.deepEqual([found?.pid, found?.startTime], [100, 77]);
  });

  it("with events, a known process's new socket costs one readlink and no stat read", () => {
    const root = fakeProc([{ pid: 100, startTime: 10, sockets: { 3: 501 }, stdio: 3 }]);
    const { index } = indexWithEvents(root);
    assert.equal(index.findPid(501, null)?.pid, 100);
    addSocket(root, 100, 4, 502);
    const { fdReads, statReads, scans } = index.counters;
    const found = index.findPid(502, null);
    assert.deepEqual([found?.pid, found?.eventsCurrent], [100, true]);
    assert.deepEqual([index.counters.fdReads, index.counters.statReads, index.counters.scans], [fdReads + 1, statReads, scans]);
  });

  it('stops trying a program read ahead that was not the owner twice', () => {
    /** fds read by each of 4 misses for new processes' sockets, with or without an idle program read ahead. */
    const readsPerMiss = (idleReadAhead: boolean): number[] => {
      const root = fakeProc([
        { pid: 100, startTime: 10, stdio: 3 },
        { pid: 300, startTime: 30, stdio: 3 },
      ]);
      const { index, events } = indexWithEvents(root);
      if (idleReadAhead) {
        events.exec(300).drain();
        assert.equal(index.learn(300)?.pid, 300); // 300 never connects
      }
      const reads: number[] = [];
      for (let i = 0; i < 4; i++) {
        writeFakeProcess(root, { pid: 400 + i, startTime: 40 + i, stdio: 3, sockets: { 3: 800 + i } });
        events.fork(400 + i);
        const before = index.counters.fdReads;
        assert.equal(index.findPid(800 + i, null)?.pid, 400 + i);
        reads.push(index.counters.fdReads - before);
      }
      return reads;
    };
    const idle = readsPerMiss(true);
    const none = readsPerMiss(false);
    assert.deepEqual(
      idle.map((reads, i) => reads - none[i]!),
      [1, 1, 0, 0],
    );
  });
});

describe('ProcessResolver with process events', () => {
  it("reports 'no_socket' for a packet NFQUEUE gave no socket owner, without looking anything up", () => {
    let lookups = 0;
    const resolver = new ProcessResolver({ lookupSocket: () => (lookups++, null), procRoot: fakeProc([]) });
    const r = resolver.resolve(4, 17, LOOPBACK4, 51820, LOOPBACK4, 51820, -1);
    assert.deepEqual([r.attribution, r.process, r.socketInode, lookups], ['no_socket', null, 0, 0]);
  });

  it("reports 'not_found', crediting no one, when a packet with a socket owner matches no socket", () => {
    const resolver = new ProcessResolver({ lookupSocket: () => null, procRoot: fakeProc([]) });
    const r = resolver.resolve(4, 17, LOOPBACK4, 40000, LOOPBACK4, 53, 1000);
    assert.deepEqual([r.attribution, r.process], ['not_found', null]);
  });

  it('reads a program ahead of its first packet, which then costs no scan and carries its details', async () => {
    const root = fakeProc([{ pid: 100, startTime: 10, stdio: 3 }]);
    const events = new FakeEvents();
    const resolver = new ProcessResolver({ lookupSocket: () => ({ inode: 701, uid: 0 }), procRoot: root, events });
    resolver.index.warm();
    writeFakeProcess(root, { pid: 300, startTime: 30, stdio: 3, exe: '/usr/bin/curl', cmdline: ['curl', 'example.org'] });
    events.exec(300).drain();
    await nextTurn(); // the read-ahead runs on the next turn of the event loop
    assert.equal(resolver.index.counters.learned, 1);
    addSocket(root, 300, 3, 701);
    const { scans } = resolver.index.counters;
    const r = resolver.resolve(4, 6, LOOPBACK4, 40000, LOOPBACK4, 443, 0);
    assert.deepEqual([r.attribution, r.process?.pid, r.process?.exe, r.process?.cmdline], ['sock_diag', 300, '/usr/bin/curl', ['curl', 'example.org']]);
    assert.equal(resolver.index.counters.scans, scans);
  });

  it('reads ahead no more programs a second than it may', async () => {
    const root = fakeProc([]);
    const events = new FakeEvents();
    const resolver = new ProcessResolver({ lookupSocket: () => null, procRoot: root, events, readAheadPerSecond: 2, now: () => 5000 });
    for (let pid = 300; pid < 305; pid++) {
      writeFakeProcess(root, { pid, startTime: pid });
      events.exec(pid);
    }
    events.drain();
    for (let turn = 0; turn < 10; turn++) await nextTurn(); // one program per turn
    assert.equal(resolver.index.counters.learned, 2);
  });

  it('reads ahead one program per turn of the event loop, so packets do not wait behind a burst', async () => {
    const root = fakeProc([]);
    const events = new FakeEvents();
    const resolver = new ProcessResolver({ lookupSocket: () => null, procRoot: root, events });
    for (let pid = 300; pid < 303; pid++) {
      writeFakeProcess(root, { pid, startTime: pid });
      events.exec(pid);
    }
    events.drain();
    const learned: number[] = [];
    for (let turn = 0; turn < 4; turn++) {
      await nextTurn();
      learned.push(resolver.index.counters.learned);
    }
    assert.deepEqual(learned, [1, 2, 3, 3]);
  });

  it('drops cached details on an exec event, even when the executable stays the same', () => {
    const root = fakeProc([{ pid: 100, startTime: 10, exe: '/usr/bin/python3', cmdline: ['python3', 'a.py'], sockets: { 3: 501 } }]);
    const events = new FakeEvents();
    let inode = 501;
    const resolver = new ProcessResolver({ lookupSocket: () => ({ inode, uid: 0 }), procRoot: root, events, readAheadPerSecond: 0 });
    assert.deepEqual(resolver.resolve(4, 6, LOOPBACK4, 1, LOOPBACK4, 2, 0).process?.cmdline, ['python3', 'a.py']);
    writeFakeProcess(root, { pid: 100, startTime: 10, exe: '/usr/bin/python3', cmdline: ['python3', 'b.py'], sockets: { 3: 502 } });
    events.exec(100);
    inode = 502;
    assert.deepEqual(resolver.resolve(4, 6, LOOPBACK4, 1, LOOPBACK4, 2, 0).process?.cmdline, ['python3', 'b.py']);
  });
});

describe('ProcessFds', () => {
  it('orders a rescan: fds not read yet (highest first), then former sockets, then the rest; and names the closed', () => {
    const p = new ProcessFds(10, 0, 0, -1);
    p.list(['0', '1', '2', '3', '4'], 100);
    p.set(0, 0);
    p.set(3, 501);
    p.set(4, 0);
    const { order, closed } = p.rescanOrder(['0', '1', '3', '6', '7']);
    assert.deepEqual(
      [order, closed.sort((a, b) => a - b)],
      [
        [7, 6, 1, 3, 0],
        [2, 4],
      ],
    );
  });

  it('keeps the fd numbers of the last two sockets, most recent first, and forgets a closed socket', () => {
    const p = new ProcessFds(10, 0, 0, -1);
    for (const [fd, inode] of [
      [3, 501],
      [4, 502],
      [5, 503],
    ] as const)
      p.set(fd, inode);
    p.set(4, null);
    assert.deepEqual([p.socketFds, [...p.sockets.keys()], p.lowestUnrecorded()], [[5, 4], [501, 503], 0]);
  });
});

describe('fake /proc sanity', () => {
  it('gives each fake process the fds it was asked for', () => {
    const root = fakeProc([{ pid: 100, startTime: 10, stdio: 3, sockets: { 7: 501 } }]);
    assert.deepEqual(
      fs
        .readdirSync(path.join(root, '100', 'fd'))
        .map(Number)
        .sort((a, b) => a - b),
      [0, 1, 2, 7],
    );
  });
});
