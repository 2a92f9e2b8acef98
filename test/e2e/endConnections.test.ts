// Withdrawing an allowance ends the connections it let out (config end_connections): a
// long-lived TCP connection of an allowed program is cut (its socket fails at once) when the
// rule is deleted; with end_connections false it survives. The helper ends only flows it saw
// (helper/liveConnections.ts). Both ways a rule allows: in the queue (--no-kernel-verdicts),
// where the helper saw the connection's ends, and in the kernel (eBPF), where nobody recorded
// its source port: the helper then finds the program's sockets to that destination and ends
// those whose recorded connect() caller is a process the kernel allowed.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, realpathSync } from 'node:fs';
import { after, before, describe, it, type TestContext } from 'node:test';
import { GuiConnection } from '../../cli/guiClient.js';
import { tempDir } from '../support/bastion.js';
import { TestFirewall } from '../support/firewall.js';

const PORT = 7000;
/** Holds every connection open, never writes. */
const SERVER = `require('net').createServer((c) => c.on('error', () => {})).listen(${PORT}, '::')`;
/** Connects, says so, then reports how the connection ended. */
const CLIENT = `
  const s = require('net').connect(${PORT}, process.argv[1], () => console.log('connected'));
  s.on('error', (e) => { console.log('error ' + e.code); process.exit(0); });
  s.on('close', () => { console.log('closed'); process.exit(0); });`;

// The client is a copy of node of the test's own: the kernel takes a rule only for a file with
// one name (helper/kernelVerdicts.ts resolvePath), and the system's node may have another
// (perf's build-id cache, for one, hard-links the binaries it profiled).
const own = tempDir('bastion-endconn-');
const NODE = `${own.path}/node`;
copyFileSync(realpathSync(process.execPath), NODE);
chmodSync(NODE, 0o755);
const RULE = `${NODE}:${PORT}`;
after(() => own.remove());

for (const kernel of [false, true])
  describe(`open connections when their rule is deleted (${kernel ? 'allowed in the kernel' : 'allowed in the queue'})`, () => {
    let fw: TestFirewall;
    let server: ChildProcess | null = null;
    const clients: ChildProcess[] = [];

    before(async () => {
      fw = new TestFirewall({
        config: { mode: 'enforcement', default_action: 'deny' },
        rules: { [RULE]: true },
        helperArgs: kernel ? [] : ['--no-kernel-verdicts'],
      });
      server = fw.net.spawn(fw.net.server, process.execPath, ['-e', SERVER]);
      await fw.start();
    });
    after(async () => {
      for (const c of clients) c.kill('SIGKILL');
      server?.kill('SIGKILL');
      await fw?.close();
    });

    async function gui(message: Record<string, unknown>, reply?: string): Promise<void> {
      const conn = await GuiConnection.connect(fw.guiSocket);
      try {
        if (reply) await conn.request(message, reply);
        else {
          conn.send(message);
          await conn.request({ type: 'list_rules' }, 'rules_list');
        }
      } finally {
        conn.close();
      }
    }

    /** A client connected through the firewall; `output` collects what it says. */
    async function connect(): Promise<{ output: () => string; child: ChildProcess }> {
      let out = '';
      const child = fw.net.spawn(fw.net.client, NODE, ['-e', CLIENT, fw.net.serverV4]);
      clients.push(child);
      child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr?.resume();
      const deadline = Date.now() + 15_000;
      while (!out.includes('connected')) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`client did not connect: ${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return { output: () => out, child };
    }

    async function waitForLine(output: () => string, pattern: RegExp, ms: number): Promise<boolean> {
      const deadline = Date.now() + ms;
      while (Date.now() < deadline) {
        if (pattern.test(output())) return true;
        await new Promise((r) => setTimeout(r, 50));
      }
      return pattern.test(output());
    }

    it('cuts the connection at once when the allow rule is deleted (the program sees it aborted)', async (t: TestContext) => {
      if (kernel && fw.helper!.count('path rules decided in the kernel') === 0) return t.skip('no kernel verdicts here');
      const client = await connect();
      if (kernel) {
        // The kernel's report reaches the service on the helper's next report tick.
        const helper = await fw.helperCounters((c) => c.kernelDecided >= 1);
        assert.ok(helper.kernelDecided >= 1, 'decided in the kernel');
        assert.equal((await fw.counters()).allowed_connections, 1);
      }
      const start = performance.now();
      await gui({ type: 'delete_rule', key: RULE }, 'rule_deleted');
      assert.ok(await waitForLine(client.output, /error ECONNABORTED|closed/, 10_000), `client still connected: ${client.output()}`);
      const ms = performance.now() - start;
      assert.match(client.output(), /error ECONNABORTED/);
      const ended = await fw.helper!.waitFor("open connections ended at the service's request");
      assert.equal(ended['ended'], 1);
      t.diagnostic(`delete_rule to the client's ECONNABORTED: ${ms.toFixed(0)} ms`);
    });

    it('leaves it open with end_connections false', async () => {
      await gui({ type: 'set_config', key: 'end_connections', value: false }, 'config_changed');
      await gui({ type: 'add_rule', app_path: NODE, app_name: 'node', port: PORT, allow: true, all_ports: false });
      const client = await connect();
      await gui({ type: 'delete_rule', key: RULE }, 'rule_deleted');
      assert.equal(await waitForLine(client.output, /error|closed/, 2000), false, client.output());
      assert.equal(fw.helper!.count("open connections ended at the service's request"), 1);
    });
  });
