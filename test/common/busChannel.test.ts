// The bus channel over a real ZeroMQ PAIR on an ipc:// socket: reports (records the helper
// already decided) leave in bulk, and ride along with the next record that needs an answer.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Pair } from 'zeromq';
import { BusChannel, REPORT_BATCH } from '../../common/busChannel.js';
import type { PacketRecord } from '../../common/types.js';
import type { BusMessage } from '../../common/wire.js';
import { tempDir } from '../support/bastion.js';

/** Each packet id its own destination port, so no two are grouped unless a test says so. */
function record(packetId: number, helperVerdict?: 'accept' | 'drop', dstPort = 1000 + packetId): PacketRecord {
  return {
    packetId,
    family: 4,
    protocol: 6,
    srcAddr: new Uint8Array([10, 0, 0, 1]),
    dstAddr: new Uint8Array([10, 0, 0, 2]),
    srcPort: 40000 + packetId,
    dstPort,
    icmpType: -1,
    icmpCode: -1,
    inIfindex: 0,
    outIfindex: 2,
    uid: 0,
    gid: 0,
    malformed: false,
    process: null,
    socketInode: 0,
    attribution: 'not_found',
    lookupMicros: 0,
    payloadLength: 60,
    ...(helperVerdict ? { helperVerdict } : {}),
  };
}

describe('bus channel batching', () => {
  const dir = tempDir('bastion-bus-');
  const received: BusMessage[] = [];
  let sender: BusChannel;
  let receiver: BusChannel;
  let waiters: (() => void)[] = [];

  /** Resolves once `count` packet records in all have arrived. */
  async function recordsArrived(count: number): Promise<PacketRecord[][]> {
    const batches = () => received.flatMap((m) => (m.kind === 'packets' ? [m.records] : []));
    while (batches().flat().length < count) await new Promise<void>((resolve) => waiters.push(resolve));
    return batches();
  }

  before(async () => {
    const a = new Pair({ linger: 0 });
    const b = new Pair({ linger: 0 });
    await a.bind(`ipc://${dir.path}/bus.sock`);
    b.connect(`ipc://${dir.path}/bus.sock`);
    const events = { onBadFrame: () => undefined, onSendFailed: () => assert.fail('nothing may be lost') };
    sender = new BusChannel(a, { ...events, onMessage: () => undefined });
    receiver = new BusChannel(b, {
      ...events,
      onMessage: (m) => {
        received.push(m);
        const w = waiters;
        waiters = [];
        for (const resolve of w) resolve();
      },
    });
    void receiver.receiveLoop();
    void sender.receiveLoop();
  });

  after(() => {
    sender.close();
    receiver.close();
    dir.remove();
  });

  it('reports sent one at a time arrive together in one message', async () => {
    received.length = 0;
    for (let i = 1; i <= 5; i++) sender.sendReports([record(i, 'accept')]);
    const batches = await recordsArrived(5);
    assert.deepEqual(
      batches.map((b) => b.map((r) => r.packetId)),
      [[1, 2, 3, 4, 5]],
    );
    assert.ok(batches[0]!.every((r) => r.helperVerdict === 'accept'));
  });

  it('waiting reports ride along with a record that needs an answer, which is not kept waiting', async () => {
    received.length = 0;
    sender.sendReports([record(10, 'accept'), record(11, 'drop')]);
    sender.sendRecords([record(12)]);
    const batches = await recordsArrived(3);
    assert.equal(batches.length, 1, 'one message carries the record and the reports');
    assert.deepEqual(batches[0]!.map((r) => r.packetId).sort(), [10, 11, 12]);
    assert.equal(batches[0]!.find((r) => r.packetId === 12)!.helperVerdict, undefined);
  });

  it('a full batch of reports leaves at once instead of waiting for the timer', async () => {
    received.length = 0;
    const reports = Array.from({ length: REPORT_BATCH * 2 + 3 }, (_, i) => record(100 + i, 'accept'));
    for (const r of reports) sender.sendReports([r]);
    const batches = await recordsArrived(reports.length);
    // Waiting for the timer would have sent all of them in one message.
    assert.equal(batches[0]!.length, REPORT_BATCH);
    assert.ok(batches.length >= 2);
    assert.deepEqual(
      batches.flat().map((r) => r.packetId),
      reports.map((r) => r.packetId),
    );
  });

  it('reports of the same program, destination and verdict become one record with a count', async () => {
    received.length = 0;
    for (let i = 0; i < 7; i++) sender.sendReports([record(200 + i, 'accept', 443)]);
    sender.sendReports([record(300, 'drop', 443)]); // another verdict
    sender.sendReports([record(301, 'accept', 444)]); // another port
    const batches = await recordsArrived(3);
    assert.equal(batches.length, 1);
    const [grouped, dropped, otherPort] = batches[0]!;
    assert.deepEqual([grouped!.dstPort, grouped!.helperVerdict, grouped!.repeats], [443, 'accept', 7]);
    assert.deepEqual([dropped!.dstPort, dropped!.helperVerdict, dropped!.repeats], [443, 'drop', undefined]);
    assert.deepEqual([otherPort!.dstPort, otherPort!.repeats], [444, undefined]);
  });
});
