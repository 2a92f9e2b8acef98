// Decision lines in the journal, read the way the control panel's Logs tab reads them: the real
// Decider, policy and prompt broker decide; the journal writer sends each entry with journald's
// native protocol to a real Unix datagram socket bound here; each MESSAGE is then put in the
// form `journalctl -u bastion-firewall --no-pager` prints and run through the GUI's own patterns
// (test/support/guiLogParser.ts, copied from the upstream GUI's bastion/log_parser.py).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Decider, type DecisionEvent } from '../../service/decider.js';
import { DecisionJournal } from '../../service/journal/decisionJournal.js';
import { DECISION_MESSAGE_ID, decisionEntry, decisionMessage, promptEntry } from '../../service/journal/decisionLine.js';
import { JournalWriter, SYSLOG_IDENTIFIER } from '../../service/journal/journald.js';
import { Policy } from '../../service/policy.js';
import { AnswerRecorder } from '../../service/prompts/answerRecorder.js';
import { GuiPromptBroker } from '../../service/prompts/promptBroker.js';
import { RuleSet } from '../../service/rules/ruleSet.js';
import { SessionDecisions } from '../../service/sessions.js';
import { Stats } from '../../service/stats.js';
import { Whitelist } from '../../service/whitelist.js';
import type { BastionConfig } from '../../service/config.js';
import { DatagramReceiver, parseNativeEntry } from '../support/datagramReceiver.js';
import { guiParse, journalctlLine, type Parsed } from '../support/guiLogParser.js';
import { rawControls } from '../support/rawControl.js';
import { config, connection, FakeClock, FixedAuthorizer, RecordingClient, silentLog } from '../support/promptFakes.js';

function setup(receiver: DatagramReceiver, cfg: BastionConfig, rules: Record<string, boolean> = {}, clientCount = 1) {
  const clock = new FakeClock();
  const clients = Array.from({ length: clientCount }, () => new RecordingClient());
  const sessions = new SessionDecisions(() => clock.now());
  const built = RuleSet.fromJSON(rules);
  assert.ok(built.ok);
  const policy = new Policy({ config: () => cfg, rules: () => built.rules, sessions, whitelist: new Whitelist() });
  const journal = new DecisionJournal(
    new JournalWriter({ socketPath: receiver.path, log: silentLog, fallback: () => assert.fail('fell back to stdout') }),
    () => true,
  );
  const decider = new Decider({ policy, stats: new Stats(), log: silentLog, sendVerdicts: () => undefined, holdMs: () => 65_000, logDecisions: () => false });
  const broker = new GuiPromptBroker({
    config: () => cfg,
    clients: () => clients,
    recorder: new AnswerRecorder({
      sessions,
      rules: { setRule: async (subject, port) => ({ ok: true, key: `${subject}:${port}` }) },
      authorizer: new FixedAuthorizer({ ok: true }),
      log: silentLog,
    }),
    onPromptOpened: (conn) => journal.promptOpened(conn),
    log: silentLog,
    clock,
  });
  decider.setPromptBroker(broker);
  decider.onDecision((event) => journal.decision(event));
  const answer = (allow: boolean, duration: string): void => {
    const req = clients[0]!.ofType('connection_request').at(-1)!;
    broker.answer(clients[0]!, { requestId: req['request_id'] as string, allow, permanent: false, allPorts: false, duration });
  };
  return { decider, broker, clock, answer };
}

