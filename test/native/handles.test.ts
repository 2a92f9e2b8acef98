// Handles the addon gives JS: one of another kind, or one already closed, is refused or answers
// EBADF; never misread or used after free (the ASan run of this file would catch that).
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { loadNative } from '../../common/native.js';

const EBADF = 9;
// The addon's whole surface, typed loosely on purpose: these calls are deliberately wrong.
const native = loadNative() as unknown as Record<string, (...args: unknown[]) => unknown>;
const loopTurns = async (n: number): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};
const openFds = (): number => readdirSync('/proc/self/fd').length;
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const lookupArgs = [2, 6, new Uint8Array(4), 1, new Uint8Array(4), 1, new Uint32Array(3)];

describe('addon handles', () => {
  it('a handle of one kind is refused where another kind is expected', () => {
    const diag = native['sockDiagOpen']!();
    const events = native['procEventsOpen']!(() => undefined);
    try {
      assert.throws(() => native['sockDiagLookup']!(events, ...lookupArgs), /expected a sock_diag handle/);
      assert.throws(() => native['procEventsRead']!(diag, new Int32Array(3)), /expected a process events handle/);
      assert.throws(() => native['queueVerdict']!(diag, 1, true), /expected a queue handle/);
      assert.throws(() => native['queueClose']!(events), /expected a queue handle/);
      assert.throws(() => native['sockDiagLookup']!({}, ...lookupArgs), /expected a sock_diag handle/);
      assert.equal(native['sockDiagLookup']!(diag, ...lookupArgs), -2, 'the right handle still works');
    } finally {
      native['procEventsClose']!(events);
    }
  });

  it('process events: read and close after close answer EBADF, also once libuv has let go', async () => {
    const events = native['procEventsOpen']!(() => undefined);
    native['procEventsClose']!(events);
    assert.equal(native['procEventsRead']!(events, new Int32Array(3)), -EBADF);
    await loopTurns(3); // the poll handle's close callback has run
    assert.equal(native['procEventsRead']!(events, new Int32Array(3)), -EBADF);
    native['procEventsClose']!(events);
  });

  it('queue: verdicts, counters and close after close are harmless, also once libuv has let go', async () => {
    const opened = native['queueOpen']!({ queueNum: 4711 }, () => undefined, () => undefined) as { handle: unknown };
    native['queueClose']!(opened.handle);
    await loopTurns(3);
    assert.equal(native['queueVerdict']!(opened.handle, 1, true), -EBADF);
    assert.deepEqual(native['queueCounters']!(opened.handle), {
      packets: 0, overruns: 0, verdictErrors: 0, badMessages: 0, handoffFull: 0, fastDecided: 0, fastEventsPending: 0, fastMissed: 0, fastByFlow: 0,
    });
    native['queueClose']!(opened.handle);
  });

  it('the fast path: kinds are checked, bad entries refused, calls before enabling or after close harmless, every fd released', async () => {
    const before = openFds();
    const events = native['procEventsOpen']!(() => undefined);
    const queue = (native['queueOpen']!({ queueNum: 4712 }, () => undefined, () => undefined) as { handle: unknown }).handle;
    const arm = (pid: number, fds: Int32Array, protocol = 6): unknown =>
      native['queueFastPathArm']!(queue, 1, pid, 0, fds, protocol, 80, true, undefined, 1000);
    assert.throws(() => native['queueFastPathEnable']!(events, queue), /expected a queue handle/);
    assert.throws(() => native['queueFastPathEnable']!(queue, queue), /expected a process events handle/);
    assert.equal(arm(process.pid, Int32Array.of(0)), -EBADF, 'armed before it was enabled');
    native['queueFastPathEnable']!(queue, events);
    assert.equal(arm(process.pid, Int32Array.of(0, 1)), 0);
    assert.equal(arm(process.pid, Int32Array.of(0), 1), -22, 'ICMP has no sockets to look up');
    assert.equal(arm(process.pid, new Int32Array(9)), -22, 'more fds than it keeps');
    assert.equal(arm(process.pid, Int32Array.of(-1)), -22);
    assert.equal(arm(0x3fffffff, Int32Array.of(0)), -2, 'a pid that does not exist');
    assert.equal(native['queueFastPathTake']!(queue), 0);
    native['queueFastPathDisarm']!(queue, process.pid);
    native['queueFastPathDisarm']!(queue);
    native['queueClose']!(queue);
    native['procEventsClose']!(events);
    await loopTurns(3);
    assert.equal(arm(process.pid, Int32Array.of(0)), -EBADF);
    assert.equal(native['queueFastPathTake']!(queue), 0);
    native['queueFastPathDisarm']!(queue);
    assert.equal(openFds(), before, 'the fast path kept an fd (its /proc/PID/fd, its sock_diag or its events copy)');
  });

  it('handles JS drops without closing are closed and freed when collected', async () => {
    gc(); // handles earlier tests dropped go first
    await loopTurns(3);
    const before = openFds();
    for (let i = 0; i < 20; i++) {
      native['procEventsOpen']!(() => undefined);
      native['sockDiagOpen']!();
    }
    assert.equal(openFds(), before + 40);
    for (let i = 0; i < 5 && openFds() > before; i++) {
      gc();
      await loopTurns(3);
    }
    assert.equal(openFds(), before, 'sockets of collected handles are still open');
  });
});
