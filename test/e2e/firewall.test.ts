// The firewall end to end: real NFQUEUE and iptables in namespaces the test creates, the real
// helper and service over ZeroMQ. Success criterion of the original plan: in enforcement mode,
// with a rule for the HTTP client and none for ping, ping fails and HTTP succeeds.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { GuiConnection } from '../../cli/guiClient.js';
import { TestFirewall, type FirewallSetup } from '../support/firewall.js';

const CURL = '/usr/bin/curl';

async function withFirewall(setup: FirewallSetup, fn: (fw: TestFirewall) => Promise<void>): Promise<void> {
  const fw = new TestFirewall(setup);
  try {
    await fw.start();
    await fn(fw);
  } finally {
    await fw.close();
  }
}

const jumps = (rules: string, chain: string): number => rules.split('\n').filter((l) => l === `-A OUTPUT -j ${chain}`).length;

describe('enforcement with a rule for the HTTP client', () => {
  for (const family of [4, 6] as const) {
    it(`blocks ping and allows HTTP over IPv${family}, counting one of each`, async () => {
      await withFirewall({ rules: { [`${CURL}:80`]: true } }, async (fw) => {
        const server = family === 4 ? fw.net.serverV4 : fw.net.serverV6;
        assert.equal(fw.ping(server), false, 'ping got a reply');
        assert.equal(fw.http(server), true, 'HTTP request failed');
        assert.deepEqual(await fw.counters(), { total_connections: 2, allowed_connections: 1, blocked_connections: 1 });
      });
    });
  }
});

describe('rules and modes', () => {
  it('a deny rule blocks the program it names', async () => {
    await withFirewall({ rules: { [`${CURL}:80`]: false } }, async (fw) => {
      assert.equal(fw.http(fw.net.serverV4, 1), false);
      const c = await fw.counters();
      assert.equal(c.allowed_connections, 0);
      assert.ok(c.blocked_connections >= 1);
    });
  });

  it('learning mode allows a program without rules and records the decision', async () => {
    await withFirewall({ config: { mode: 'learning', log_decisions: true } }, async (fw) => {
      assert.equal(fw.http(fw.net.serverV4), true);
      assert.deepEqual(await fw.counters(), { total_connections: 1, allowed_connections: 1, blocked_connections: 0 });
      const decision = await fw.daemon!.waitFor('allowed');
      assert.equal(decision['exe'], CURL);
      assert.equal(decision['reason'], 'learning');
      assert.equal(decision['port'], 80);
      assert.equal(decision['attribution'], 'sock_diag');
    });
  });

  it('a rule added over the GUI socket survives a service restart', async () => {
    await withFirewall({}, async (fw) => {
      assert.equal(fw.http(fw.net.serverV4, 1), false, 'no rule yet: default deny');
      const conn = await GuiConnection.connect(fw.guiSocket);
      conn.send({ type: 'add_rule', app_path: CURL, app_name: 'curl', port: 80, allow: true, all_ports: false });
      const listed = await conn.request({ type: 'list_rules' }, 'rules_list');
      conn.close();
      assert.equal((listed['rules'] as Record<string, unknown>)[`${CURL}:80`], true);

      await fw.daemon!.stop();
      await fw.startDaemon();
      assert.equal(JSON.parse(readFileSync(fw.rulesPath, 'utf8'))[`${CURL}:80`], true);
      assert.equal(fw.http(fw.net.serverV4), true, 'rule lost across the restart');
      assert.deepEqual(await fw.counters(), { total_connections: 1, allowed_connections: 1, blocked_connections: 0 });
    });
  });
});

describe('the helper verdict cache', () => {
  // The kernel would decide curl's connections itself (kernelVerdicts.test.ts): this is the queue's own cache.
  it('a second connection allowed by the same path rule is answered by the helper, and deleting the rule takes effect at once', async () => {
    await withFirewall({ rules: { [`${CURL}:80`]: true }, helperArgs: ['--no-kernel-verdicts'] }, async (fw) => {
      assert.equal(fw.http(fw.net.serverV4), true);
      assert.equal(fw.http(fw.net.serverV4), true);
      assert.equal((await fw.helperCounters()).cacheHits, 1);
      assert.deepEqual(await fw.counters(), { total_connections: 2, allowed_connections: 2, blocked_connections: 0 });

      const conn = await GuiConnection.connect(fw.guiSocket);
      const deleted = await conn.request({ type: 'delete_rule', key: `${CURL}:80` }, 'rule_deleted');
      conn.close();
      assert.equal(deleted['success'], true);
      assert.equal(fw.http(fw.net.serverV4, 1), false, 'a cached allow outlived its rule');
      const c = await fw.counters();
      assert.equal(c.allowed_connections, 2);
      assert.ok(c.blocked_connections >= 1);
    });
  });
});

