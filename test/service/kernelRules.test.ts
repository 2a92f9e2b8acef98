// Which path rules the service lets the kernel apply (service/kernelRules.ts): only those whose
// decision Policy.decide() gives whatever the destination and user, a subject's rules whole.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { kernelPathRules } from '../../service/kernelRules.js';
import { Policy } from '../../service/policy.js';
import { parseExtendedRule } from '../../service/rules/extendedRule.js';
import { ExtendedRuleSet } from '../../service/rules/extendedRuleSet.js';
import { RuleSet } from '../../service/rules/ruleSet.js';
import { SessionDecisions } from '../../service/sessions.js';
import { Whitelist } from '../../service/whitelist.js';

function rulesFor(json: Record<string, boolean>, sessions = new SessionDecisions()) {
  const built = RuleSet.fromJSON(json);
  assert.ok(built.ok);
  const whitelist = new Whitelist(() => 0);
  return kernelPathRules({ rules: built.rules, sessionNames: (s) => sessions.names(s), whitelisted: (p) => whitelist.isSystemClient(p) });
}

describe('path rules for the kernel', () => {
  it("sends a path's rules, every port as port 0", () => {
    assert.deepEqual(rulesFor({ '/usr/bin/curl:80': true, '/usr/bin/curl:*': false, '/usr/bin/nc:443': false }), [
      { path: '/usr/bin/curl', port: 0, allow: false },
      { path: '/usr/bin/curl', port: 80, allow: true },
      { path: '/usr/bin/nc', port: 443, allow: false },
    ]);
  });

  const leftOut: [string, Record<string, boolean>][] = [
    ['@name subjects', { '@name:curl:80': true }],
    ['@dest subjects', { '@dest:192.0.2.1:80': false }],
    ['@host subjects', { '@host:example.org:443': true }],
    ["a system client's rules (the whitelist would allow what they deny)", { '/usr/sbin/dnsmasq:*': false, '/usr/sbin/dnsmasq:8080': true }],
  ];
  for (const [what, json] of leftOut) {
    it(`leaves out ${what}`, () => {
      assert.deepEqual(rulesFor(json), []);
    });
  }

  it('leaves out every rule of a subject a session decision names, for any uid and port', () => {
    const sessions = new SessionDecisions();
    sessions.set(1000, '/usr/bin/curl', 8080, true, null);
    assert.deepEqual(rulesFor({ '/usr/bin/curl:80': true, '/usr/bin/curl:*': false, '/usr/bin/wget:80': true }, sessions), [
      { path: '/usr/bin/wget', port: 80, allow: true },
    ]);
  });
});

describe('path rules for the kernel beside extended rules', () => {
  it('leaves out the rules of an executable that an extended rule could match, and keeps the others', () => {
    const built = RuleSet.fromJSON({ '/usr/bin/curl:*': true, '/usr/bin/nc:443': false });
    assert.ok(built.ok);
    const parsed = parseExtendedRule({ action: 'deny', exe: '/usr/bin/curl', user: 1000 }, 'rules.d/a.json#1', () => null);
    assert.ok(parsed.ok);
    const policy = new Policy({
      config: () => ({}) as never,
      rules: () => built.rules,
      sessions: new SessionDecisions(),
      whitelist: new Whitelist(() => 0),
      extended: () => new ExtendedRuleSet([parsed.rule]),
    });
    const sent = kernelPathRules({ rules: built.rules, sessionNames: () => false, whitelisted: () => false, pathRulesFinal: (p) => policy.pathRulesFinal(p) });
    assert.deepEqual(sent, [{ path: '/usr/bin/nc', port: 443, allow: false }]);
  });
});
