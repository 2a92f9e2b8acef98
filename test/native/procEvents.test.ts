// The process connector through the addon (native/src/proc_events.c) against the real kernel:
// which events arrive, in which order, that threads are left out, and that a helper started
// inside a network namespace still subscribes and stays in its namespace. Needs root.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { ProcessEvents, type ProcessEventListener } from '../../helper/identify/procEvents.js';
import { REPO } from '../support/bastion.js';
import { TestNetwork } from '../support/netns.js';

type Seen = [kind: 'fork' | 'exec' | 'exit', pid: number, ppid?: number];

function recorder(): { seen: Seen[]; listener: ProcessEventListener } {
  const seen: Seen[] = [];
  return {
    seen,
    listener: {
      onFork: (pid, ppid) => seen.push(['fork', pid, ppid]),
      onExec: (pid) => seen.push(['exec', pid]),
      onExit: (pid) => seen.push(['exit', pid]),
      onLost: () => assert.fail('events lost'),
    },
  };
}

const opened = ProcessEvents.open();
const skip = opened.events === null ? `process connector unavailable: ${opened.reason}` : false;
const events = opened.events;
after(() => events?.close());

describe('process events', { skip }, () => {
  it("reports a child's fork, exec and exit, in that order, with this process as parent", () => {
    const { seen, listener } = recorder();
    events!.subscribe(listener);
    events!.drain();
    seen.length = 0;
    const child = spawnSync('/bin/true');
    events!.drain();
    assert.deepEqual(
      seen.filter(([, pid]) => pid === child.pid),
      [
        ['fork', child.pid, process.pid],
        ['exec', child.pid],
        ['exit', child.pid],
      ],
    );
  });

  it("leaves out threads: a worker thread's start and end report nothing", async () => {
    const { seen, listener } = recorder();
    events!.subscribe(listener);
    const tids = (): Set<number> => new Set(readdirSync('/proc/self/task').map(Number));
    const before = tids();
    const worker = new Worker('setInterval(() => {}, 1000)', { eval: true });
    await new Promise((resolve) => worker.once('online', resolve));
    const threads = [...tids()].filter((tid) => !before.has(tid));
    assert.ok(threads.length > 0, 'the worker started no thread');
    await worker.terminate();
    events!.drain();
    // Unfiltered, a thread would show as its own tid or as this process (its thread group).
    assert.deepEqual(seen.filter(([, pid]) => threads.includes(pid) || pid === process.pid), []);
  });

  it('is drained from the event loop as soon as events are waiting', async () => {
    const { seen, listener } = recorder();
    events!.subscribe(listener);
    const child = spawnSync('/bin/true');
    for (let i = 0; i < 100 && !seen.some(([kind, pid]) => kind === 'exit' && pid === child.pid); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.ok(seen.some(([kind, pid]) => kind === 'exit' && pid === child.pid), 'no exit event without an explicit drain');
  });

  it('subscribes from inside a network namespace and leaves the process in that namespace', () => {
    const net = TestNetwork.create();
    try {
      const script = `
        import { readdirSync, readlinkSync } from 'node:fs';
        import { spawnSync } from 'node:child_process';
        import { ProcessEvents } from ${JSON.stringify(`${REPO}/helper/identify/procEvents.ts`)};
        const before = readlinkSync('/proc/thread-self/ns/net');
        const { events, reason } = ProcessEvents.open();
        if (!events) throw new Error(reason);
        const pids = [];
        events.subscribe({ onFork: (pid) => pids.push(pid), onExec() {}, onExit() {}, onLost() {} });
        const child = spawnSync('/bin/true');
        events.drain();
        events.close();
        console.log(JSON.stringify({ before, after: readlinkSync('/proc/thread-self/ns/net'), forked: pids.includes(child.pid) }));`;
      const r = net.run(net.client, process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script]);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { before: string; after: string; forked: boolean };
      assert.notEqual(out.before, readlinkSync('/proc/self/ns/net'), 'the child did not run in the namespace');
      assert.deepEqual([out.after, out.forked], [out.before, true]);
    } finally {
      net.destroy();
    }
  });

  it('reads nothing once closed, and tells its listeners that events stop', () => {
    const { events: closing } = ProcessEvents.open();
    assert.ok(closing);
    const seen: Seen[] = [];
    let lost = 0;
    closing.subscribe({ onFork: (pid) => seen.push(['fork', pid]), onExec: (pid) => seen.push(['exec', pid]), onExit: (pid) => seen.push(['exit', pid]), onLost: () => lost++ });
    closing.close();
    assert.equal(lost, 1);
    spawnSync('/bin/true');
    closing.drain();
    assert.deepEqual([closing.isOpen, seen], [false, []]);
  });

  it('a listener that throws keeps no event from the others, and then all are told events were lost', () => {
    const { events: own } = ProcessEvents.open();
    assert.ok(own);
    try {
      own.subscribe({ onFork: () => { throw new Error('boom'); }, onExec() {}, onExit() {}, onLost() {} });
      const seen: Seen[] = [];
      let lost = 0;
      own.subscribe({ onFork: (pid, ppid) => seen.push(['fork', pid, ppid]), onExec: (pid) => seen.push(['exec', pid]), onExit: (pid) => seen.push(['exit', pid]), onLost: () => lost++ });
      own.drain();
      seen.length = 0;
      lost = 0;
      const child = spawnSync('/bin/true');
      own.drain();
      assert.deepEqual(seen.filter(([, pid]) => pid === child.pid), [['fork', child.pid, process.pid], ['exec', child.pid], ['exit', child.pid]]);
      assert.ok(lost >= 1, 'the others were not told an event may have been missed');
      assert.ok(own.listenerErrors >= 1);
    } finally {
      own.close();
    }
  });
});
