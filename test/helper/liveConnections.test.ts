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
