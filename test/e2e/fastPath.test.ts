// The helper's fast path end to end (native/src/fast_path.h): a long-running program whose
// connections the service let the helper reuse a verdict for is answered by the addon before
// JS runs; the same pid after an exec, or after the rule is deleted, is not.
import assert from 'node:assert/strict';
import { copyFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { GuiConnection } from '../../cli/guiClient.js';
import { TestFirewall } from '../support/firewall.js';

const PYTHON = realpathSync('/usr/bin/python3');
const CLIENT = new URL('../fixtures/connect-then-exec.py', import.meta.url).pathname;

/** The Python client in the client namespace, driven line by line. */
class Client {
  readonly child: ChildProcess;
  private readonly lines: string[] = [];
  private waiting: ((line: string) => void) | null = null;
  private readyWaiter: (() => void) | null = null;

  constructor(fw: TestFirewall) {
    // PYTHONHOME: a copy of the interpreter elsewhere (see below) still finds its library.
    const env = { ...process.env, PYTHONHOME: '/usr' };
    this.child = fw.net.spawn(fw.net.client, PYTHON, [CLIENT], { stdio: ['pipe', 'pipe', 'pipe'], env });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      if (line === 'ready') {
        this.readyWaiter?.();
        this.readyWaiter = null;
      } else if (this.waiting) {
        this.waiting(line);
        this.waiting = null;
      } else {
        this.lines.push(line);
      }
    });
  }

  /** Connects count times, one after the other; the outcome of each. */
  async connect(host: string, port: number, count: number): Promise<string[]> {
    this.child.stdin!.write(`connect ${host} ${port} ${count}\n`);
    const line = this.lines.shift() ?? (await new Promise<string>((resolve) => (this.waiting = resolve)));
    return line.split(' ');
  }

  /** Replaces the program (same pid, same stdin and stdout); resolves once the new one reads. */
  async exec(args: string[]): Promise<void> {
    const ready = new Promise<void>((resolve) => (this.readyWaiter = resolve));
    this.child.stdin!.write(`exec ${args.join(' ')}\n`);
    await ready;
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

describe('the helper fast path', () => {
  let fw: TestFirewall;
  let client: Client | null = null;
  before(async () => {
    // The queue's fast path: the kernel would decide these connections itself (kernelVerdicts.test.ts).
    fw = await new TestFirewall({ rules: { [`${PYTHON}:80`]: true }, helperArgs: ['--no-kernel-verdicts'] }).start();
  });
  after(async () => {
    client?.kill();
    await fw?.close();
  });

  it("answers a known program's new connections itself, and each is still counted by the service", async () => {
    client = new Client(fw);
    assert.deepEqual(await client.connect(fw.net.serverV4, 80, 20), Array(20).fill('ok'));
    const counters = await fw.helperCounters();
    // The first is decided by the service, the second from the JS cache (which arms the fast path).
    assert.ok(counters.fastAnswered >= 15, `fast path answered ${counters.fastAnswered} of 20`);
    // Each one's caller read from what our chain's flow note filter noted, none asked of sock_diag.
    assert.equal(counters.fastByFlow, counters.fastAnswered);
    assert.deepEqual(await fw.counters(), { total_connections: 20, allowed_connections: 20, blocked_connections: 0 });
  });

  it("the same pid after an exec is not answered from the old program's verdict", async () => {
    assert.ok(client);
    assert.deepEqual(await client.connect(fw.net.serverV4, 80, 5), Array(5).fill('ok'));
    const before = (await fw.helperCounters()).fastAnswered;
    assert.ok(before >= 20, `fast path answered ${before} of 25`);
    // The same interpreter under another path, which no rule allows: it runs the same script,
    // so its sockets get the same fd numbers the old program's did.
    const other = join(fw.dir.path, 'other-python');
    copyFileSync(PYTHON, other);
    await client.exec([other, CLIENT]);
    assert.deepEqual(await client.connect(fw.net.serverV4, 80, 1), ['fail'], 'another program got through as the one it replaced');
    assert.equal((await fw.helperCounters()).fastAnswered, before);
    const c = await fw.counters();
    assert.equal(c.allowed_connections, 25);
    assert.ok(c.blocked_connections >= 1);
    client.kill();
  });

  it('deleting the rule stops the fast path at once', async () => {
    client = new Client(fw);
    assert.deepEqual(await client.connect(fw.net.serverV4, 80, 10), Array(10).fill('ok'));
    const conn = await GuiConnection.connect(fw.guiSocket);
    const deleted = await conn.request({ type: 'delete_rule', key: `${PYTHON}:80` }, 'rule_deleted');
    conn.close();
    assert.equal(deleted['success'], true);
    assert.deepEqual(await client.connect(fw.net.serverV4, 80, 1), ['fail'], 'a fast-path allow outlived its rule');
  });
});