describe("decision lines through the control panel's log patterns", () => {
  let receiver: DatagramReceiver;
  before(async () => {
    receiver = await DatagramReceiver.bind();
  });
  after(() => receiver?.close());

  it('every kind of decision gives a line the GUI parses, with program, destination, port and user right', async () => {
    const enforcing = config({ timeoutSeconds: 60 });
    // Rules: allow and deny by path.
    const ruled = setup(receiver, enforcing, { '/usr/bin/curl:443': true, '/usr/bin/wget:443': false });
    ruled.decider.decideBatch([connection({ exe: '/usr/bin/curl', port: 443 }).record], 1);
    ruled.decider.decideBatch([connection({ exe: '/usr/bin/wget', port: 443 }).record], 1);
    ruled.decider.decideBatch([connection({ exe: '/usr/bin/curl', port: 443, dst: [127, 0, 0, 1] }).record], 1); // whitelist
    // A prompt (POPUP), answered allow for the session (USER), then the session decides (SESSION).
    const asked = setup(receiver, enforcing);
    asked.decider.decideBatch([connection({ exe: '/usr/bin/nc', port: 8080 }).record], 1);
    asked.answer(true, 'session');
    asked.decider.decideBatch([connection({ exe: '/usr/bin/nc', port: 8080 }).record], 1);
    // Answered deny once.
    asked.decider.decideBatch([connection({ exe: '/usr/bin/ssh', port: 22 }).record], 1);
    asked.answer(false, 'once');
    // Nobody answers in time: the default (deny).
    asked.decider.decideBatch([connection({ exe: '/usr/bin/git', port: 9418 }).record], 1);
    asked.clock.advance(60_000);
    // No client at all: the default at once; and with default_action allow.
    setup(receiver, enforcing, {}, 0).decider.decideBatch([connection({ exe: null, comm: null, port: 5000 }).record], 1);
    setup(receiver, config({ defaultAction: 'allow' }), {}, 0).decider.decideBatch([connection({ exe: '/usr/bin/rsync', port: 873 }).record], 1);
    // Learning mode.
    setup(receiver, config({ mode: 'learning' }), {}, 0).decider.decideBatch([connection({ exe: '/usr/bin/apt', port: 80 }).record], 1);

    await receiver.waitFor(13);
    const entries = receiver.received.map(parseNativeEntry);
    const parsed = entries.map((f) => guiParse(journalctlLine(f)));
    const unparsed = entries.filter((_, i) => parsed[i] === null).map((f) => f['MESSAGE']);
    assert.deepEqual(unparsed, [], 'lines the Logs tab would not show');

    const ip = '198.51.100.7';
    assert.deepEqual(parsed, [
      { type: 'RULE', action: 'ALLOW', app: 'curl', path: '/usr/bin/curl', ip, port: '443', user: '1000' },
      { type: 'RULE', action: 'BLOCK', app: 'wget', path: '/usr/bin/wget', ip, port: '443', user: '1000' },
      { type: 'AUTO', app: 'curl', reason: `loopback destination dst="127.0.0.1:443" user=1000 protocol="TCP" path="/usr/bin/curl"` },
      { type: 'POPUP', app: 'nc', path: '/usr/bin/nc', ip, port: '8080' },
      { type: 'USER', action: 'ALLOW', app: 'nc', ip, port: '8080', user: '1000' },
      { type: 'SESSION', action: 'ALLOW', app: 'nc', ip, port: '8080' },
      { type: 'POPUP', app: 'ssh', path: '/usr/bin/ssh', ip, port: '22' },
      { type: 'USER', action: 'BLOCK', app: 'ssh', ip, port: '22', user: '1000' },
      { type: 'POPUP', app: 'git', path: '/usr/bin/git', ip, port: '9418' },
      { type: 'BLOCK', app: 'git', ip, port: '9418', user: '1000' },
      { type: 'BLOCK', app: 'unknown', ip, port: '5000', user: '1000' },
      { type: 'AUTO', app: 'rsync', reason: `allowed by default (nobody to ask) dst="${ip}:873" user=1000 protocol="TCP" path="/usr/bin/rsync"` },
      { type: 'LEARN', app: 'apt', path: '/usr/bin/apt', ip, port: '80', user: '1000' },
    ]);
    console.log(`# GUI-parser-matched journal lines: ${parsed.filter((p) => p !== null).length} of ${entries.length}`);
  });

  it('sends the structured fields beside the line, for journalctl -o json and field filters', async () => {
    const start = receiver.received.length;
    const { decider } = setup(receiver, config(), { '/usr/bin/curl:443': false });
    decider.decideBatch([connection({ exe: '/usr/bin/curl', port: 443, pid: 777 }).record], 1);
    await receiver.waitFor(start + 1);
    const fields = parseNativeEntry(receiver.received[start]!);
    assert.deepEqual(fields, {
      MESSAGE: '[RULE:BLOCK] app="curl" path="/usr/bin/curl" dst="198.51.100.7:443" user=1000 protocol="TCP" rule="/usr/bin/curl:443"',
      PRIORITY: '5',
      SYSLOG_IDENTIFIER,
      MESSAGE_ID: DECISION_MESSAGE_ID,
      BASTION_EVENT: 'decision',
      BASTION_PROGRAM: '/usr/bin/curl',
      BASTION_COMM: 'curl',
      BASTION_PID: '777',
      BASTION_DESTINATION: '198.51.100.7',
      BASTION_PORT: '443',
      BASTION_PROTOCOL: 'TCP',
      BASTION_VERDICT: 'deny',
      BASTION_DECIDED_BY: 'rule',
      BASTION_CONNECTIONS: '1',
      BASTION_UID: '1000',
      BASTION_RULE: '/usr/bin/curl:443',
    });
  });
});

