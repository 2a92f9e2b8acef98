// The prompt broker without sockets or sleeping: an injected clock, recording clients.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BastionConfig } from '../../service/config.js';
import type { FinalDecision } from '../../service/policy.js';
import { AnswerRecorder } from '../../service/prompts/answerRecorder.js';
import { GuiPromptBroker, type PromptLimits } from '../../service/prompts/promptBroker.js';
import type { PromptAnswer } from '../../service/prompts/answerScope.js';
import type { RulePort } from '../../service/rules/ruleKey.js';
import { SessionDecisions } from '../../service/sessions.js';
import { config, connection, FakeClock, FixedAuthorizer, RecordingClient, silentLog } from '../support/promptFakes.js';

interface Harness {
  broker: GuiPromptBroker;
  clock: FakeClock;
  clients: RecordingClient[];
  sessions: SessionDecisions;
  saved: { subject: string; port: RulePort; allow: boolean }[];
  authorizer: FixedAuthorizer;
  cfg: { current: BastionConfig };
  notices: string[];
}

function harness(opts: { clients?: number; config?: Partial<BastionConfig>; authorized?: boolean; limits?: Partial<PromptLimits> } = {}): Harness {
  const clock = new FakeClock();
  const clients = Array.from({ length: opts.clients ?? 2 }, () => new RecordingClient());
  const sessions = new SessionDecisions(() => clock.now());
  const saved: Harness['saved'] = [];
  const authorizer = new FixedAuthorizer(opts.authorized === false ? { ok: false, error: 'not authorized to add rules' } : { ok: true });
  const cfg = { current: config(opts.config) };
  const notices: string[] = [];
  const recorder = new AnswerRecorder({
    sessions,
    rules: {
      setRule: async (subject, port, allow) => {
        saved.push({ subject, port, allow });
        return { ok: true, key: `${subject}:${port}` };
      },
    },
    authorizer,
    log: silentLog,
  });
  const broker = new GuiPromptBroker({
    config: () => cfg.current,
    clients: () => clients,
    recorder,
    notify: (level, title, message) => notices.push(`${level}: ${title}: ${message}`),
    log: silentLog,
    clock,
    ...(opts.limits && { limits: opts.limits }),
  });
  return { broker, clock, clients, sessions, saved, authorizer, cfg, notices };
}

/** Asks about a connection; returns what it was answered (empty until then). */
function ask(h: Harness, conn = connection()): FinalDecision[] {
  const answers: FinalDecision[] = [];
  assert.equal(h.broker.canAsk(conn), true, 'canAsk');
  h.broker.ask(conn, (d) => answers.push(d));
  return answers;
}

function idOf(client: RecordingClient, n = 0): string {
  return client.ofType('connection_request')[n]!['request_id'] as string;
}

const answer = (requestId: string, a: Partial<PromptAnswer> = {}): PromptAnswer => ({
  requestId,
  allow: true,
  permanent: false,
  allPorts: false,
  duration: 'once',
  ...a,
});

