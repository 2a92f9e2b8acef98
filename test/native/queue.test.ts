// The NFQUEUE addon against the real kernel: a child process in a namespace of the test's own
// binds the queue; ping and a TCP connect go through it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startQueueProbe, type QueueProbe } from '../support/queueProbe.js';
import { TestNetwork } from '../support/netns.js';

describe('the NFQUEUE addon', () => {
  let net: TestNetwork;
  before(() => {
    net = TestNetwork.create();
    for (const ipt of ['iptables', 'ip6tables']) {
      const r = net.run(net.client, ipt, ['-A', 'OUTPUT', '-m', 'conntrack', '--ctstate', 'NEW', '-j', 'NFQUEUE', '--queue-num', '5']);
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(() => net.destroy());

  async function withProbe(mode: string, fn: (probe: QueueProbe) => Promise<void>): Promise<void> {
    const probe = await startQueueProbe(net.client, 5, mode);
    try {
      await fn(probe);
    } finally {
      await probe.stop();
    }
  }

  it('hands each packet to JS with its headers, uid and interfaces, and applies an accept', async () => {
    await withProbe('accept', async (probe) => {
      assert.equal(net.ping(net.serverV4), true);
      const seen = await probe.report();
      assert.equal(seen.packets.length, 1);
      const p = seen.packets[0]!;
      assert.equal(p.hwProtocol, 0x0800);
      assert.equal(p.uid, 0, 'NFQA_UID of root\'s ping socket');
      assert.ok(p.outIfindex > 0);
      assert.equal(p.firstByte >> 4, 4, 'payload starts at the IPv4 header');
      assert.equal(seen.counters.overruns, 0);
    });
  });

  it('drops a packet given a drop verdict', async () => {
    await withProbe('drop', async (probe) => {
      assert.equal(net.ping(net.serverV4), false);
      assert.equal((await probe.report()).packets.length >= 1, true);
    });
  });

  it('accepts verdicts out of order, by packet id', async () => {
    await withProbe('reverse-pairs', async (probe) => {
      // Two pings at once: the probe holds the first until the second arrives, then answers the second first.
      const [a, b] = await Promise.all([net.pingAsync(net.serverV4), net.pingAsync(net.serverV6)]);
      assert.equal(a && b, true);
      const seen = await probe.report();
      assert.deepEqual(seen.verdictOrder, [...seen.verdictOrder].sort((x, y) => y - x));
    });
  });

  it('a handler that throws cannot strand a packet: the exception verdict applies and the error is reported', async () => {
    await withProbe('throw-accept', async (probe) => {
      assert.equal(net.ping(net.serverV4), true);
      const seen = await probe.report();
      assert.deepEqual(seen.errors, ['handler exploded']);
    });
    await withProbe('throw-drop', async (probe) => {
      assert.equal(net.ping(net.serverV4), false);
      assert.deepEqual((await probe.report()).errors, ['handler exploded']);
    });
  });

  it('a packet answered before the throw keeps its own verdict', async () => {
    await withProbe('drop-then-throw', async (probe) => {
      // The exception verdict would accept; the explicit drop given before the throw must stand.
      assert.equal(net.ping(net.serverV4), false);
      assert.deepEqual((await probe.report()).errors, ['handler exploded']);
    });
  });

  it('a handler that closes the queue and then throws leaves no exception pending for the next native call', async () => {
    await withProbe('close-then-throw', async (probe) => {
      assert.equal(net.ping(net.serverV4), true, 'the verdict given before the close was lost');
      // The report reads the counters through the addon: a stale exception would be thrown there.
      const seen = await probe.report();
      assert.deepEqual(seen.counters, { packets: 0, overruns: 0, verdictErrors: 0, badMessages: 0, handoffFull: 0, fastDecided: 0, fastEventsPending: 0, fastMissed: 0, fastByFlow: 0 });
      assert.deepEqual(seen.errors, []);
    });
  });

  it('refuses to bind a queue number that another reader holds', async () => {
    await withProbe('accept', async () => {
      const second = await startQueueProbe(net.client, 5, 'accept').then(
        (p) => p.stop().then(() => 'bound'),
        (err: Error) => err.message,
      );
      assert.match(second, /cannot bind NFQUEUE/);
    });
  });
});
