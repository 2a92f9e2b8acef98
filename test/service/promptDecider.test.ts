// The Decider with the prompt broker: a held connection never holds up any other.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Verdict } from '../../common/types.js';
import { Decider } from '../../service/decider.js';
import { Policy } from '../../service/policy.js';
import { AnswerRecorder } from '../../service/prompts/answerRecorder.js';
import { GuiPromptBroker } from '../../service/prompts/promptBroker.js';
import { RuleSet } from '../../service/rules/ruleSet.js';
import { SessionDecisions } from '../../service/sessions.js';
import { Stats } from '../../service/stats.js';
import { Whitelist } from '../../service/whitelist.js';
import { config, connection, FakeClock, FixedAuthorizer, RecordingClient, silentLog } from '../support/promptFakes.js';

function setup(clientCount = 1) {
  const clock = new FakeClock();
  const clients = Array.from({ length: clientCount }, () => new RecordingClient());
  const sessions = new SessionDecisions(() => clock.now());
  const built = RuleSet.fromJSON({ '/usr/bin/wget:80': true });
  assert.ok(built.ok);
  const cfg = config({ timeoutSeconds: 60 });
  const policy = new Policy({ config: () => cfg, rules: () => built.rules, sessions, whitelist: new Whitelist() });
  const later: { verdicts: Verdict[]; epoch: number }[] = [];
  const stats = new Stats();
  const decider = new Decider({
    policy,
    stats,
    log: silentLog,
    sendVerdicts: (verdicts, epoch) => later.push({ verdicts, epoch }),
    holdMs: () => 65_000,
    logDecisions: () => false,
  });
  const broker = new GuiPromptBroker({
    config: () => cfg,
    clients: () => clients,
    recorder: new AnswerRecorder({
      sessions,
      rules: { setRule: async () => ({ ok: false, error: 'unused' }) },
      authorizer: new FixedAuthorizer({ ok: true }),
      log: silentLog,
    }),
    log: silentLog,
    clock,
  });
  decider.setPromptBroker(broker);
  return { decider, broker, clients, later, stats, clock };
}

describe('decisions while prompts are open', () => {
  it('holds the unknown connections of a batch and decides the ruled one in the same batch', () => {
    const { decider, broker, clients, later, stats } = setup();
    const a = connection({ exe: '/usr/bin/curl', port: 80 }).record;
    const c = connection({ exe: '/usr/bin/wget', port: 80 }).record;
    const b = connection({ exe: '/usr/bin/nc', port: 80 }).record;
    const verdicts = decider.decideBatch([a, c, b], 7);
    assert.deepEqual(verdicts, [
      { packetId: a.packetId, action: 'hold', holdMs: 65_000 },
      { packetId: c.packetId, action: 'accept' },
      { packetId: b.packetId, action: 'hold', holdMs: 65_000 },
    ]);
    const [reqA, reqB] = clients[0]!.ofType('connection_request');
    broker.answer(clients[0]!, { requestId: reqB!['request_id'] as string, allow: false, permanent: false, allPorts: false, duration: 'once' });
    assert.deepEqual(later, [{ verdicts: [{ packetId: b.packetId, action: 'drop' }], epoch: 7 }]);
    broker.answer(clients[0]!, { requestId: reqA!['request_id'] as string, allow: true, permanent: false, allPorts: false, duration: 'once' });
    assert.deepEqual(later[1], { verdicts: [{ packetId: a.packetId, action: 'accept' }], epoch: 7 });
    assert.deepEqual(stats.snapshot(), { total: 3, allowed: 2, blocked: 1 });
  });

  it('counts a SYN retried while its connection waits as the same connection', () => {
    const { decider, broker, clients, later, stats } = setup();
    const first = connection({ exe: '/usr/bin/curl', port: 80, srcPort: 50200 }).record;
    const retry = connection({ exe: '/usr/bin/curl', port: 80, srcPort: 50200 }).record;
    const other = connection({ exe: '/usr/bin/curl', port: 80, srcPort: 50201 }).record;
    decider.decideBatch([first], 1);
    decider.decideBatch([retry, other], 1);
    const [req] = clients[0]!.ofType('connection_request');
    broker.answer(clients[0]!, { requestId: req!['request_id'] as string, allow: false, permanent: false, allPorts: false, duration: 'once' });
    assert.deepEqual(
      later.map((l) => l.verdicts[0]!.packetId),
      [first.packetId, retry.packetId, other.packetId],
    );
    assert.deepEqual(stats.snapshot(), { total: 2, allowed: 0, blocked: 2 });
    const again = connection({ exe: '/usr/bin/curl', port: 80, srcPort: 50200 }).record;
    assert.deepEqual(decider.decideBatch([again], 1), [{ packetId: again.packetId, action: 'drop' }]);
    assert.deepEqual(stats.snapshot(), { total: 2, allowed: 0, blocked: 2 }, 'a retry after the answer was counted');
  });

  it('with no client connected, applies default_action at once', () => {
    const { decider } = setup(0);
    const r = connection({ exe: '/usr/bin/curl', port: 80 }).record;
    assert.deepEqual(decider.decideBatch([r], 1), [{ packetId: r.packetId, action: 'drop' }]);
  });

  it('a retried SYN after "deny once" is dropped at once, without a second popup', () => {
    const { decider, broker, clients } = setup();
    const first = connection({ exe: '/usr/bin/curl', port: 80, srcPort: 50123 }).record;
    decider.decideBatch([first], 1);
    const [req] = clients[0]!.ofType('connection_request');
    broker.answer(clients[0]!, { requestId: req!['request_id'] as string, allow: false, permanent: false, allPorts: false, duration: 'once' });
    const retry = connection({ exe: '/usr/bin/curl', port: 80, srcPort: 50123 }).record;
    assert.deepEqual(decider.decideBatch([retry], 1), [{ packetId: retry.packetId, action: 'drop' }]);
    assert.equal(clients[0]!.ofType('connection_request').length, 1);
  });

  it("a session answer decides the program's next connection without asking", () => {
    const { decider, broker, clients } = setup();
    decider.decideBatch([connection({ exe: '/usr/bin/curl', port: 80 }).record], 1);
    const [req] = clients[0]!.ofType('connection_request');
    broker.answer(clients[0]!, { requestId: req!['request_id'] as string, allow: true, permanent: false, allPorts: true, duration: 'session' });
    const next = connection({ exe: '/usr/bin/curl', port: 8080 }).record;
    assert.deepEqual(decider.decideBatch([next], 1), [{ packetId: next.packetId, action: 'accept' }]);
  });
});