describe('opening prompts', () => {
  it('adds pid, uid, argv and host only for clients that asked for details (hello details: true)', () => {
    const h = harness();
    h.broker.setDetails(h.clients[1]!, true);
    const conn = connection({ exe: '/usr/bin/python3.11', comm: 'python3', pid: 4242, uid: 1001 });
    conn.record.process!.cmdline = ['python3', '-u', '/home/b/sync.py', 'a', 'b', 'c'];
    conn.host = 'example.org';
    ask(h, conn);
    const plain = h.clients[0]!.ofType('connection_request')[0]!;
    const detailed = h.clients[1]!.ofType('connection_request')[0]!;
    assert.equal(plain['details'], undefined);
    assert.deepEqual(detailed['details'], { pid: 4242, uid: 1001, args: ['python3', '-u', '/home/b/sync.py', 'a'], host: 'example.org' });
    assert.deepEqual({ ...detailed, details: undefined }, { ...plain, details: undefined });
  });

  it("sends every client a connection_request with the tray's fields, in order", () => {
    const h = harness();
    ask(h, connection({ exe: '/opt/My Tools/sync agent', comm: 'sync agent', port: 8443 }));
    for (const c of h.clients) {
      const [m] = c.ofType('connection_request');
      assert.match(String(m!['request_id']), /^sync agent-[0-9a-f]+$/);
      assert.equal(
        JSON.stringify(m),
        JSON.stringify({
          type: 'connection_request',
          request_id: m!['request_id'],
          app_name: 'sync agent',
          app_path: '/opt/My Tools/sync agent',
          app_category: 'unknown',
          dest_ip: '198.51.100.7',
          dest_port: 8443,
          protocol: 'TCP',
          learning_mode: false,
        }),
      );
    }
    assert.equal(idOf(h.clients[0]!), idOf(h.clients[1]!), 'one request id for all clients');
  });

  it('names a connection without a process "unknown" and gives every prompt its own id', () => {
    const h = harness({ clients: 1 });
    ask(h, connection({ exe: null, comm: null, port: 53, protocol: 17 }));
    ask(h, connection({ exe: null, comm: null, port: 54, protocol: 17 }));
    const [a, b] = h.clients[0]!.ofType('connection_request');
    assert.equal(a!['app_name'], 'unknown');
    assert.equal(a!['app_path'], 'unknown');
    assert.equal(a!['protocol'], 'UDP');
    assert.match(String(a!['request_id']), /^unknown-[0-9a-f]+$/);
    assert.notEqual(a!['request_id'], b!['request_id'], 'two prompts in the same millisecond share an id');
  });

  it('connections with the same program and port wait for the one open prompt', () => {
    const h = harness();
    const first = ask(h, connection({ port: 443 }));
    const second = ask(h, connection({ port: 443 }));
    assert.equal(h.clients[0]!.ofType('connection_request').length, 1);
    h.broker.answer(h.clients[0]!, answer(idOf(h.clients[0]!)));
    assert.deepEqual(first, [{ kind: 'final', allow: true, reason: 'prompt', ruleKey: null }]);
    assert.deepEqual(second, first);
  });

  it('a client that connects while prompts are open is sent them', () => {
    const h = harness({ clients: 1 });
    ask(h);
    const late = new RecordingClient();
    h.broker.clientConnected(late);
    assert.equal(idOf(late), idOf(h.clients[0]!));
  });

  it('popup_enabled false: nobody is asked or told, the default applies', () => {
    const h = harness({ config: { popupEnabled: false } });
    assert.equal(h.broker.canAsk(connection()), false);
    h.broker.inform(connection());
    assert.deepEqual(h.clients[0]!.ofType('connection_request'), []);
  });

  it('nobody to ask: no answering client means canAsk is false', () => {
    const h = harness({ clients: 0 });
    assert.equal(h.broker.canAsk(connection()), false);
  });

  it('a client that said answers_prompts false gets no prompts and is not waited for', () => {
    const h = harness({ clients: 1 });
    h.broker.setAnswering(h.clients[0]!, false);
    assert.equal(h.broker.canAsk(connection()), false);
    h.broker.setAnswering(h.clients[0]!, true);
    ask(h);
    assert.equal(h.clients[0]!.ofType('connection_request').length, 1);
  });
});

describe('answers', () => {
  it('the first answer wins, the other clients get cancel_popup, and a second answer changes nothing', () => {
    const h = harness({ clients: 3 });
    const got = ask(h);
    const id = idOf(h.clients[0]!);
    assert.equal(h.broker.answer(h.clients[1]!, answer(id, { allow: false })).applied, true);
    assert.equal(h.broker.answer(h.clients[2]!, answer(id, { allow: true, duration: 'always' })).applied, false);
    assert.deepEqual(got, [{ kind: 'final', allow: false, reason: 'prompt', ruleKey: null }]);
    assert.deepEqual(h.clients[0]!.ofType('cancel_popup'), [{ type: 'cancel_popup', request_id: id }]);
    assert.deepEqual(h.clients[1]!.ofType('cancel_popup'), [], 'the answering client is not told to cancel');
    assert.equal(h.clients[2]!.ofType('cancel_popup').length, 1);
    assert.deepEqual(h.saved, [], 'the late "always" saved a rule');
    assert.equal(h.broker.openCount, 0);
  });

  it('an answer with an unknown request_id changes nothing', () => {
    const h = harness();
    const got = ask(h);
    assert.equal(h.broker.answer(h.clients[0]!, answer('curl-6790a1b21a2b3c', { duration: 'always' })).applied, false);
    assert.deepEqual(got, []);
    assert.equal(h.broker.openCount, 1);
    assert.deepEqual(h.saved, []);
    assert.deepEqual(h.clients[0]!.ofType('cancel_popup'), []);
  });

  it('two prompts for different programs are answered independently', () => {
    const h = harness({ clients: 1 });
    const curl = ask(h, connection({ exe: '/usr/bin/curl', port: 80 }));
    const wget = ask(h, connection({ exe: '/usr/bin/wget', port: 80 }));
    h.broker.answer(h.clients[0]!, answer(idOf(h.clients[0]!, 1), { allow: false }));
    assert.equal(curl.length, 0, 'answering wget decided curl');
    assert.equal(wget[0]?.allow, false);
    h.broker.answer(h.clients[0]!, answer(idOf(h.clients[0]!, 0), { allow: true }));
    assert.equal(curl[0]?.allow, true);
  });

  it('a bad duration is refused with an error and the prompt stays open', () => {
    const h = harness();
    const got = ask(h);
    h.broker.answer(h.clients[0]!, answer(idOf(h.clients[0]!), { duration: 'forever' }));
    assert.deepEqual(h.clients[0]!.ofType('error'), [
      { type: 'error', error: 'field "duration" must be "once", "session", "always" or a time such as "30s", "5m", "1h"', request: 'gui_response' },
    ]);
    assert.deepEqual(got, []);
    assert.equal(h.broker.openCount, 1);
  });
});

