// Every answer the tray can give to an ICMP prompt (port 0) leaves a valid rule or session
// decision, and the next ping is decided by it without a prompt: with a process (its path, all
// ports, since ICMP has none) and without one (`@dest:<ip>:*`). The issue: "Always" on a ping
// prompt gave `error … "@dest:10.201.1.2:0" is not …` and nothing was saved.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { toConnection } from '../../service/connection.js';
import { Policy } from '../../service/policy.js';
import { AnswerRecorder } from '../../service/prompts/answerRecorder.js';
import { connectionRequest } from '../../service/prompts/connectionRequest.js';
import { GuiPromptBroker } from '../../service/prompts/promptBroker.js';
import type { PromptAnswer } from '../../service/prompts/answerScope.js';
import { RuleSet } from '../../service/rules/ruleSet.js';
import { SessionDecisions } from '../../service/sessions.js';
import { Whitelist } from '../../service/whitelist.js';
import { config, connection, FakeClock, FixedAuthorizer, RecordingClient, silentLog } from '../support/promptFakes.js';

function setup() {
  const clock = new FakeClock();
  const tray = new RecordingClient();
  const sessions = new SessionDecisions(() => clock.now());
  const rules = new RuleSet();
  const recorder = new AnswerRecorder({
    sessions,
    rules: { setRule: async (subject, port, allow) => rules.set(subject, port, allow) },
    authorizer: new FixedAuthorizer({ ok: true }),
    log: silentLog,
  });
  const cfg = config();
  const broker = new GuiPromptBroker({ config: () => cfg, clients: () => [tray], recorder, log: silentLog, clock });
  const policy = new Policy({ config: () => cfg, rules: () => rules, sessions, whitelist: new Whitelist() });
  return { broker, tray, rules, policy };
}

const ping = (exe: string | null) => connection({ exe, protocol: 1, port: 0, dst: [10, 201, 1, 2] });

const answers: [name: string, a: Omit<PromptAnswer, 'requestId'>, lasting: 'rule' | 'session' | null][] = [
  ['"Always"', { allow: true, permanent: true, allPorts: false, duration: 'always' }, 'rule'],
  ['"Always", all ports', { allow: true, permanent: true, allPorts: true, duration: 'always' }, 'rule'],
  ['"Always" deny (an older tray: permanent only)', { allow: false, permanent: true, allPorts: false, duration: '' }, 'rule'],
  ['"Session"', { allow: true, permanent: false, allPorts: false, duration: 'session' }, 'session'],
  ['"5m"', { allow: false, permanent: false, allPorts: true, duration: '5m' }, 'session'],
  ['"Once"', { allow: true, permanent: false, allPorts: false, duration: 'once' }, null],
];

for (const [who, exe, key] of [
  ['ping (a process)', '/usr/bin/ping', '/usr/bin/ping:*'],
  ['an unknown sender', null, '@dest:10.201.1.2:*:*'],
] as const) {
  describe(`ICMP prompt answers for ${who}`, () => {
    for (const [name, a, lasting] of answers) {
      it(`${name} ${lasting === null ? 'decides only this ping' : `keeps ${key} (${lasting}) for the next ping`}`, async () => {
        const { broker, tray, rules, policy } = setup();
        const first = ping(exe);
        assert.equal(policy.decide(first).kind, 'ask');
        broker.ask(first, () => undefined);
        const request = tray.ofType('connection_request')[0]!;
        assert.equal(request['dest_port'], 0);
        assert.equal(request['protocol'], 'ICMP');
        const outcome = broker.answer(tray, { requestId: request['request_id'] as string, ...a });
        assert.equal(outcome.applied, true);
        if (outcome.applied) await outcome.saved;
        assert.deepEqual(tray.ofType('error'), []);

        const next = policy.decide(ping(exe));
        if (lasting === null) {
          assert.equal(next.kind, 'ask');
          return;
        }
        assert.deepEqual(next, { kind: 'final', allow: a.allow, reason: lasting, ruleKey: key });
        assert.equal(rules.size, lasting === 'rule' ? 1 : 0);
      });
    }
  });
}

describe('the prompt for a connection whose host name is known', () => {
  it('shows "<comm> (<host>)" as app_name, as the old daemon did', () => {
    const conn = { ...connection({ exe: '/usr/bin/curl' }), host: 'www.example.org' };
    assert.equal(connectionRequest('id', conn, false).app_name, 'curl (www.example.org)');
    assert.equal(connectionRequest('id', { ...connection({ exe: null }), host: 'www.example.org' }, false).app_name, 'unknown (www.example.org)');
    assert.equal(connectionRequest('id', connection({ exe: '/usr/bin/curl' }), false).app_name, 'curl');
  });
});

describe("a host name from a resolver that is not the system's (issue 18: forged names)", () => {
  const forged = (): ReturnType<typeof connection> => {
    const conn = connection({ exe: '/usr/bin/python3', port: 80 });
    conn.record.unverifiedHost = 'www.bank.example';
    return toConnection(conn.record);
  };

  it('shows as "<comm> (<host>, unverified)", which add_rule strips like the plain form', () => {
    assert.equal(connectionRequest('id', forged(), false).app_name, 'python3 (www.bank.example, unverified)');
    assert.equal('python3 (www.bank.example, unverified)'.replace(/ \([^()]*\)$/, ''), 'python3');
  });

  it('never matches an @host rule: the policy asks as if no name were known', () => {
    const { rules, policy } = setup();
    rules.set('@host:www.bank.example', 80, true);
    const conn = forged();
    assert.equal(conn.host, undefined);
    assert.equal(policy.decide(conn).kind, 'ask');
    const verified = connection({ exe: '/usr/bin/python3', port: 80 });
    verified.record.host = 'www.bank.example';
    assert.deepEqual(policy.decide(toConnection(verified.record)), { kind: 'final', allow: true, reason: 'rule', ruleKey: '@host:www.bank.example:80' });
  });
});