describe('decision lines that are hard to parse', () => {
  const base = {
    at: 0,
    pid: 1,
    uid: 1000,
    exe: '/usr/bin/curl',
    comm: 'curl',
    destIp: '2001:db8::1',
    port: 443,
    protocol: 'TCP',
    allow: true,
    reason: 'rule' as const,
    ruleKey: null,
    attribution: 'sock_diag' as const,
    lookupMicros: 1,
    connections: 1,
  };

  it('an IPv6 destination splits into address and port at the last colon', () => {
    assert.deepEqual(guiParse(journalctlLine({ SYSLOG_IDENTIFIER, MESSAGE: decisionMessage(base) })), {
      type: 'RULE',
      action: 'ALLOW',
      app: 'curl',
      path: '/usr/bin/curl',
      ip: '2001:db8::1',
      port: '443',
      user: '1000',
    });
  });

  it('the host name shows beside the program as the old daemon wrote it: comm (host)', () => {
    const parsed = guiParse(journalctlLine({ SYSLOG_IDENTIFIER, MESSAGE: decisionMessage({ ...base, destIp: '192.0.2.1', host: 'www.example.org' }) }));
    assert.equal(parsed?.['app'], 'curl (www.example.org)');
  });

  it('a path with a newline or a quote stays on one line, and an unknown user is (uid_t)-1', () => {
    const message = decisionMessage({ ...base, destIp: '192.0.2.1', exe: '/tmp/a"b\nc', uid: -1 });
    assert.equal(message, '[RULE:ALLOW] app="curl" path="/tmp/a\\x22b\\x0ac" dst="192.0.2.1:443" user=4294967295 protocol="TCP"');
    assert.equal(guiParse(journalctlLine({ SYSLOG_IDENTIFIER, MESSAGE: message }))?.['user'], '4294967295');
  });
});