describe('faults', () => {
  it('kill -9 of the service: new connections get the fallback verdict, and a restarted service takes over', async () => {
    await withFirewall({ rules: { [`${CURL}:80`]: false } }, async (fw) => {
      assert.equal(fw.http(fw.net.serverV4, 1), false, 'the deny rule applies while the service runs');
      fw.daemon!.child.kill('SIGKILL');
      await fw.daemon!.exited;
      await fw.helper!.waitFor('policy service gone');
      // fail-open (the default): with no service, the helper accepts.
      assert.equal(fw.http(fw.net.serverV4), true, 'fallback verdict was not accept');
      const summary = await fw.helper!.waitFor('fallback verdicts applied');
      assert.ok((summary['byReason'] as Record<string, number>)['no_service']! >= 1);

      await fw.startDaemon();
      assert.equal(fw.http(fw.net.serverV4, 1), false, 'the restarted service did not take over');
      assert.equal((await fw.counters()).blocked_connections >= 1, true);
      assert.equal(fw.helper!.count('helper started'), 1, 'the helper restarted');
    });
  });

  it('fail-closed: with the service killed, new connections are dropped', async () => {
    await withFirewall({ rules: { [`${CURL}:80`]: true }, helperArgs: ['--fail-closed'] }, async (fw) => {
      assert.equal(fw.http(fw.net.serverV4), true);
      fw.daemon!.child.kill('SIGKILL');
      await fw.helper!.waitFor('policy service gone');
      assert.equal(fw.http(fw.net.serverV4, 1), false, 'fallback verdict was not drop');
    });
  });

  it('a helper restarted after kill -9 leaves exactly one set of rules, and stopping it leaves none', async () => {
    const fw = new TestFirewall({ rules: { [`${CURL}:80`]: true } });
    try {
      await fw.start();
      for (const family of [4, 6] as const) assert.equal(jumps(fw.iptablesRules(family), fw.chain), 1);
      fw.helper!.child.kill('SIGKILL');
      await fw.helper!.exited;
      // With --queue-bypass, traffic flows while no helper runs.
      assert.equal(fw.http(fw.net.serverV4), true, 'traffic blocked while the helper was down');
      for (const family of [4, 6] as const) assert.equal(jumps(fw.iptablesRules(family), fw.chain), 1, 'kill -9 removed rules');

      await fw.startHelper();
      await fw.daemon!.waitFor('helper connected');
      for (const family of [4, 6] as const) {
        const rules = fw.iptablesRules(family);
        assert.equal(jumps(rules, fw.chain), 1, `IPv${family}: ${rules}`);
        // One set: the two rules that reject what the helper denied, the two that accept what
        // the kernel allowed (TCP by its mark, UDP by its filter), the one that notes queued SYNs
        // for the fast path (no target), the system accounts' queue rule, then the main one.
        const ours = rules.split('\n').filter((l) => l.startsWith(`-A ${fw.chain} `));
        assert.equal(ours.length, 7, rules);
        assert.match(ours[0]!, /^-A BASTION-OUT -p tcp -m mark --mark 0xb4570de1 .*-j REJECT --reject-with tcp-reset$/);
        assert.match(
          ours[1]!,
          new RegExp(`^-A BASTION-OUT -m mark --mark 0xb4570de1 .*-j REJECT --reject-with icmp${family === 6 ? '6' : ''}-port-unreachable$`),
        );
        assert.match(ours[2]!, /^-A BASTION-OUT -m mark --mark 0x400000\/0x400000 -m conntrack --ctstate NEW .*-j ACCEPT$/);
        assert.match(ours[3]!, /^-A BASTION-OUT -p udp -m conntrack --ctstate NEW -m bpf --object-pinned \S+\/bastion-BASTION-OUT-udp-allow .*-j ACCEPT$/);
        assert.match(
          ours[4]!,
          /^-A BASTION-OUT -p tcp -m tcp --tcp-flags SYN,ACK SYN -m bpf --object-pinned \S+\/bastion-BASTION-OUT-flow-note -m comment --comment "[^"]+"$/,
        );
        assert.match(ours[5]!, /-m owner --uid-owner 0-999 .*-j NFQUEUE --queue-num 3 --queue-bypass$/);
        assert.match(ours[6]!, new RegExp(`-j NFQUEUE --queue-num ${fw.queue} --queue-bypass$`));
      }
      await fw.helper!.stop();
      for (const family of [4, 6] as const) {
        const rules = fw.iptablesRules(family);
        assert.equal(rules.includes(fw.chain), false, `IPv${family} rules left behind: ${rules}`);
      }
    } finally {
      await fw.close();
    }
  });
});
