// A real Unix datagram socket bound at a path, read by a small python3 process (Node has no
// AF_UNIX datagram sockets): stands in for journald's /run/systemd/journal/socket and hands
// the test every datagram exactly as it was sent.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const RECEIVER = `
import base64, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("ready", flush=True)
while True:
    print(base64.b64encode(s.recv(1 << 20)).decode(), flush=True)
`;

export class DatagramReceiver {
  readonly received: Buffer[] = [];
  private readonly waiters: { count: number; resolve: () => void }[] = [];

  private constructor(
    readonly dir: string,
    readonly path: string,
    private readonly child: ChildProcess,
  ) {}

  static async bind(): Promise<DatagramReceiver> {
    const dir = mkdtempSync(join(tmpdir(), 'bastion-journal-'));
    const path = join(dir, 'socket');
    const child = spawn('python3', ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
    const receiver = new DatagramReceiver(dir, path, child);
    const lines = createInterface({ input: child.stdout! });
    await new Promise<void>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`the receiver exited (${code}) before it was ready`)));
      lines.once('line', () => resolve());
    });
    lines.on('line', (line) => receiver.add(Buffer.from(line, 'base64')));
    return receiver;
  }

  /** Resolves once `count` datagrams have arrived in all. */
  waitFor(count: number, timeoutMs = 10_000): Promise<void> {
    if (this.received.length >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${this.received.length} of ${count} datagrams within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({ count, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }

  close(): void {
    this.child.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }

  private add(datagram: Buffer): void {
    this.received.push(datagram);
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      if (this.received.length >= this.waiters[i]!.count) this.waiters.splice(i, 1)[0]!.resolve();
    }
  }
}

/** journald's native protocol, as journald reads it: "KEY=value\n", or KEY\n + 64-bit LE length + value + \n. */
export function parseNativeEntry(datagram: Buffer): Record<string, string> {
  const fields: Record<string, string> = {};
  let at = 0;
  while (at < datagram.length) {
    const nl = datagram.indexOf(0x0a, at);
    if (nl < 0) throw new Error(`field without a newline at byte ${at}`);
    const line = datagram.subarray(at, nl).toString('utf8');
    const eq = line.indexOf('=');
    if (eq >= 0) {
      fields[line.slice(0, eq)] = line.slice(eq + 1);
      at = nl + 1;
    } else {
      const len = Number(datagram.readBigUInt64LE(nl + 1));
      fields[line] = datagram.subarray(nl + 9, nl + 9 + len).toString('utf8');
      at = nl + 9 + len + 1;
    }
  }
  return fields;
}
