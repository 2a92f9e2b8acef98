// The queue's reader thread: an armed process's new connections are answered while the JS loop
// is busy (before the thread, each waited for the loop's next turn), and the answered packets
// are still handed to JS for reporting once it is free.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { REPO } from '../support/bastion.js';
import { TestNetwork } from '../support/netns.js';

const QUEUE = 7;
const PORT = 8087;
// Prints "PID FD" for a socket it made, then at each line on stdin connects it (a new socket
// each time after the first) and prints the monotonic clock (ns) once connected.
const CLIENT = `
import os, socket, sys, time
s = socket.socket()
print(os.getpid(), s.fileno(), flush=True)
for line in sys.stdin:
    s.connect((sys.argv[1], ${PORT}))
    print(time.monotonic_ns(), flush=True)
    fd = s.fileno()
    s.close()
    s = socket.socket()
    assert s.fileno() == fd
`;

class Lines {
  private readonly queued: string[] = [];
  private waiter: ((line: string) => void) | null = null;
  constructor(stream: NodeJS.ReadableStream) {
    createInterface({ input: stream }).on('line', (line) => {
      if (this.waiter) {
        this.waiter(line);
        this.waiter = null;
      } else {
        this.queued.push(line);
      }
    });
  }
  next(timeoutMs = 10_000): Promise<string> {
    const line = this.queued.shift();
    if (line !== undefined) return Promise.resolve(line);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no line in time')), timeoutMs);
      this.waiter = (l) => {
        clearTimeout(timer);
        resolve(l);
      };
    });
  }
}

describe('the queue reader thread', () => {
  let net: TestNetwork;
  let server: ReturnType<TestNetwork['spawn']>;
  before(() => {
    net = TestNetwork.create();
    const r = net.run(net.client, 'iptables', ['-A', 'OUTPUT', '-p', 'tcp', '--syn', '--dport', String(PORT), '-j', 'NFQUEUE', '--queue-num', String(QUEUE)]);
    assert.equal(r.code, 0, r.stderr);
    server = net.spawn(net.server, 'python3', ['-c', `import socket\ns=socket.create_server(("0.0.0.0", ${PORT}), backlog=64)\nwhile True: s.accept()[0].close()`]);
  });
  after(() => {
    server.kill('SIGKILL');
    net.destroy();
  });

  it('answers an armed process while the JS loop is blocked, and JS still gets the answered packets', async () => {
    const probe = spawn(
      'ip',
      ['netns', 'exec', net.client, process.execPath, '--import', join(REPO, 'node_modules/tsx/dist/loader.mjs'), join(REPO, 'test/support/fastPathProbeChild.ts'), String(QUEUE)],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const client = net.spawn(net.client, 'python3', ['-c', CLIENT, net.serverV4], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const fromProbe = new Lines(probe.stdout!);
      const fromClient = new Lines(client.stdout!);
      assert.equal(await fromProbe.next(), 'READY');
      const [pid, fd] = (await fromClient.next()).split(' ');
      probe.stdin!.write(`arm ${pid} ${fd} ${PORT}\n`);
      assert.equal(await fromProbe.next(), 'armed 0');

      const connects = 5;
      probe.stdin!.write('block 1500\n');
      const blockedAt = BigInt((await fromProbe.next()).split(' ')[1]!);
      const connected: bigint[] = [];
      for (let i = 0; i < connects; i++) {
        client.stdin!.write('go\n');
        connected.push(BigInt(await fromClient.next(5_000)));
      }
      const unblockedAt = BigInt((await fromProbe.next()).split(' ')[1]!);
      const during = connected.filter((t) => t > blockedAt && t < unblockedAt).length;
      // A fork or exit anywhere on the machine just before a SYN leaves that one to JS (unread
      // events stop the fast path), so not every connect must make it; one is proof enough.
      assert.ok(during >= 1, `none of ${connects} connects completed while the loop was blocked`);

      // Then with the loop free, across the probe's collections (50 ms after each wake-up):
      // answers that come while one waits, and after it, must be told of again.
      const later = 12;
      for (let i = 0; i < later; i++) {
        client.stdin!.write('go\n');
        await fromClient.next(5_000);
        await new Promise((r) => setTimeout(r, 20));
      }
      await new Promise((r) => setTimeout(r, 300));
      probe.stdin!.end('report\n');
      const counters = JSON.parse(await fromProbe.next()) as { fastDecided: number; packets: number; taken: number };
      assert.equal(counters.packets, connects + later);
      assert.ok(counters.fastDecided >= during + 1, `the addon answered ${counters.fastDecided}; ${during} connected during the block`);
      assert.equal(counters.taken, counters.fastDecided, 'every answered packet reached JS');
    } finally {
      client.kill('SIGKILL');
      probe.kill('SIGKILL');
    }
  });
});
