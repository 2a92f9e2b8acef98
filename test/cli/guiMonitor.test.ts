// `bastion monitor`'s lines and the colour switch.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { colorsFor, NO_COLORS } from '../../cli/colors.js';
import { formatDecision, type DecisionMessage } from '../../cli/decisionLine.js';
import { requestLines } from '../../cli/promptView.js';

const base: DecisionMessage = {
  time: '2025-01-02T03:04:05.678Z',
  pid: 4242,
  app_name: 'curl',
  app_path: '/usr/bin/curl',
  dest_ip: '198.18.0.2',
  dest_port: 80,
  protocol: 'TCP',
  allow: true,
  reason: 'rule',
  rule_key: '/usr/bin/curl:80',
  connections: 1,
  missed: 0,
};

describe('monitor lines', () => {
  it('shows time, verdict, program, destination, protocol and the deciding rule', () => {
    assert.deepEqual(formatDecision(base, NO_COLORS), ['03:04:05 ALLOW curl /usr/bin/curl → 198.18.0.2:80 TCP  [rule /usr/bin/curl:80]']);
  });

  it("shows the destination's host name before its address when the helper learned it", () => {
    assert.deepEqual(formatDecision({ ...base, host: 'www.example.org' }, NO_COLORS), [
      '03:04:05 ALLOW curl /usr/bin/curl → www.example.org (198.18.0.2:80) TCP  [rule /usr/bin/curl:80]',
    ]);
  });

  it("marks a name from a resolver that is not the system's as unverified", () => {
    assert.deepEqual(formatDecision({ ...base, allow: false, reason: 'default', rule_key: null, unverified_host: 'www.bank.example' }, NO_COLORS), [
      '03:04:05 DENY  curl /usr/bin/curl → www.bank.example (unverified) (198.18.0.2:80) TCP  [default action]',
    ]);
    assert.deepEqual(formatDecision({ ...base, unverified_host: 'x\u001b]0;owned\u0007.org' }, NO_COLORS), [
      '03:04:05 ALLOW curl /usr/bin/curl → 198.18.0.2:80 TCP  [rule /usr/bin/curl:80]',
    ]);
  });

  it('never prints a host name that is not one (no terminal escapes from the socket)', () => {
    assert.deepEqual(formatDecision({ ...base, host: 'x\u001b]0;owned\u0007.org' }, NO_COLORS), [
      '03:04:05 ALLOW curl /usr/bin/curl → 198.18.0.2:80 TCP  [rule /usr/bin/curl:80]',
    ]);
  });

  it('says how many connections one line stands for when the helper grouped them', () => {
    assert.deepEqual(formatDecision({ ...base, connections: 12 }, NO_COLORS), [
      '03:04:05 ALLOW curl /usr/bin/curl → 198.18.0.2:80 TCP ×12  [rule /usr/bin/curl:80]',
    ]);
  });

  it('names the reason when no rule decided, brackets IPv6, and says how many were missed', () => {
    const lines = formatDecision({ ...base, allow: false, reason: 'timeout', rule_key: null, dest_ip: 'fd00:b5::2', missed: 3 }, NO_COLORS);
    assert.deepEqual(lines, [
      '… 3 decision(s) not shown: this terminal read too slowly',
      '03:04:05 DENY  curl /usr/bin/curl → [fd00:b5::2]:80 TCP  [no answer in time]',
    ]);
  });

  it('colours the verdict on a terminal: green allow, red deny', () => {
    const c = colorsFor({ isTTY: true }, {});
    assert.ok(formatDecision(base, c)[0]!.includes('\x1b[32mALLOW\x1b[39m'));
    assert.ok(formatDecision({ ...base, allow: false }, c)[0]!.includes('\x1b[31mDENY \x1b[39m'));
  });

  it('no colours for a pipe, or with NO_COLOR; FORCE_COLOR forces them', () => {
    assert.equal(colorsFor({ isTTY: false }, {}), NO_COLORS);
    assert.equal(colorsFor({ isTTY: true }, { NO_COLOR: '1' }), NO_COLORS);
    assert.notEqual(colorsFor({ isTTY: false }, { FORCE_COLOR: '1' }), NO_COLORS);
  });
});

describe('bastion prompt: a request whose name is unverified', () => {
  const req = {
    request_id: 'python3-1',
    app_name: 'python3 (www.bank.example, unverified)',
    app_path: '/usr/bin/python3.11',
    dest_ip: '198.18.0.4',
    dest_port: 80,
    protocol: 'TCP',
    learning_mode: false,
  };

  it('says the name is not from the system resolver; a verified name gets no such line', () => {
    const lines = requestLines(req, NO_COLORS);
    assert.equal(lines[0], '? python3 (www.bank.example, unverified) wants to connect');
    assert.ok(lines.includes('  name not from the system resolver: anyone may have forged it'));
    assert.equal(
      requestLines({ ...req, app_name: 'python3 (www.bank.example)' }, NO_COLORS).some((l) => l.includes('forged')),
      false,
    );
  });
});
