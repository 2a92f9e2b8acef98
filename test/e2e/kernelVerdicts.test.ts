// Issue 20: known connections decided in the kernel. With a path rule for a program, the cgroup
// programs (native/bpf/caller.bpf.c) decide its connections at connect()/sendmsg() by its
// executable's inode: an allowed TCP connection is marked and accepted before the queue, a
// denied TCP connect() fails with EPERM at once, a denied UDP datagram fails at sendmsg(), an
// allowed UDP datagram is matched by our chain's socket filter and accepted before the queue. Each
// decision still reaches the service (counted, journaled). A copy of the program at another path
// is another inode: it goes to the queue as before. Real helper and service, in namespaces.
import assert from 'node:assert/strict';
import { copyFileSync, renameSync, realpathSync, writeFileSync } from 'node:fs';
import { describe, it, type TestContext } from 'node:test';
import { GuiConnection } from '../../cli/guiClient.js';
import type { HelperCounters } from '../../common/wire.js';
import { REFRESH_MS } from '../../helper/kernelVerdicts.js';
import { TestFirewall, type FirewallSetup } from '../support/firewall.js';

const CURL = '/usr/bin/curl';
const PYTHON = realpathSync('/usr/bin/python3');
const ATTEMPTS = 50;

/** Times ATTEMPTS TCP connect()s to argv[1]:argv[2] (µs each) and the errno each failed with. */
const TIMED_CONNECTS = `
import errno, json, socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = []
for _ in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t = time.perf_counter_ns()
    try:
        s.connect((host, port))
        code = 'connected'
    except OSError as e:
        code = errno.errorcode.get(e.errno, str(e.errno))
    out.append([(time.perf_counter_ns() - t) / 1000, code])
    s.close()
print(json.dumps(out))
`;

/** Sends one UDP datagram to argv[1]:argv[2]: prints "sent" or the errno's name. */
const SEND_DATAGRAM = `
import errno, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.sendto(b'x', (sys.argv[1], int(sys.argv[2])))
    print('sent')
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
`;

/**
 * UDP steps on one socket, from argv[1] on, each printed as a result in a JSON list:
 * `sendto:PORT` (unconnected), `connect:PORT`, `send` (on the connected socket), `sleep:SECONDS`
 * (so that the queue still finds the process: a sender gone is credited to no one),
 * `exec:PATH` (hands the socket to PATH run with this same script and the steps after it).
 * A result is "ok" or the errno's name. SCRIPT: this text, defined by udpSteps().
 */
const UDP_STEPS = `
import errno, json, os, socket, sys, time
host, steps = sys.argv[1], sys.argv[2:]
fd = int(os.environ.get('UDP_FD', '-1'))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if fd < 0 else socket.socket(fileno=fd)
out = json.loads(os.environ.get('UDP_OUT', '[]'))
for i, step in enumerate(steps):
    op, _, arg = step.partition(':')
    if op == 'exec':
        os.set_inheritable(s.fileno(), True)
        os.environ.update(UDP_FD=str(s.fileno()), UDP_OUT=json.dumps(out))
        os.execv(arg, [arg, '-c', 'SCRIPT = %r\\n%s' % (SCRIPT, SCRIPT), host] + steps[i + 1:])
    try:
        if op == 'sendto':
            s.sendto(b'x', (host, int(arg)))
        elif op == 'connect':
            s.connect((host, int(arg)))
        elif op == 'send':
            s.send(b'x')
        elif op == 'sleep':
            time.sleep(float(arg))
        out.append('ok')
    except OSError as e:
        out.append(errno.errorcode.get(e.errno, str(e.errno)))
print(json.dumps(out))
`;

/** Runs UDP_STEPS with python3 (or another interpreter) in the client namespace. */
function udpSteps(fw: TestFirewall, steps: string[], python = PYTHON): string[] {
  const script = `SCRIPT = ${JSON.stringify(UDP_STEPS)}\n${UDP_STEPS}`;
  const run = fw.net.run(fw.net.client, python, ['-c', script, fw.net.serverV4, ...steps]);
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout.trim().split('\n').at(-1)!) as string[];
}

/** Waits until the server counted `want` datagrams on port, or a second passed. */
async function datagramsOn(fw: TestFirewall, port: number, want: number): Promise<number> {
  for (let i = 0; i < 20 && fw.datagramsReceived(port) < want; i++) await new Promise((r) => setTimeout(r, 50));
  return fw.datagramsReceived(port);
}