describe('durations', () => {
  it('once decides only the waiting connections', () => {
    const h = harness();
    ask(h);
    h.broker.answer(h.clients[0]!, answer(idOf(h.clients[0]!), { duration: 'once' }));
    assert.equal(h.sessions.size, 0);
    assert.equal(h.broker.canAsk(connection()), true, 'the next connection is asked again');
  });

  it('session lasts until the service restarts, for this port or for all ports', () => {
    const h = harness();
    ask(h, connection({ port: 443 }));
    h.broker.answer(h.clients[0]!, answer(idOf(h.clients[0]!), { duration: 'session', allow: false }));
    h.clock.advance(86_400_000);
    assert.deepEqual(h.sessions.lookup(1000, '/usr/bin/curl', 443), { allow: false, key: '/usr/bin/curl:443' });
    assert.equal(h.sessions.lookup(1000, '/usr/bin/curl', 80), null);

    ask(h, connection({ exe: '/usr/bin/wget', port: 443 }));
    h.broker.answer(h.clients[0]!, answer(idOf(h.clients[0]!, 1), { duration: 'session', allPorts: true }));
    assert.deepEqual(h.sessions.lookup(1000, '/usr/bin/wget', 8080), { allow: true, key: '/usr/bin/wget:*' });
  });

  for (const [duration, ms] of [
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
  ] as const) {
    it(`"${duration}" holds for ${ms} ms and no longer`, () => {
      const h = harness();
      const got = ask(h);
      h.broker.answer(h.clients[0]!, answer(idOf(h.clients[0]!), { duration }));
      assert.equal(got[0]?.ruleKey, '/usr/bin/curl:443');
      h.clock.advance(ms - 1);
      assert.equal(h.sessions.lookup(1000, '/usr/bin/curl', 443)?.allow, true);
      h.clock.advance(1);
      assert.equal(h.sessions.lookup(1000, '/usr/bin/curl', 443), null);
    });
  }

  it('always saves a rule, authorized for the answering peer, then leaves the deciding to it', async () => {
    const h = harness();
    const got = ask(h);
    const outcome = h.broker.answer(h.clients[0]!, answer(idOf(h.clients[0]!), { duration: 'always', allPorts: true }));
    assert.equal(got[0]?.allow, true, 'the verdict waited for the rule to be saved');
    assert.equal(h.sessions.lookup(1000, '/usr/bin/curl', 22)?.allow, true, 'nothing decides while the rule is being saved');
    assert.ok(outcome.applied);
    await outcome.saved;
    assert.deepEqual(h.saved, [{ subject: '/usr/bin/curl', port: '*', allow: true }]);
    assert.equal(h.authorizer.calls, 1);
    assert.equal(h.sessions.size, 0, 'the stand-in session outlived the saved rule');
  });

  it('permanent: true with an empty duration is always', async () => {
    const h = harness();
    ask(h);
    const outcome = h.broker.answer(h.clients[0]!, answer(idOf(h.clients[0]!), { duration: '', permanent: true, allow: false }));
    assert.ok(outcome.applied);
    await outcome.saved;
    assert.deepEqual(h.saved, [{ subject: '/usr/bin/curl', port: 443, allow: false }]);
  });

  it('an "always" the authorizer refuses still answers the connection, saves nothing, holds for the session of that uid and says so', async () => {
    const h = harness({ authorized: false });
    const got = ask(h);
    const outcome = h.broker.answer(h.clients[0]!, answer(idOf(h.clients[0]!), { duration: 'always' }));
    assert.equal(got[0]?.allow, true);
    assert.ok(outcome.applied);
    await outcome.saved;
    assert.deepEqual(h.saved, []);
    assert.deepEqual(h.sessions.lookup(1000, '/usr/bin/curl', 443), { allow: true, key: '/usr/bin/curl:443' });
    assert.equal(h.sessions.lookup(1001, '/usr/bin/curl', 443), null);
    assert.deepEqual(h.clients[0]!.ofType('error'), [{ type: 'error', error: 'not authorized to add rules', request: 'gui_response' }]);
    assert.deepEqual(h.clients[0]!.ofType('notification'), [
      {
        type: 'notification',
        title: 'Bastion: rule not saved',
        message:
          "not authorized to add rules. The answer for /usr/bin/curl:443 holds for this session only, for uid 1000's programs; saving it as a rule needs an administrator.",
        level: 'warning',
      },
    ]);
  });

  it("a session answer about one user's program leaves another user's same program to its own prompt", () => {
    const h = harness();
    const alice = ask(h, connection({ uid: 1000 }));
    const bob = ask(h, connection({ uid: 1001 }));
    assert.equal(h.clients[0]!.ofType('connection_request').length, 2, 'one prompt per uid, no shared waiters');
    h.broker.answer(h.clients[0]!, answer(idOf(h.clients[0]!, 0), { duration: 'session' }));
    assert.equal(alice[0]?.allow, true);
    assert.equal(bob.length, 0, "bob's connection still waits for its own answer");
    assert.deepEqual(h.sessions.lookup(1000, '/usr/bin/curl', 443), { allow: true, key: '/usr/bin/curl:443' });
    assert.equal(h.sessions.lookup(1001, '/usr/bin/curl', 443), null);
  });

  it("an answer for all ports also closes that program's other open prompts", () => {
    const h = harness();
    const p443 = ask(h, connection({ port: 443 }));
    const p80 = ask(h, connection({ port: 80 }));
    const other = ask(h, connection({ exe: '/usr/bin/wget', port: 80 }));
    const [id443, id80] = [idOf(h.clients[0]!, 0), idOf(h.clients[0]!, 1)];
    h.broker.answer(h.clients[0]!, answer(id443, { duration: 'session', allPorts: true, allow: false }));
    assert.equal(p443[0]?.allow, false);
    assert.equal(p80[0]?.allow, false);
    assert.deepEqual(other, []);
    assert.deepEqual(h.clients[0]!.ofType('cancel_popup'), [{ type: 'cancel_popup', request_id: id80 }]);
  });

  it('a connection without a process is remembered by destination, as rules.json stores @dest', () => {
    const h = harness();
    const got = ask(h, connection({ exe: null, comm: null, port: 8443 }));
    h.broker.answer(h.clients[0]!, answer(idOf(h.clients[0]!), { duration: 'session' }));
    assert.equal(got[0]?.ruleKey, '@dest:198.51.100.7:8443:*');
    assert.deepEqual(h.sessions.lookup(1000, '@dest:198.51.100.7:8443', 8443), { allow: true, key: '@dest:198.51.100.7:8443:*' });
  });
});

