// Which open connections end when an allowance is withdrawn (service/liveFlows.ts): those a
// rule, a session decision or a lasting answer allowed and the policy no longer allows; never
// a once-only answer's, a learning-mode or a whitelisted one, nor UDP.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PacketRecord } from '../../common/types.js';
import { DEFAULT_CONFIG, type BastionConfig } from '../../service/config.js';
import { toConnection } from '../../service/connection.js';
import type { DecisionEvent } from '../../service/decider.js';
import { LiveFlows } from '../../service/liveFlows.js';
import { Policy, type DecisionReason } from '../../service/policy.js';
import { RuleSet } from '../../service/rules/ruleSet.js';
import { SessionDecisions } from '../../service/sessions.js';
import { Whitelist } from '../../service/whitelist.js';

const EXE = '/usr/bin/ssh';

function record(srcPort: number, protocol = 6): PacketRecord {
  return {
    packetId: srcPort,
    family: 4,
    protocol,
    srcAddr: new Uint8Array([192, 0, 2, 1]),
    dstAddr: new Uint8Array([198, 51, 100, 7]),
    srcPort,
    dstPort: 22,
    icmpType: -1,
    icmpCode: -1,
    inIfindex: 0,
    outIfindex: 2,
    uid: 1000,
    gid: 1000,
    malformed: false,
    process: {
      pid: 7,
      uid: 1000,
      exe: EXE,
      exeDeleted: false,
      comm: 'ssh',
      cmdline: [],
      ppid: 1,
      parentExe: '',
      startTime: 1,
      identity: 'host',
      otherMountNs: false,
    },
    socketInode: 1,
    attribution: 'sock_diag',
    lookupMicros: 1,
    payloadLength: 60,
  };
}

function setup(rules: Record<string, boolean>) {
  let clock = 0;
  let ruleSet = (RuleSet.fromJSON(rules) as { ok: true; rules: RuleSet }).rules;
  const config: BastionConfig = { ...DEFAULT_CONFIG, mode: 'enforcement' };
  const sessions = new SessionDecisions(() => clock);
  const policy = new Policy({ config: () => config, rules: () => ruleSet, sessions, whitelist: new Whitelist(() => null) });
  const live = new LiveFlows(policy);
  const decide = (srcPort: number, reason: DecisionReason, ruleKey: string | null, protocol = 6): void => {
    const conn = toConnection(record(srcPort, protocol));
    live.decided({ allow: true, reason, ruleKey } as DecisionEvent, conn);
  };
  return {
    live,
    decide,
    sessions,
    config,
    setRules: (r: Record<string, boolean>) => (ruleSet = (RuleSet.fromJSON(r) as { ok: true; rules: RuleSet }).rules),
    tick: (ms: number) => (clock += ms),
  };
}

describe('LiveFlows', () => {
  it("ends a rule's connections when the rule is deleted, and only once", () => {
    const s = setup({ [`${EXE}:22`]: true });
    s.decide(40001, 'rule', `${EXE}:22`);
    assert.deepEqual(s.live.noLongerAllowed(), []);
    s.setRules({});
    assert.deepEqual(
      s.live.noLongerAllowed().map((f) => f.srcPort),
      [40001],
    );
    assert.deepEqual(s.live.noLongerAllowed(), []);
  });

  it('ends it when the rule is narrowed to another port, keeps it when widened', () => {
    const s = setup({ [`${EXE}:22`]: true });
    s.decide(40001, 'rule', `${EXE}:22`);
    s.setRules({ [`${EXE}:*`]: true });
    assert.deepEqual(s.live.noLongerAllowed(), []);
    s.setRules({ [`${EXE}:443`]: true });
    assert.equal(s.live.noLongerAllowed().length, 1);
  });

  it("ends a timed answer's connections when it runs out (checked without a change event)", () => {
    const s = setup({});
    s.sessions.set(1000, EXE, 22, true, 5 * 60_000);
    s.decide(40002, 'prompt', `${EXE}:22`);
    assert.equal(s.live.anyBySession, true);
    s.tick(60_000);
    assert.deepEqual(s.live.noLongerAllowed(true), []);
    s.tick(5 * 60_000);
    assert.equal(s.live.noLongerAllowed(true).length, 1);
  });

  it('never revisits a once-only answer, learning mode, the whitelist, or UDP', () => {
    const s = setup({ [`${EXE}:22`]: true });
    s.decide(40003, 'prompt', null);
    s.decide(40004, 'learning', null);
    s.decide(40005, 'localhost', null);
    s.decide(40006, 'rule', `${EXE}:22`, 17);
    assert.equal(s.live.size, 0);
  });
});
