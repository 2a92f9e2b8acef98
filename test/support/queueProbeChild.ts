// Child process for queue tests (see queueProbe.ts). argv: queueNum mode.
import { createInterface } from 'node:readline';
import { DEFAULT_QUEUE_OPTIONS, PacketQueue } from '../../helper/queue.js';
import type { ProbeReport } from './queueProbe.js';

const queueNum = Number(process.argv[2]);
const mode = process.argv[3] ?? 'accept';
const report: ProbeReport = { packets: [], verdictOrder: [], errors: [], counters: { packets: 0, overruns: 0, verdictErrors: 0, badMessages: 0 } };
const held: number[] = [];

const throwing = mode.startsWith('throw') || mode === 'drop-then-throw';
const queue = PacketQueue.open(
  { ...DEFAULT_QUEUE_OPTIONS, queueNum, exceptionVerdict: mode === 'throw-drop' ? 0 : 1 },
  (packets, count) => {
    for (let i = 0; i < count; i++) {
      const p = packets[i]!;
      report.packets.push({
        packetId: p.packetId,
        hwProtocol: p.hwProtocol,
        uid: p.uid,
        outIfindex: p.outIfindex,
        firstByte: p.payload[0] ?? 0,
        length: p.payload.length,
      });
      if (mode === 'drop-then-throw') queue.verdict(p.packetId, false);
      if (mode === 'close-then-throw') {
        queue.verdict(p.packetId, true);
        queue.close();
        throw new Error('handler exploded after closing');
      }
      if (throwing) throw new Error('handler exploded');
      if (mode === 'reverse-pairs') {
        held.push(p.packetId);
        if (held.length === 2) {
          for (const id of held.reverse()) {
            queue.verdict(id, true);
            report.verdictOrder.push(id);
          }
          held.length = 0;
        }
        continue;
      }
      queue.verdict(p.packetId, mode !== 'drop');
    }
  },
  (err) => report.errors.push(err.message),
);

createInterface({ input: process.stdin }).on('line', () => {
  report.counters = queue.counters();
  queue.close();
  process.stdout.write(JSON.stringify(report) + '\n');
  process.exit(0);
});
process.stdout.write('READY\n');