// Issue 18, item 4: a program chooses its path and comm, and the Logs tab reads fields out of
// the line with unanchored patterns. Each crafted value below, in every kind of line, must leave
// the fields the GUI parses (type, action, app, path, ip, port, user) the real ones: the path
// and comm as escaped (common/visibleText.ts, plus the line's `"[()`), never anything else.
describe('crafted paths and names do not change the fields the Logs tab parses', () => {
  const base = {
    at: 0,
    pid: 1,
    uid: 1000,
    exe: '/usr/bin/curl',
    comm: 'curl',
    destIp: '198.51.100.7',
    port: 443,
    protocol: 'TCP',
    allow: true,
    reason: 'rule' as DecisionEvent['reason'],
    ruleKey: null as string | null,
    attribution: 'sock_diag' as const,
    lookupMicros: 1,
    connections: 1,
  };
  const DST = '198.51.100.7';
  const PORT = 8080;
  const ATTACKS: [name: string, exe: string, comm: string, shownExe: string, shownComm: string][] = [
    ['a path with ") -> 10.9.9.9:443 "', '/tmp/x) -> 10.9.9.9:443 (y', 'x', '/tmp/x\\x29 -> 10.9.9.9:443 \\x28y', 'x'],
    ['a path with \'" dst="\'', '/tmp/a" dst="10.9.9.9:443" user=0 b', 'a', '/tmp/a\\x22 dst=\\x2210.9.9.9:443\\x22 user=0 b', 'a'],
    [
      'a path with newlines',
      '/tmp/a\nDec 05 13:10:53 h bastion-daemon[1]: [RULE:ALLOW] app="x" path="/y" dst="10.9.9.9:443" user=0\n',
      'a',
      '/tmp/a\\x0aDec 05 13:10:53 h bastion-daemon\\x5b1]: \\x5bRULE:ALLOW] app=\\x22x\\x22 path=\\x22/y\\x22 dst=\\x2210.9.9.9:443\\x22 user=0\\x0a',
      'a',
    ],
    [
      'a path with [RULE:ALLOW] and [POPUP]',
      '/tmp/[RULE:ALLOW] app="f" path="/f" dst="10.9.9.9:443" user=0 [POPUP] f (/f) -> 10.9.9.9:443',
      'b',
      '/tmp/\\x5bRULE:ALLOW] app=\\x22f\\x22 path=\\x22/f\\x22 dst=\\x2210.9.9.9:443\\x22 user=0 \\x5bPOPUP] f \\x28/f\\x29 -> 10.9.9.9:443',
      'b',
    ],
    ['a comm with " (" and " - "', '/tmp/c', 'a - (b', '/tmp/c', 'a - \\x28b'],
    ['a comm ending in " -"', '/tmp/d', 'firefox -', '/tmp/d', 'firefox -'],
    [
      'terminal escapes, C1 and a bidi override',
      '/tmp/\x1b[2K\x1b[1G\x1b]0;firefox\x07\r\u0085\u202efirefox',
      'firefox\x1b[2K\r',
      '/tmp/\\x1b\\x5b2K\\x1b\\x5b1G\\x1b]0;firefox\\x07\\x0d\\u0085\\u202efirefox',
      'firefox\\x1b\\x5b2K\\x0d',
    ],
    ['a backslash before a quote', '/tmp/a\\" dst="10.9.9.9:443', 'a', '/tmp/a\\\\\\x22 dst=\\x2210.9.9.9:443', 'a'],
  ];

  /** The AUTO line's app has " -" escaped as well (its pattern ends app at the first " - "). */
  const autoApp = (comm: string): string => comm.replace(/ -/g, ' \\x2d');

  for (const [name, exe, comm, shownExe, shownComm] of ATTACKS) {
    it(name, () => {
      const event = { ...base, exe, comm, destIp: DST, port: PORT };
      const real = { ip: DST, port: String(PORT), user: '1000' };
      const lines: [string, Parsed][] = [
        [decisionMessage({ ...event, reason: 'rule', ruleKey: `${exe}:${PORT}` }), { type: 'RULE', action: 'ALLOW', app: shownComm, path: shownExe, ...real }],
        [decisionMessage({ ...event, reason: 'rule', allow: false }), { type: 'RULE', action: 'BLOCK', app: shownComm, path: shownExe, ...real }],
        [decisionMessage({ ...event, reason: 'prompt' }), { type: 'USER', action: 'ALLOW', app: shownComm, ...real }],
        [decisionMessage({ ...event, reason: 'session', allow: false }), { type: 'SESSION', action: 'BLOCK', app: shownComm, ip: DST, port: String(PORT) }],
        [decisionMessage({ ...event, reason: 'learning' }), { type: 'LEARN', app: shownComm, path: shownExe, ...real }],
        [decisionMessage({ ...event, reason: 'default', allow: false }), { type: 'BLOCK', app: shownComm, ...real }],
        [
          decisionMessage({ ...event, reason: 'lan' }),
          {
            type: 'AUTO',
            app: autoApp(shownComm),
            reason: `local network destination (allow_lan) dst="${DST}:${PORT}" user=1000 protocol="TCP" path="${shownExe}"`,
          },
        ],
        [promptEntry(connection({ exe, comm, port: PORT })).message, { type: 'POPUP', app: shownComm, path: shownExe, ip: DST, port: String(PORT) }],
      ];
      for (const [message, expected] of lines) {
        assert.equal(rawControls(message), 0, message);
        assert.ok(!message.includes('\n'));
        assert.deepEqual(guiParse(journalctlLine({ SYSLOG_IDENTIFIER, MESSAGE: message })), expected, message);
      }
    });
  }

  it("the exact POPUP line of the issue's path, which before read as a prompt to 10.9.9.9:443", () => {
    const entry = promptEntry(connection({ exe: '/tmp/x) -> 10.9.9.9:443 ', comm: 'firefox', port: 80 }));
    assert.equal(entry.message, '[POPUP] firefox (/tmp/x\\x29 -> 10.9.9.9:443 ) -> 198.51.100.7:80 user=1000 protocol="TCP"');
    assert.deepEqual(guiParse(journalctlLine({ SYSLOG_IDENTIFIER, MESSAGE: entry.message })), {
      type: 'POPUP',
      app: 'firefox',
      path: '/tmp/x\\x29 -> 10.9.9.9:443 ',
      ip: '198.51.100.7',
      port: '80',
    });
  });

  it('the fields beside the line hold the same escapes (one line each, no raw control)', () => {
    const exe = '/tmp/\x1b]0;t\x07\n\u202e[x]';
    const fields = decisionEntry({ ...base, exe, comm: 'a\rb', reason: 'rule', ruleKey: `${exe}:443`, host: 'example.org' }).fields;
    assert.equal(fields['BASTION_PROGRAM'], '/tmp/\\x1b]0;t\\x07\\x0a\\u202e[x]');
    assert.equal(fields['BASTION_COMM'], 'a\\x0db');
    assert.equal(fields['BASTION_RULE'], '/tmp/\\x1b]0;t\\x07\\x0a\\u202e[x]:443');
    assert.equal(fields['BASTION_HOST'], 'example.org');
  });

  it('a value is capped at 512 characters, escapes included, so the entry stays one datagram', () => {
    const message = decisionMessage({ ...base, exe: `/tmp/${'\u202e'.repeat(4000)}`, reason: 'learning' });
    const path = /path="([^"]*)"/.exec(message)![1]!;
    assert.equal(path, `/tmp/${'\\u202e'.repeat(84)}...`);
    assert.ok(path.length <= 515);
  });
});

describe('without journald', () => {
  it('writes the same line to stdout when nothing listens at the socket path, and says so once', () => {
    const lines: string[] = [];
    const warnings: string[] = [];
    const log = { ...silentLog, warn: (_: object, msg: string) => warnings.push(msg), info: () => undefined } as unknown as typeof silentLog;
    const writer = new JournalWriter({ socketPath: '/nonexistent/journal/socket', log, fallback: (l) => lines.push(l) });
    const entry = { message: '[LEARN] app="apt" path="/usr/bin/apt" dst="192.0.2.1:80" user=0 protocol="TCP"', priority: 6 as const, fields: {} };
    writer.write(entry);
    writer.write(entry);
    assert.deepEqual(lines, [entry.message, entry.message]);
    assert.equal(warnings.length, 1);
    assert.equal(writer.fellBack, 2);
  });
});
