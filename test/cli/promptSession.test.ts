// `bastion prompt` without a terminal or a socket: keys in, messages and text out.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NO_COLORS } from '../../cli/colors.js';
import { parseServiceMessage, type ConnectionRequestMessage } from '../../common/guiProtocol.js';
import { actionForKey, KEYS, replyFor, TIMED_CHOICES } from '../../cli/promptKeys.js';
import { PromptSession } from '../../cli/promptSession.js';
import { Decider } from '../../service/decider.js';
import { Policy } from '../../service/policy.js';
import { AnswerRecorder } from '../../service/prompts/answerRecorder.js';
import { parseAnswerScope } from '../../service/prompts/answerScope.js';
import { GuiPromptBroker } from '../../service/prompts/promptBroker.js';
import { RuleSet } from '../../service/rules/ruleSet.js';
import { SessionDecisions } from '../../service/sessions.js';
import { Stats } from '../../service/stats.js';
import { Whitelist } from '../../service/whitelist.js';
import { config, connection, FakeClock, FixedAuthorizer, RecordingClient, silentLog } from '../support/promptFakes.js';

const REQ: ConnectionRequestMessage = {
  type: 'connection_request',
  request_id: 'curl-6790a1b21a2b3c',
  app_name: 'curl',
  app_path: '/usr/bin/curl',
  app_category: 'unknown',
  dest_ip: '198.18.0.2',
  dest_port: 443,
  protocol: 'TCP',
  learning_mode: false,
};

describe('prompt keys', () => {
  const table: [key: string, allow: boolean, duration: string][] = [
    ['o', true, 'once'],
    ['s', true, 'session'],
    ['a', true, 'always'],
    ['O', false, 'once'],
    ['S', false, 'session'],
    ['A', false, 'always'],
    ['y', true, 'once'],
    ['n', false, 'once'],
  ];
  for (const [key, allow, duration] of table) {
    it(`"${key}" ${allow ? 'allows' : 'denies'} ${duration}, and sends what the tray sends`, () => {
      assert.deepEqual(actionForKey(key), { kind: 'answer', allow, duration });
      assert.deepEqual(replyFor(REQ, allow, duration as 'once', false), {
        type: 'gui_response',
        request_id: REQ.request_id,
        allow,
        permanent: duration === 'always',
        all_ports: false,
        duration,
      });
    });
  }

  it('p toggles all ports, q and Ctrl-C quit, other keys do nothing', () => {
    assert.deepEqual(actionForKey('p'), { kind: 'toggle-all-ports' });
    assert.deepEqual(actionForKey('q'), { kind: 'quit' });
    assert.deepEqual(actionForKey('\u0003'), { kind: 'quit' });
    assert.deepEqual(actionForKey('z'), { kind: 'none' });
  });

  it('no key means two things', () => {
    assert.equal(new Set(KEYS.map((k) => k.key)).size, KEYS.length);
  });

  it('in learning mode "always" is an add_rule, as the tray sends it, and the rest send nothing', () => {
    const learning = { ...REQ, learning_mode: true };
    assert.deepEqual(replyFor(learning, false, 'always', true), {
      type: 'add_rule',
      app_name: 'curl',
      app_path: '/usr/bin/curl',
      port: 443,
      dest_ip: '198.18.0.2',
      allow: false,
      all_ports: true,
    });
    assert.equal(replyFor(learning, true, 'session', false), null);
    assert.equal(replyFor(learning, true, 'once', false), null);
  });
});

function session(tty = false) {
  const sent: Record<string, unknown>[] = [];
  let out = '';
  let t = 0;
  const s = new PromptSession({ send: (m) => sent.push(m), write: (x) => (out += x), tty, colors: NO_COLORS, timeoutSeconds: 60, now: () => t });
  return { s, sent, out: () => out, clear: () => (out = ''), advance: (ms: number) => (t += ms) };
}

describe('the prompt session', () => {
  it('shows program, path, destination, port, protocol and the seconds left', () => {
    const { s, out } = session();
    s.onMessage(REQ);
    for (const part of ['curl wants to connect', '/usr/bin/curl', '198.18.0.2:443', 'port         443', 'protocol     TCP', ' 60 s', 'allow: o once']) {
      assert.ok(out().includes(part), `missing "${part}" in:\n${out()}`);
    }
  });

  it('counts down on a terminal, redrawing the keys line in place', () => {
    const { s, out, clear, advance } = session(true);
    s.onMessage(REQ);
    clear();
    advance(3000);
    s.tick();
    assert.ok(out().startsWith('\r\x1b[2K'));
    assert.ok(out().includes(' 57 s'), out());
  });

  it('answers the first request with one key, then shows the next; p widens to all ports', () => {
    const { s, sent, out } = session(true);
    s.onMessage(REQ);
    s.onMessage({ ...REQ, request_id: 'wget-1', app_name: 'wget', app_path: '/usr/bin/wget' });
    assert.ok(out().includes('(+1 waiting)'));
    s.onKey('p');
    s.onKey('s');
    assert.deepEqual(sent, [{ type: 'gui_response', request_id: REQ.request_id, allow: true, permanent: false, all_ports: true, duration: 'session' }]);
    assert.ok(out().includes('→ allowed for this session (all ports)'));
    assert.ok(out().includes('wget wants to connect'));
    s.onKey('A');
    assert.deepEqual(sent[1], { type: 'gui_response', request_id: 'wget-1', allow: false, permanent: true, all_ports: false, duration: 'always' });
    assert.equal(s.waiting, 0);
  });

  it('drops a request another client answered (cancel_popup) and moves on', () => {
    const { s, sent, out } = session();
    s.onMessage(REQ);
    s.onMessage({ type: 'cancel_popup', request_id: REQ.request_id });
    assert.ok(out().includes('decided elsewhere'));
    s.onKey('o');
    assert.deepEqual(sent, [], 'answered a request that was gone');
  });

  it('a key with nothing to answer sends nothing; q quits', () => {
    const { s, sent } = session();
    assert.equal(s.onKey('a'), undefined);
    assert.deepEqual(sent, []);
    assert.equal(s.onKey('q'), 'quit');
  });
});