describe('timeouts and leaving clients', () => {
  it('applies default_action at timeout_seconds, closes the popups, and a later answer changes nothing', () => {
    const h = harness({ config: { timeoutSeconds: 60 } });
    const got = ask(h);
    const id = idOf(h.clients[0]!);
    h.clock.advance(59_999);
    assert.deepEqual(got, []);
    h.clock.advance(1);
    assert.deepEqual(got, [{ kind: 'final', allow: false, reason: 'timeout', ruleKey: null }]);
    for (const c of h.clients) assert.deepEqual(c.ofType('cancel_popup'), [{ type: 'cancel_popup', request_id: id }]);
    assert.equal(h.broker.answer(h.clients[0]!, answer(id, { duration: 'always' })).applied, false);
    assert.equal(h.sessions.size, 0);
    assert.deepEqual(h.saved, []);
    assert.equal(h.clock.pendingTimers, 0);
    assert.deepEqual(h.notices, ['warning: No answer in time: curl → 198.51.100.7:443 (TCP) was blocked by default']);
  });

  it('default_action allow applies at timeout', () => {
    const h = harness({ config: { defaultAction: 'allow', timeoutSeconds: 5 } });
    const got = ask(h);
    h.clock.advance(5000);
    assert.equal(got[0]?.allow, true);
  });

  it('a prompt stays open while another client can still answer it, and gets the default when the last one leaves', () => {
    const h = harness({ clients: 2 });
    const got = ask(h);
    const [a, b] = h.clients as [RecordingClient, RecordingClient];
    h.clients.splice(0, 1);
    h.broker.clientGone(a);
    assert.deepEqual(got, [], 'decided although a client was left');
    h.clients.splice(0, 1);
    h.broker.clientGone(b);
    assert.deepEqual(got, [{ kind: 'final', allow: false, reason: 'default', ruleKey: null }]);
    assert.equal(h.broker.openCount, 0);
    assert.equal(h.clock.pendingTimers, 0);
  });

  it('a retried SYN of a connection answered once gets the same answer without a new prompt', () => {
    const h = harness();
    const conn = connection({ srcPort: 51000 });
    ask(h, conn);
    h.broker.answer(h.clients[0]!, answer(idOf(h.clients[0]!), { allow: false }));
    const retry = connection({ srcPort: 51000 });
    assert.deepEqual(h.broker.recall(retry), { kind: 'final', allow: false, reason: 'prompt', ruleKey: null });
    assert.equal(h.broker.recall(connection({ srcPort: 51001 })), null, 'another connection of the same program');
    h.clock.advance(130_000);
    assert.equal(h.broker.recall(retry), null, "remembered past the kernel's SYN retries");
  });

  it('switching to learning mode allows everything that waits', () => {
    const h = harness();
    const got = ask(h);
    h.cfg.current = { ...h.cfg.current, mode: 'learning' };
    h.broker.configChanged(h.cfg.current);
    assert.deepEqual(got, [{ kind: 'final', allow: true, reason: 'learning', ruleKey: null }]);
  });

  it('stopping the service answers every waiting connection with the default', () => {
    const h = harness();
    const a = ask(h, connection({ port: 1 }));
    const b = ask(h, connection({ port: 2 }));
    h.broker.stop();
    assert.equal(a[0]?.reason, 'default');
    assert.equal(b[0]?.reason, 'default');
  });
});

