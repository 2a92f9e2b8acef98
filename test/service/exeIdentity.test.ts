// A program is believed to be the file its path names only when the helper proved it
// (ExeIdentity 'host'): otherwise no path rule, session, whitelist entry or helper cache is its.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ExeIdentity } from '../../common/types.js';
import { Decider } from '../../service/decider.js';
import { Policy } from '../../service/policy.js';
import { FlowMemory } from '../../service/prompts/flowMemory.js';
import { RuleSet } from '../../service/rules/ruleSet.js';
import { SessionDecisions } from '../../service/sessions.js';
import { Stats } from '../../service/stats.js';
import { Whitelist } from '../../service/whitelist.js';
import { config, connection, silentLog } from '../support/promptFakes.js';

const USERS: Record<string, number> = { dnsmasq: 105, 'systemd-resolve': 990, root: 0 };
const whitelist = new Whitelist((user) => USERS[user] ?? null);

function policy(): Policy {
  const built = RuleSet.fromJSON({ '/usr/bin/curl:80': true });
  assert.ok(built.ok);
  const sessions = new SessionDecisions(() => 0);
  sessions.set(1000, '/usr/bin/wget', 80, true, null);
  return new Policy({ config: () => config(), rules: () => built.rules, sessions, whitelist });
}

const DOUBTED: ExeIdentity[] = ['other_user_ns', 'exe_mismatch', 'unverified'];

describe('a path rule, a session and the helper cache', () => {
  it('allow the proven program', () => {
    const p = policy();
    assert.deepEqual(p.decide(connection({ exe: '/usr/bin/curl', port: 80 })), { kind: 'final', allow: true, reason: 'rule', ruleKey: '/usr/bin/curl:80' });
    assert.equal(p.decide(connection({ exe: '/usr/bin/wget', port: 80 })).kind, 'final');
  });

  for (const identity of DOUBTED) {
    it(`never match a program whose path is ${identity}: it is asked about, and its allow is not cached in the helper`, () => {
      const p = policy();
      assert.deepEqual(p.decide(connection({ exe: '/usr/bin/curl', port: 80, identity })), { kind: 'ask' });
      assert.deepEqual(p.decide(connection({ exe: '/usr/bin/wget', port: 80, identity })), { kind: 'ask' });
      const decider = new Decider({
        policy: p,
        stats: new Stats(),
        log: silentLog,
        sendVerdicts: () => undefined,
        holdMs: () => 1000,
        logDecisions: () => false,
        helperCacheMs: () => 5000,
      });
      const events: (string | null)[] = [];
      decider.onDecision((e) => events.push(e.exe));
      const [verdict] = decider.decideBatch([connection({ exe: '/usr/bin/curl', port: 80, identity }).record], 1);
      assert.deepEqual(verdict, { packetId: verdict!.packetId, action: 'drop' }, 'decided without a prompt broker: the default, uncached');
      assert.match(events[0] ?? '', /^\/usr\/bin\/curl \(.+\)$/, 'the monitor is not told why');
    });
  }
});

describe('the system-service whitelist', () => {
  it("lets the proven dnsmasq out on DNS ports only as its service's user", () => {
    const cfg = config({ allowLan: false });
    const as = (uid: number, identity: ExeIdentity = 'host', port = 53) =>
      whitelist.check(connection({ exe: '/usr/sbin/dnsmasq', port, protocol: 17, uid, identity }), cfg);
    assert.equal(as(105), 'system-service');
    assert.equal(as(1000), null, 'another user running a copy at that path');
    assert.equal(as(0), null, 'root is not the user dnsmasq sends as');
    for (const identity of DOUBTED) assert.equal(as(105, identity), null, identity);
    assert.equal(as(105, 'host', 80), null, 'a port that is not its service');
  });

  it('allows nobody for a service whose user does not exist', () => {
    const cfg = config({ allowLan: false });
    const conn = connection({ exe: '/usr/sbin/unbound', port: 53, protocol: 17, uid: 0 });
    assert.equal(whitelist.check(conn, cfg), null);
  });
});

describe('remembered prompt answers', () => {
  it("are kept per user: one user's flood of flows does not make the service forget another user's", () => {
    const flows = new FlowMemory({ ttlMs: 1000, maxEntriesPerUid: 2, now: () => 0 });
    const deny = { kind: 'final', allow: false, reason: 'prompt', ruleKey: null } as const;
    const victim = connection({ uid: 1000, srcPort: 40001 });
    flows.remember(victim, deny);
    for (let port = 50000; port < 50100; port++) flows.remember(connection({ uid: 1001, srcPort: port }), deny);
    assert.equal(flows.recall(victim), deny);
    assert.equal(flows.size, 3);
    assert.equal(flows.recall(connection({ uid: 1001, srcPort: 50000 })), null, "the flooding user's oldest went");
  });
});