describe('timed answers', () => {
  it('t allows for the time shown (5 minutes first); w steps to the next time; T denies for it', () => {
    const { s, sent, out } = session(true);
    s.onMessage(REQ);
    assert.ok(out().includes('t 5m'), out());
    s.onKey('t');
    assert.deepEqual(sent, [{ type: 'gui_response', request_id: REQ.request_id, allow: true, permanent: false, all_ports: false, duration: '5m' }]);
    assert.ok(out().includes('→ allowed for 5 minutes'));
    s.onMessage({ ...REQ, request_id: 'wget-1', app_name: 'wget', app_path: '/usr/bin/wget' });
    s.onKey('w');
    const redrawn = out().slice(out().lastIndexOf('\r\x1b[2K'));
    assert.ok(redrawn.includes('t 1h'), `the keys line did not show the new time: ${redrawn}`);
    s.onKey('p');
    s.onKey('T');
    assert.deepEqual(sent[1], { type: 'gui_response', request_id: 'wget-1', allow: false, permanent: false, all_ports: true, duration: '1h' });
    assert.ok(out().includes('→ denied for 1 hour (all ports)'));
  });

  it('w cycles through every offered time and back to the first', () => {
    const { s, sent } = session();
    for (let i = 0; i < TIMED_CHOICES.length; i++) {
      s.onMessage({ ...REQ, request_id: `r${i}` });
      s.onKey('t');
      s.onKey('w');
    }
    s.onMessage({ ...REQ, request_id: 'again' });
    s.onKey('t');
    assert.deepEqual(
      sent.map((m) => m['duration']),
      [...TIMED_CHOICES, TIMED_CHOICES[0]],
    );
  });

  it('in learning mode a timed answer sends nothing, like once and session', () => {
    assert.equal(replyFor({ ...REQ, learning_mode: true }, true, '1h', false), null);
  });

  it('every offered time is one the service accepts', () => {
    for (const d of TIMED_CHOICES) assert.deepEqual(parseAnswerScope(d, false).ok, true, d);
  });

  it('the service holds a timed answer from the prompt for that long, then asks again', () => {
    const clock = new FakeClock();
    const prompt = new RecordingClient();
    const sessions = new SessionDecisions(() => clock.now());
    const cfg = config({ timeoutSeconds: 60 });
    const built = RuleSet.fromJSON({});
    assert.ok(built.ok);
    const policy = new Policy({ config: () => cfg, rules: () => built.rules, sessions, whitelist: new Whitelist() });
    const decider = new Decider({ policy, stats: new Stats(), log: silentLog, sendVerdicts: () => undefined, holdMs: () => 65_000, logDecisions: () => false });
    const broker = new GuiPromptBroker({
      config: () => cfg,
      clients: () => [prompt],
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
    decider.decideBatch([connection({ exe: '/usr/bin/curl', port: 443 }).record], 1);
    // What `bastion prompt` sends for "t" after one "w", as the service's socket reader parses it.
    const { s, sent } = session();
    const parsed = parseServiceMessage(prompt.ofType('connection_request')[0]!);
    assert.ok(parsed.ok);
    s.onMessage(parsed.message);
    s.onKey('w');
    s.onKey('T');
    const reply = sent[0]!;
    broker.answer(prompt, {
      requestId: reply['request_id'] as string,
      allow: reply['allow'] as boolean,
      permanent: reply['permanent'] as boolean,
      allPorts: reply['all_ports'] as boolean,
      duration: reply['duration'] as string,
    });
    const next = () => connection({ exe: '/usr/bin/curl', port: 443 }).record;
    clock.advance(3_599_000);
    const before = next();
    assert.deepEqual(decider.decideBatch([before], 1), [{ packetId: before.packetId, action: 'drop' }]);
    clock.advance(1_000);
    assert.equal(decider.decideBatch([next()], 1)[0]!.action, 'hold', 'the answer outlived its hour');
  });
});