describe('limits', () => {
  it("a program flooding new ports cannot bury another program's prompt", () => {
    const h = harness({ limits: { maxOpenPerProgram: 4, limitNoticeMs: 10_000 } });
    for (let port = 1; port <= 4; port++) ask(h, connection({ exe: '/usr/bin/flood', port }));
    assert.equal(h.broker.canAsk(connection({ exe: '/usr/bin/flood', port: 5 })), false);
    assert.equal(h.broker.canAsk(connection({ exe: '/usr/bin/flood', port: 4 })), true, 'joining an open prompt is fine');
    assert.equal(h.broker.canAsk(connection({ exe: '/usr/bin/curl', port: 443 })), true);
    assert.equal(h.broker.limited, 1);
    assert.equal(h.broker.canAsk(connection({ exe: '/usr/bin/flood', port: 6 })), false);
    assert.deepEqual(
      h.notices,
      ['warning: Too many questions at once: flood asks about many connections at once; until you answer, new ones are blocked by default'],
      'told once in limitNoticeMs',
    );
    h.clock.advance(10_000);
    assert.equal(h.broker.canAsk(connection({ exe: '/usr/bin/flood', port: 7 })), false);
    assert.equal(h.notices.length, 2);
  });

  it("one user's renamed copies on many ports cannot bury another user's prompts: caps are per uid (issue 11)", () => {
    const h = harness({ limits: { maxOpen: 16, maxOpenPerUid: 16, maxOpenPerProgram: 4 } });
    let opened = 0;
    for (let copy = 1; copy <= 16; copy++) {
      for (let port = 81; port <= 84; port++) {
        const conn = connection({ exe: `/home/mallory/prog${copy}`, port, uid: 1001 });
        if (h.broker.canAsk(conn)) {
          h.broker.ask(conn, () => undefined);
          opened++;
        }
      }
    }
    assert.equal(opened, 16, 'the flooding user got more than its share');
    assert.equal(h.broker.openCount, 16, 'every prompt slot is taken');
    // Another user's program is still asked about, though every slot in all is taken.
    ask(h, connection({ exe: '/usr/bin/curl', port: 8080, uid: 1000 }));
    assert.equal(h.broker.openCount, 17);
    assert.equal(h.broker.canAsk(connection({ exe: '/usr/bin/wget', port: 8080, uid: 1000 })), false, 'past maxOpen only a first prompt is let in');
  });

  it("the per-program cap is one user's: another user's curl is asked while one user's curl floods ports", () => {
    const h = harness({ limits: { maxOpenPerProgram: 4 } });
    for (let port = 1; port <= 4; port++) ask(h, connection({ exe: '/usr/bin/curl', port, uid: 1001 }));
    assert.equal(h.broker.canAsk(connection({ exe: '/usr/bin/curl', port: 5, uid: 1001 })), false);
    ask(h, connection({ exe: '/usr/bin/curl', port: 5, uid: 1000 }));
  });

  it('caps open prompts in all and connections waiting on one prompt', () => {
    const h = harness({ limits: { maxOpen: 2, maxWaitersPerPrompt: 2 } });
    ask(h, connection({ exe: '/a', port: 1 }));
    ask(h, connection({ exe: '/b', port: 1 }));
    assert.equal(h.broker.canAsk(connection({ exe: '/c', port: 1 })), false);
    ask(h, connection({ exe: '/a', port: 1 }));
    assert.equal(h.broker.canAsk(connection({ exe: '/a', port: 1 })), false);
  });
});

