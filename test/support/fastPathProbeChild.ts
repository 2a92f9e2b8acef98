// Child process for test/native/fastPathThread.test.ts, run inside a namespace: binds a queue
// with the fast path, accepts whatever reaches JS, and obeys lines on stdin:
//   arm PID FD PORT   arms PID (uid 0) for TCP to PORT with an accept, its socket at FD
//   block MS          keeps the JS loop busy for MS ms (printing the monotonic clock, in ns,
//                     as it starts and ends), so only the addon's own thread can answer
//   report            prints the queue's counters and how many answered packets JS was told
//                     of and took, as JSON, and exits
import { createInterface } from 'node:readline';
import { ProcessEvents } from '../../helper/identify/procEvents.js';
import { DEFAULT_QUEUE_OPTIONS, PacketQueue } from '../../helper/queue.js';

const queueNum = Number(process.argv[2]);
const { events, reason } = ProcessEvents.open();
if (!events || !events.nativeHandle) throw new Error(`no process events: ${reason ?? 'closed'}`);
const queue = PacketQueue.open(
  { ...DEFAULT_QUEUE_OPTIONS, queueNum },
  (packets, count) => {
    for (let i = 0; i < count; i++) queue.verdict(packets[i]!.packetId, true);
  },
  (err) => process.stderr.write(`queue error: ${err.message}\n`),
);
queue.enableFastPath(events.nativeHandle);
/** Packets the addon answered that JS was told of and took. */
let taken = 0;
// Taken a little later, as the helper does: answers that come meanwhile must be told of again.
queue.onFastAnswered = () => {
  setTimeout(() => {
    for (let batch = queue.takeFastAnswered(); batch.count > 0; batch = queue.takeFastAnswered()) {
      for (let i = 0; i < batch.count; i++) taken += batch.packets[i]!.fastRepeats;
    }
  }, 50);
};

createInterface({ input: process.stdin }).on('line', (line) => {
  const [command, ...args] = line.split(' ');
  if (command === 'arm') {
    const [pid, fd, port] = args.map(Number) as [number, number, number];
    events.drain(); // the client's own start is read: nothing unread stops the fast path
    const rc = queue.armFastPath({ token: 1, pid, uid: 0, fds: [fd], protocol: 6, port, accept: true, mark: undefined, ttlMs: 60_000 });
    process.stdout.write(`armed ${rc}\n`);
  } else if (command === 'block') {
    const start = process.hrtime.bigint();
    process.stdout.write(`blocking ${start}\n`);
    const end = start + BigInt(Number(args[0]) * 1e6);
    while (process.hrtime.bigint() < end); // busy on purpose: the loop gets no turn
    process.stdout.write(`unblocked ${process.hrtime.bigint()}\n`);
  } else if (command === 'report') {
    process.stdout.write(`${JSON.stringify({ ...queue.counters(), taken })}\n`);
    queue.close();
    events.close();
    process.exit(0);
  }
});
process.stdout.write('READY\n');