async function withFirewall(setup: FirewallSetup, fn: (fw: TestFirewall) => Promise<void>): Promise<void> {
  const fw = new TestFirewall({ ...setup, config: { mode: 'enforcement', log_decisions: true, ...setup.config } });
  try {
    await fw.start();
    if (!(setup.helperArgs ?? []).includes('--no-kernel-verdicts') && setup.helperWrapper === undefined) await fw.helper!.waitFor('path rules for the kernel');
    await fn(fw);
  } finally {
    await fw.close();
  }
}

interface HelperStatus {
  capabilities: string[];
  counters: HelperCounters;
}

/** The helper's capabilities, and its counters as a heartbeat sent after this call carried them. */
async function helperStatus(fw: TestFirewall): Promise<HelperStatus> {
  const counters = await fw.helperCounters();
  return { capabilities: ((await fw.status())['helper'] as { capabilities: string[] }).capabilities, counters };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function deleteRule(fw: TestFirewall, key: string): Promise<void> {
  const conn = await GuiConnection.connect(fw.guiSocket);
  try {
    const deleted = await conn.request({ type: 'delete_rule', key }, 'rule_deleted');
    assert.equal(deleted['success'], true);
  } finally {
    conn.close();
  }
}

describe('path rules decided in the kernel', () => {
  it('an allowed program connects without the queue, and the service counts and journals the decision', async () => {
    await withFirewall({ rules: { [`${CURL}:80`]: true } }, async (fw) => {
      for (const family of [4, 6] as const) assert.match(fw.iptablesRules(family), /--mark 0x400000\/0x400000 .*-j ACCEPT/);
      assert.equal(fw.http(fw.net.serverV4), true, 'HTTP request failed');
      assert.equal(fw.http(fw.net.serverV6), true, 'HTTP request over IPv6 failed');
      assert.deepEqual(await fw.counters(), { total_connections: 2, allowed_connections: 2, blocked_connections: 0 });
      const decision = await fw.daemon!.waitFor('allowed');
      assert.equal(decision['exe'], CURL);
      assert.equal(decision['attribution'], 'kernel');
      assert.equal(decision['reason'], 'rule');
      assert.equal(decision['ruleKey'], `${CURL}:80`);
      assert.equal(decision['port'], 80);
      const helper = await helperStatus(fw);
      assert.ok(helper.capabilities.includes('kernel_verdicts'), String(helper.capabilities));
      assert.equal(helper.counters.packets, 0, 'a connection went through the queue');
      assert.equal(helper.counters.kernelDecided, 2);
    });
  });

  it("a denied program's TCP connect() fails with EPERM at once, every one of them reported", async (t: TestContext) => {
    await withFirewall({ rules: { [`${PYTHON}:80`]: false } }, async (fw) => {
      const run = fw.net.run(fw.net.client, PYTHON, ['-c', TIMED_CONNECTS, fw.net.serverV4, '80', String(ATTEMPTS)]);
      assert.equal(run.code, 0, run.stderr);
      const results = JSON.parse(run.stdout) as [number, string][];
      assert.deepEqual(new Set(results.map(([, code]) => code)), new Set(['EPERM']));
      const micros = results.map(([us]) => us).sort((a, b) => a - b);
      const p50 = percentile(micros, 50);
      const p99 = percentile(micros, 99);
      t.diagnostic(`denied connect() to EPERM over ${ATTEMPTS}: p50 ${p50.toFixed(1)} µs, p99 ${p99.toFixed(1)} µs, max ${micros.at(-1)!.toFixed(1)} µs`);
      assert.ok(p99 < 1000, `p99 ${p99} µs`);
      assert.equal(fw.connectionsReceived(80), 0);
      assert.deepEqual(await fw.counters(), { total_connections: ATTEMPTS, allowed_connections: 0, blocked_connections: ATTEMPTS });
      const decision = await fw.daemon!.waitFor('blocked');
      assert.equal(decision['exe'], PYTHON);
      assert.equal(decision['attribution'], 'kernel');
      assert.equal(decision['connections'], ATTEMPTS, 'one grouped report per report window');
      const helper = await helperStatus(fw);
      assert.equal(helper.counters.packets, 0);
      assert.equal(helper.counters.kernelDecided, ATTEMPTS);
    });
  });

  it("a denied program's UDP datagram fails at sendmsg() with EPERM, and is counted", async () => {
    await withFirewall({ rules: { [`${PYTHON}:9999`]: false }, udpPorts: [9999] }, async (fw) => {
      const run = fw.net.run(fw.net.client, PYTHON, ['-c', SEND_DATAGRAM, fw.net.serverV4, '9999']);
      assert.equal(run.stdout.trim(), 'EPERM', run.stderr);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(fw.datagramsReceived(9999), 0);
      assert.deepEqual(await fw.counters(), { total_connections: 1, allowed_connections: 0, blocked_connections: 1 });
    });
  });

  it('deleting the allow rule stops it at once: the next connection goes to the queue and is denied', async () => {
    await withFirewall({ rules: { [`${CURL}:80`]: true } }, async (fw) => {
      assert.equal(fw.http(fw.net.serverV4), true);
      await deleteRule(fw, `${CURL}:80`);
      assert.equal(fw.http(fw.net.serverV4, 1), false, 'the kernel still allowed it after the rule was deleted');
      const c = await fw.counters();
      assert.equal(c.allowed_connections, 1);
      assert.ok(c.blocked_connections >= 1);
      const blocked = await fw.daemon!.waitFor('blocked');
      assert.equal(blocked['exe'], CURL);
      assert.notEqual(blocked['attribution'], 'kernel');
    });
  });

  it('a copy of an allowed program at another path is another file: it goes to the queue and is denied as before', async () => {
    await withFirewall({ rules: { [`${CURL}:80`]: true } }, async (fw) => {
      const copy = `${fw.dir.path}/curl-copy`;
      copyFileSync(CURL, copy);
      const run = fw.net.run(fw.net.client, copy, ['-s', '-o', '/dev/null', '-m', '1', `http://${fw.net.serverV4}/`]);
      assert.notEqual(run.code, 0, 'the copy got out');
      const blocked = await fw.daemon!.waitFor('blocked');
      assert.equal(blocked['exe'], copy);
      assert.equal(blocked['attribution'], 'sock_diag');
      assert.equal(blocked['reason'], 'default');
      const helper = await helperStatus(fw);
      assert.ok(helper.counters.packets >= 1, 'the copy never reached the queue');
      assert.equal(helper.counters.kernelDecided, 0);
    });
  });

  it('--no-kernel-verdicts: no accept rule, no capability, the queue decides the allowed program', async () => {
    await withFirewall({ rules: { [`${CURL}:80`]: true }, helperArgs: ['--no-kernel-verdicts'] }, async (fw) => {
      assert.doesNotMatch(fw.iptablesRules(4), /0x400000/);
      assert.equal(fw.http(fw.net.serverV4), true);
      const decision = await fw.daemon!.waitFor('allowed');
      assert.equal(decision['attribution'], 'sock_diag');
      const helper = await helperStatus(fw);
      assert.equal(helper.capabilities.includes('kernel_verdicts'), false);
      assert.ok(helper.counters.packets >= 1);
    });
  });

  it('without CAP_PERFMON the kernel decides nothing: the helper says so, and the queue decides as before', async () => {
    // Root's permitted capabilities after exec are its bounding set; CAP_SYS_ADMIN would stand in for CAP_PERFMON.
    const wrapper = ['setpriv', '--bounding-set=-perfmon,-sys_admin', '--inh-caps=-perfmon,-sys_admin', '--'];
    await withFirewall({ rules: { [`${CURL}:80`]: true, [`${PYTHON}:80`]: false }, helperWrapper: wrapper }, async (fw) => {
      await fw.helper!.waitFor('every new connection goes to the queue');
      assert.doesNotMatch(fw.iptablesRules(4), /0x400000/);
      assert.equal(fw.http(fw.net.serverV4), true);
      const run = fw.net.run(fw.net.client, PYTHON, ['-c', TIMED_CONNECTS, fw.net.serverV4, '80', '1']);
      // Denied by the service through the queue: our chain's reset, not the kernel's EPERM.
      assert.equal((JSON.parse(run.stdout) as [number, string][])[0]![1], 'ECONNREFUSED', run.stderr);
      const helper = await helperStatus(fw);
      assert.equal(helper.capabilities.includes('kernel_verdicts'), false);
      assert.equal(helper.capabilities.includes('caller_exe'), false);
      assert.ok(helper.counters.packets >= 2);
      assert.equal(helper.counters.kernelDecided, 0);
    });
  });

  it('a program replaced at its path (an upgrade: a new inode) is decided in the kernel again once the helper resolved the path anew', async () => {
    await withFirewall({ rules: {} }, async (fw) => {
      const exe = `${fw.dir.path}/curl-upgraded`;
      copyFileSync(CURL, exe);
      writeFileSync(fw.rulesPath, JSON.stringify({ [`${exe}:80`]: true }));
      fw.daemon!.child.kill('SIGHUP');
      // The reload's rules reach the helper: a second set at least (the first came at the service's
      // hello; a reload may send more than one, as rules.json and rules.d load one after the other).
      for (let i = 0; i < 100 && fw.helper!.count('path rules for the kernel') < 2; i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(fw.helper!.count('path rules for the kernel') >= 2);
      const get = (): number => fw.net.run(fw.net.client, exe, ['-s', '-o', '/dev/null', '-m', '2', `http://${fw.net.serverV4}/`]).code;
      assert.equal(get(), 0);
      copyFileSync(CURL, `${exe}.new`);
      renameSync(`${exe}.new`, exe);
      await new Promise((r) => setTimeout(r, REFRESH_MS + 500));
      assert.equal(get(), 0);
      const helper = await helperStatus(fw);
      assert.equal(helper.counters.kernelDecided, 2, 'the new file was not decided in the kernel');
      assert.equal(helper.counters.packets, 0);
    });
  });

  describe('UDP, per datagram', () => {
    it('an allowed UDP datagram gets out without the queue, connected or not, and the first of each flow is reported', async () => {
      await withFirewall({ rules: { [`${PYTHON}:9999`]: true }, udpPorts: [9999] }, async (fw) => {
        for (const family of [4, 6] as const) assert.match(fw.iptablesRules(family), /-p udp .*-m bpf --object-pinned \S+ .*-j ACCEPT/);
        assert.deepEqual(udpSteps(fw, ['sendto:9999', 'sendto:9999', 'connect:9999', 'send']), ['ok', 'ok', 'ok', 'ok']);
        assert.equal(await datagramsOn(fw, 9999, 3), 3);
        const decision = await fw.daemon!.waitFor('allowed');
        assert.equal(decision['exe'], PYTHON);
        assert.equal(decision['attribution'], 'kernel');
        assert.equal(decision['protocol'], 'UDP');
        assert.equal(decision['port'], 9999);
        const helper = await helperStatus(fw);
        assert.ok(helper.capabilities.includes('kernel_udp_allow'), String(helper.capabilities));
        assert.equal(helper.counters.packets, 0, 'a datagram went through the queue');
        // One socket, one destination: one flow, one report (connect() did not change its ends).
        assert.equal(helper.counters.kernelDecided, 1);
      });
    });

    it('from the same socket, a datagram to a port the rule does not name goes to the queue (and is denied there)', async () => {
      await withFirewall({ rules: { [`${PYTHON}:9999`]: true }, udpPorts: [9998, 9999] }, async (fw) => {
        assert.deepEqual(udpSteps(fw, ['sendto:9999', 'sendto:9998', 'sendto:9999']), ['ok', 'ok', 'ok']);
        assert.equal(await datagramsOn(fw, 9999, 2), 2);
        assert.equal(fw.datagramsReceived(9998), 0, 'the queue should have denied port 9998');
        const blocked = await fw.daemon!.waitFor('blocked');
        assert.equal(blocked['port'], 9998);
        assert.notEqual(blocked['attribution'], 'kernel');
        const helper = await helperStatus(fw);
        assert.ok(helper.counters.packets >= 1, 'port 9998 never reached the queue');
        assert.equal(helper.counters.kernelDecided, 1);
      });
    });

    it('deny stays per datagram: one socket sends where it is allowed, fails with EPERM where denied, and sends again', async () => {
      await withFirewall({ rules: { [`${PYTHON}:9997`]: true, [`${PYTHON}:9999`]: false }, udpPorts: [9997, 9999] }, async (fw) => {
        assert.deepEqual(udpSteps(fw, ['sendto:9997', 'sendto:9999', 'sendto:9997']), ['ok', 'EPERM', 'ok']);
        assert.equal(await datagramsOn(fw, 9997, 2), 2);
        assert.equal(fw.datagramsReceived(9999), 0);
        const helper = await helperStatus(fw);
        assert.equal(helper.counters.packets, 0);
        assert.equal(helper.counters.kernelDecided, 2, 'one allowed flow and one denied datagram');
      });
    });

    it('UDP connect() never fails, also to a denied port; what is sent there is not let out', async () => {
      await withFirewall({ rules: { [`${PYTHON}:9999`]: false }, udpPorts: [9999] }, async (fw) => {
        const results = udpSteps(fw, ['connect:9999', 'send']);
        assert.equal(results[0], 'ok');
        assert.equal(await datagramsOn(fw, 9999, 1), 0);
      });
    });

    it('deleting the allow rule stops UDP at once: the next datagram goes to the queue and is denied', async () => {
      await withFirewall({ rules: { [`${PYTHON}:9999`]: true }, udpPorts: [9999] }, async (fw) => {
        assert.deepEqual(udpSteps(fw, ['sendto:9999']), ['ok']);
        assert.equal(await datagramsOn(fw, 9999, 1), 1);
        await deleteRule(fw, `${PYTHON}:9999`);
        assert.deepEqual(udpSteps(fw, ['sendto:9999', 'sleep:1']), ['ok', 'ok']);
        assert.equal(await datagramsOn(fw, 9999, 2), 1, 'the kernel still allowed UDP after the rule was deleted');
        const blocked = await fw.daemon!.waitFor('blocked');
        assert.equal(blocked['exe'], PYTHON);
        assert.notEqual(blocked['attribution'], 'kernel');
        const helper = await helperStatus(fw);
        assert.equal(helper.counters.kernelDecided, 1);
        assert.ok(helper.counters.packets >= 1);
      });
    });

    it('a UDP socket connected by the allowed program and handed to another program by exec does not ride the allow', async () => {
      await withFirewall({ rules: { [`${PYTHON}:9999`]: true }, udpPorts: [9999] }, async (fw) => {
        const copy = `${fw.dir.path}/python-copy`;
        copyFileSync(PYTHON, copy);
        // Same pid, same socket, recorded at connect() as the allowed program: the sender is the copy.
        assert.deepEqual(udpSteps(fw, ['connect:9999', `exec:${copy}`, 'send']), ['ok', 'ok']);
        assert.equal(await datagramsOn(fw, 9999, 1), 0, 'the copy sent on the allowed socket');
        const helper = await helperStatus(fw);
        assert.equal(helper.counters.kernelDecided, 0);
        assert.ok(helper.counters.packets >= 1);
      });
    });

    it('the allowed program run in a user namespace of its own is not decided in the kernel', async () => {
      await withFirewall({ rules: { [`${PYTHON}:9999`]: true }, udpPorts: [9999] }, async (fw) => {
        const run = fw.net.run(fw.net.client, 'unshare', ['-Ur', PYTHON, '-c', SEND_DATAGRAM, fw.net.serverV4, '9999']);
        assert.equal(run.stdout.trim(), 'sent', run.stderr);
        const helper = await helperStatus(fw);
        assert.equal(helper.counters.kernelDecided, 0);
        assert.ok(helper.counters.packets >= 1, 'the datagram never reached the queue');
      });
    });

    it('a helper killed with SIGKILL leaves its filter in the chain (--strict keeps it), which allows nothing once the helper stopped saying it lives', async () => {
      await withFirewall({ rules: { [`${PYTHON}:9999`]: true }, udpPorts: [9999], helperArgs: ['--strict'] }, async (fw) => {
        // One socket, recorded and allowed before the kill, sends again past BQ_VERDICT_ALIVE_NS (5 s):
        // its record and the allow are still in the maps the chain's filter holds.
        const script = `SCRIPT = ${JSON.stringify(UDP_STEPS)}\n${UDP_STEPS}`;
        const sender = fw.net.runAsync(fw.net.client, PYTHON, ['-c', script, fw.net.serverV4, 'sendto:9999', 'sleep:8', 'sendto:9999'], 30_000);
        assert.equal(await datagramsOn(fw, 9999, 1), 1);
        fw.helper!.child.kill('SIGKILL');
        await fw.helper!.exited;
        assert.match(fw.iptablesRules(4), /-m bpf --object-pinned/);
        const run = await sender;
        assert.equal(run.stdout.trim(), '["ok", "ok", "ok"]', run.stderr);
        assert.equal(await datagramsOn(fw, 9999, 2), 1, 'the filter of a dead helper still allowed a datagram');
      });
    });

    it('without a bpf file system the helper says so, and UDP allows go to the queue (TCP stays in the kernel)', async () => {
      await withFirewall(
        { rules: { [`${PYTHON}:9999`]: true, [`${CURL}:80`]: true }, udpPorts: [9999], bpfFs: false, helperArgs: ['--bpf-fs', '/proc'] },
        async (fw) => {
          await fw.helper!.waitFor('no in-kernel UDP allow filter');
          assert.doesNotMatch(fw.iptablesRules(4), /-m bpf/);
          assert.deepEqual(udpSteps(fw, ['sendto:9999', 'sleep:1']), ['ok', 'ok']);
          assert.equal(await datagramsOn(fw, 9999, 1), 1);
          assert.equal(fw.http(fw.net.serverV4), true);
          const helper = await helperStatus(fw);
          assert.equal(helper.capabilities.includes('kernel_udp_allow'), false);
          assert.ok(helper.capabilities.includes('kernel_verdicts'));
          assert.equal(helper.counters.packets, 1, 'the datagram, and only it, went through the queue');
          assert.equal(helper.counters.kernelDecided, 1);
        },
      );
    });
  });
});