describe('a program whose path is not believed', () => {
  it('is asked about in a prompt of its own that says why; the answer holds once, never as a session or rule', async () => {
    const h = harness();
    const host = ask(h, connection({ exe: '/usr/bin/curl', port: 443 }));
    const borrowed = ask(h, connection({ exe: '/usr/bin/curl', port: 443, identity: 'other_user_ns' }));
    const mismatched = ask(h, connection({ exe: '/usr/bin/curl', port: 443, identity: 'exe_mismatch', otherMountNs: true, uid: 1001 }));
    const sent = h.clients[0]!.ofType('connection_request');
    assert.deepEqual(
      sent.map((m) => m['app_path']),
      ['/usr/bin/curl', '/usr/bin/curl (other user namespace)', '/usr/bin/curl (other mount namespace: exe does not match path)'],
      "a borrowed path joined the host program's prompt, or one user's joined another's",
    );
    const outcome = h.broker.answer(h.clients[0]!, answer(idOf(h.clients[0]!, 1), { allow: true, permanent: true, duration: 'always' }));
    assert.ok(outcome.applied);
    await outcome.saved;
    assert.deepEqual(
      borrowed.map((d) => [d.allow, d.ruleKey]),
      [[true, null]],
    );
    assert.deepEqual([host, mismatched], [[], []], 'other prompts were answered too');
    assert.deepEqual(h.saved, [], 'a rule was saved');
    assert.equal(h.sessions.size, 0, 'a session was stored');
  });
});

describe('learning mode', () => {
  it('tells every client with learning_mode true, never opens a prompt, and repeats a key only after 30 s', () => {
    const h = harness({ config: { mode: 'learning' } });
    const conn = connection({ port: 443 });
    h.broker.inform(conn);
    h.broker.inform(connection({ port: 443 }));
    const sent = h.clients[0]!.ofType('connection_request');
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!['learning_mode'], true);
    assert.equal(h.broker.openCount, 0);
    assert.equal(h.broker.answer(h.clients[0]!, answer(sent[0]!['request_id'] as string)).applied, false);
    h.clock.advance(30_000);
    h.broker.inform(connection({ port: 443 }));
    assert.equal(h.clients[0]!.ofType('connection_request').length, 2);
  });

  it('clear_cache of the key tells again at once', () => {
    const h = harness({ config: { mode: 'learning' } });
    h.broker.inform(connection({ port: 443 }));
    h.broker.forgetKey('/usr/bin/curl:443');
    h.broker.inform(connection({ port: 443 }));
    assert.equal(h.clients[0]!.ofType('connection_request').length, 2);
  });
});
