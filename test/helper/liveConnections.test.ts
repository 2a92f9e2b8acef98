// The helper ends only connections it saw (helper/liveConnections.ts): a flow the service names
// that this helper never queued or reported, or a UDP one, is refused and counted.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger } from '../../common/log.js';
import type { Flow } from '../../common/wire.js';
import { LiveConnections } from '../../helper/liveConnections.js';

const flow = (srcPort: number, protocol = 6): Flow => ({
  family: 4,
  protocol,
  srcAddr: new Uint8Array([192, 0, 2, 1]),
  srcPort,
  dstAddr: new Uint8Array([198, 51, 100, 7]),
  dstPort: 22,
});

describe('LiveConnections', () => {
  const log = createLogger({ name: 'test', level: 'silent' });

  it('destroys a seen TCP flow once; refuses one it never saw and UDP; counts a socket already gone', () => {
    const destroyed: number[] = [];
    const live = new LiveConnections({ destroy: (_f, _p, _s, srcPort) => (destroyed.push(srcPort), srcPort === 40009 ? -2 : 0) }, log);
    live.saw(flow(40001));
    live.saw(flow(40002, 17));
    live.saw(flow(40009));
    live.end([flow(40001), flow(40001), flow(40002, 17), flow(40003), flow(40009)]);
    assert.deepEqual(destroyed, [40001, 40009]);
    assert.deepEqual(live.counters, { ended: 1, unknown: 3, gone: 1, failed: 0 });
  });
});

describe('LiveConnections: connections the kernel allowed (no source port recorded)', () => {
  const log = createLogger({ name: 'test', level: 'silent' });
  const dst = new Uint8Array([198, 51, 100, 7]);
  const byProgram = (exe: string): Flow => ({ family: 4, protocol: 6, srcAddr: new Uint8Array(0), srcPort: 0, dstAddr: dst, dstPort: 22, exe });

  it('ends only the sockets to that destination whose connect() caller is a process the kernel allowed as that program', () => {
    const destroyed: number[] = [];
    // Three sockets to dst:22: connected by pid 10 (allowed), pid 11 (another program), pid 10 of an older start (a reused pid).
    const callers = new Map([
      [50001, { pid: 10, startTime: 100 }],
      [50002, { pid: 11, startTime: 100 }],
      [50003, { pid: 10, startTime: 5 }],
    ]);
    const live = new LiveConnections({ destroy: (_f, _p, _s, srcPort) => (destroyed.push(srcPort), 0) }, log, {
      connectionsTo: () => [...callers.keys()].map((srcPort) => ({ family: 4 as const, src: new Uint8Array([192, 0, 2, 1]), srcPort })),
      callerOf: (_f, _s, srcPort) => callers.get(srcPort) ?? null,
    });
    live.sawKernel({ family: 4, protocol: 6, dstAddr: dst, dstPort: 22, exe: '/usr/bin/ssh', tgid: 10, startTime: 100 });
    live.sawKernel({ family: 4, protocol: 6, dstAddr: dst, dstPort: 22, exe: '/usr/bin/nc', tgid: 11, startTime: 100 });
    live.end([byProgram('/usr/bin/ssh'), byProgram('/usr/bin/curl')]);
    assert.deepEqual(destroyed, [50001]);
    assert.deepEqual(live.counters, { ended: 1, unknown: 1, gone: 0, failed: 0 });
  });
});
