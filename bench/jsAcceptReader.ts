// The limit of a queue reader in JS: the helper's own queue (our addon, its batches and its
// JS callback) accepting every packet at once, with no parsing, lookup or bus. What Bastion
// adds on top of this is the cost of deciding; what this adds on top of the C reader is the
// cost of answering from JavaScript. Usage: jsAcceptReader.ts QUEUE_NUM
import { DEFAULT_QUEUE_OPTIONS, PacketQueue } from '../helper/queue.js';

const queueNum = Number(process.argv[2]);
const queue = PacketQueue.open(
  { ...DEFAULT_QUEUE_OPTIONS, queueNum },
  (packets, count) => {
    for (let i = 0; i < count; i++) queue.verdict(packets[i]!.packetId, true);
  },
  (err) => console.error(err.message),
);
process.on('SIGTERM', () => {
  queue.close();
  process.exit(0);
});
console.log('READY');
