// Extended rules (docs/rules.md): validation with exact messages, the precedence table, the one
// @dest spelling, and rules.json entries in the rules.d format and back.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { checkConfigFiles } from '../../cli/checkConfigCommand.js';
import { ruleFromArgs } from '../../cli/rulesCommand.js';
import { parseExtendedRule, ruleToJson, specificity, type ExtendedRule } from '../../service/rules/extendedRule.js';
import { ExtendedRuleSet, type ExtendedFacts } from '../../service/rules/extendedRuleSet.js';
import { extendedToLegacy, legacyToExtended } from '../../service/rules/legacyRules.js';
import { parseRuleKey } from '../../service/rules/ruleKey.js';
import { RuleSet } from '../../service/rules/ruleSet.js';
import { connection } from '../support/promptFakes.js';

const users = (name: string): number | null => ({ alice: 1000, bob: 1001 })[name] ?? null;

function rule(json: Record<string, unknown>, source = 'test#1'): ExtendedRule {
  const parsed = parseExtendedRule(json, source, users);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.rule;
}

const noFacts: ExtendedFacts = {
  script: () => null,
  sha256: () => ({ ok: false, why: 'no hash in this test' }),
  inList: () => false,
};

describe('an extended rule is validated field by field', () => {
  const cases: [string, unknown, string][] = [
    ['not an object', [], 'a rule must be a JSON object'],
    ['no action', { exe: '/usr/bin/curl' }, '"action" must be "allow" or "deny"'],
    [
      'no criterion',
      { action: 'allow' },
      'a rule needs at least one criterion (exe, comm, user, dest, host, list, port, proto, parent, script, app_id, sha256)',
    ],
    [
      'an unknown field',
      { action: 'allow', exe: '/usr/bin/curl', ports: 1 },
      'unknown field "ports"; fields: action, exe, comm, user, dest, host, list, port, proto, parent, script, app_id, sha256, comment',
    ],
    ['a relative exe', { action: 'allow', exe: 'curl' }, '"exe" must be an absolute path without "." or ".." parts'],
    ['a .. in a script', { action: 'allow', script: '/opt/../tmp/x.py' }, '"script" must be an absolute path without "." or ".." parts'],
    ['an unknown user', { action: 'allow', user: 'mallory' }, '"user": no user named "mallory"'],
    ['a bad CIDR', { action: 'allow', dest: '10.0.0.0/33' }, '"dest" must be an IP address or a CIDR block (192.0.2.0/24, 2001:db8::/32)'],
    ['two destinations', { action: 'deny', dest: '10.0.0.0/8', host: 'example.org' }, 'a rule names one destination: dest and host given'],
    ['port 0', { action: 'allow', port: 0 }, '"port" must be 1-65535 (leave it out for every port)'],
    ['icmp with a port', { action: 'allow', proto: 'icmp', port: 80 }, '"proto": "icmp" has no ports; leave "port" out'],
    ['a short hash', { action: 'allow', exe: '/usr/bin/curl', sha256: 'abc' }, '"sha256" must be 64 hex digits'],
    ['a hash without exe', { action: 'allow', sha256: 'a'.repeat(64) }, '"sha256" pins an executable: "exe" is needed with it'],
    ['a long comm', { action: 'allow', comm: 'x'.repeat(16) }, '"comm" must be a process name of 1 to 15 bytes'],
  ];
  for (const [name, value, error] of cases) {
    it(`refuses ${name}`, () => {
      assert.deepEqual(parseExtendedRule(value, 'f.json#3', users), { ok: false, error: `f.json#3: ${error}` });
    });
  }

  it('reads a user name as its uid, a CIDR with its host bits cleared, a host in lower case', () => {
    const r = rule({ action: 'deny', user: 'alice', dest: '2001:DB8::7/32', port: 443, proto: 'tcp' });
    assert.equal(r.user, 1000);
    assert.equal(r.dest?.text, '2001:db8::/32');
    assert.deepEqual(ruleToJson(r), { action: 'deny', user: 'alice', dest: '2001:db8::/32', port: 443, proto: 'tcp' });
    assert.equal(rule({ action: 'allow', host: 'WWW.Example.ORG.' }).host, 'www.example.org');
  });
});

describe('precedence: the most specific rule wins, deny beats allow at equal specificity', () => {
  // [rules (first is expected to win or null), connection, which wins]
  const curl443 = { exe: '/usr/bin/curl', port: 443, dst: [198, 51, 100, 7] as [number, number, number, number] };
  const cases: { name: string; rules: Record<string, unknown>[]; conn?: Parameters<typeof connection>[0]; winner: number | null }[] = [
    {
      name: 'an exact port beats every port',
      rules: [
        { action: 'allow', exe: '/usr/bin/curl' },
        { action: 'deny', exe: '/usr/bin/curl', port: 443 },
      ],
      winner: 1,
    },
    {
      name: 'deny beats allow at equal specificity',
      rules: [
        { action: 'allow', exe: '/usr/bin/curl' },
        { action: 'deny', user: 'alice' },
      ],
      winner: 1,
    },
    {
      name: 'more criteria beat fewer',
      rules: [
        { action: 'deny', exe: '/usr/bin/curl' },
        { action: 'allow', exe: '/usr/bin/curl', user: 'alice' },
      ],
      winner: 1,
    },
    {
      name: 'a narrower CIDR beats a wider one',
      rules: [
        { action: 'deny', dest: '198.51.0.0/16' },
        { action: 'allow', dest: '198.51.100.0/24' },
      ],
      winner: 1,
    },
    {
      name: 'a single address beats its block',
      rules: [
        { action: 'allow', dest: '198.51.100.0/24' },
        { action: 'deny', dest: '198.51.100.7' },
      ],
      winner: 1,
    },
    {
      name: 'an exact host beats a CIDR',
      rules: [
        { action: 'deny', dest: '198.51.100.7/32' },
        { action: 'allow', host: 'api.example.org' },
      ],
      winner: 1,
    },
    {
      name: 'an exact host beats its *.suffix',
      rules: [
        { action: 'deny', host: '*.example.org' },
        { action: 'allow', host: 'api.example.org' },
      ],
      winner: 1,
    },
    {
      name: 'a *.suffix beats a CIDR',
      rules: [
        { action: 'allow', dest: '198.51.100.0/24' },
        { action: 'deny', host: '*.example.org' },
      ],
      winner: 1,
    },
    {
      name: 'at an equal count of criteria, the narrower destination decides',
      rules: [
        { action: 'deny', exe: '/usr/bin/curl', port: 443 },
        { action: 'allow', exe: '/usr/bin/curl', dest: '198.51.100.0/24' },
      ],
      winner: 1,
    },
    {
      name: 'proto counts as a criterion',
      rules: [
        { action: 'allow', exe: '/usr/bin/curl' },
        { action: 'deny', exe: '/usr/bin/curl', proto: 'tcp' },
      ],
      winner: 1,
    },
    { name: 'a near miss (another user) does not match', rules: [{ action: 'deny', user: 'bob' }], winner: null },
    { name: 'a near miss (another port) does not match', rules: [{ action: 'deny', exe: '/usr/bin/curl', port: 80 }], winner: null },
    { name: 'a near miss (udp rule, tcp connection) does not match', rules: [{ action: 'deny', proto: 'udp' }], winner: null },
    { name: 'a near miss (just outside the block) does not match', rules: [{ action: 'deny', dest: '198.51.100.8/29' }], winner: null },
    { name: 'an IPv6 block never matches an IPv4 address', rules: [{ action: 'deny', dest: '::/0' }], winner: null },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const rules = c.rules.map((r, i) => rule(r, `t#${i}`));
      const conn = connection({ ...curl443, ...c.conn });
      conn.host = 'api.example.org';
      const set = new ExtendedRuleSet(rules);
      const hit = set.match(conn, noFacts);
      if (c.winner === null) assert.equal(hit, null);
      else {
        assert.equal(hit?.kind, 'rule');
        assert.equal(hit.rule.source, `t#${c.winner}`);
        // In either order of the files.
        assert.equal(new ExtendedRuleSet([...rules].reverse()).match(conn, noFacts)?.rule.source, `t#${c.winner}`);
      }
    });
  }

  it('specificity: criteria count first, then exact host > *.suffix > CIDR (longer prefix first) > list', () => {
    const s = (r: Record<string, unknown>): number => specificity(rule(r));
    assert.ok(s({ action: 'allow', exe: '/a', port: 1 }) > s({ action: 'allow', host: 'example.org' }));
    assert.ok(s({ action: 'allow', host: 'example.org' }) > s({ action: 'allow', host: '*.a.example.org' }));
    assert.ok(s({ action: 'allow', host: '*.a.example.org' }) > s({ action: 'allow', host: '*.example.org' }));
    assert.ok(s({ action: 'allow', host: '*.org' }) > s({ action: 'allow', dest: '::1' }));
    assert.equal(s({ action: 'allow', dest: '10.0.0.1' }), s({ action: 'allow', dest: '::1' }));
    assert.ok(s({ action: 'allow', dest: '0.0.0.0/0' }) > s({ action: 'allow', list: 'ads' }));
  });

  it('a pinned hash that does not hold asks again and says why', () => {
    const pinned = rule({ action: 'allow', exe: '/usr/bin/curl', sha256: 'a'.repeat(64) });
    const facts: ExtendedFacts = { ...noFacts, sha256: () => ({ ok: true, hash: 'b'.repeat(64) }) };
    const hit = new ExtendedRuleSet([pinned]).match(connection({}), facts);
    assert.deepEqual(hit, { kind: 'pin_mismatch', rule: pinned, why: `/usr/bin/curl now has SHA-256 ${'b'.repeat(64)}, not the pinned ${'a'.repeat(64)}` });
    const same: ExtendedFacts = { ...noFacts, sha256: () => ({ ok: true, hash: 'a'.repeat(64) }) };
    assert.equal(new ExtendedRuleSet([pinned]).match(connection({}), same)?.kind, 'rule');
  });

  it('says whether a path rule is final: not when some extended rule names no exe, or this exe', () => {
    assert.equal(new ExtendedRuleSet([rule({ action: 'allow', exe: '/usr/bin/wget', port: 1 })]).couldMatchExe('/usr/bin/curl'), false);
    assert.equal(new ExtendedRuleSet([rule({ action: 'allow', exe: '/usr/bin/curl', user: 1 })]).couldMatchExe('/usr/bin/curl'), true);
    assert.equal(new ExtendedRuleSet([rule({ action: 'deny', list: 'ads' })]).couldMatchExe('/usr/bin/curl'), true);
  });
});

describe('one syntax for destination rules', () => {
  it('stores @dest:<ip>:53:53 and @dest:<ip>:*:53 as @dest:<ip>:53:*, and refuses two different ports', () => {
    assert.deepEqual(parseRuleKey('@dest:192.0.2.7:53:53'), { ok: true, subject: '@dest:192.0.2.7:53', port: '*' });
    assert.deepEqual(parseRuleKey('@dest:192.0.2.7:*:53'), { ok: true, subject: '@dest:192.0.2.7:53', port: '*' });
    assert.deepEqual(parseRuleKey('@dest:2001:db8::1:443:*'), { ok: true, subject: '@dest:2001:db8::1:443', port: '*' });
    const bad = parseRuleKey('@dest:192.0.2.7:53:80');
    assert.deepEqual(bad, { ok: false, error: 'rule "@dest:192.0.2.7:53:80" names port 53 in its subject and port 80 after it; write "@dest:192.0.2.7:53:*"' });
    const set = new RuleSet();
    assert.deepEqual(set.set('@dest:192.0.2.7:53', 53, true), { ok: true, key: '@dest:192.0.2.7:53:*' });
    assert.deepEqual(
      Object.keys(set.toJSON()).filter((k) => k.startsWith('@')),
      ['@dest:192.0.2.7:53:*'],
    );
  });

  it('bastion rules add takes @dest:<ip> and the port apart, for IPv4 and IPv6, and explains the old form', () => {
    assert.deepEqual(ruleFromArgs('@dest:192.0.2.7', '53', {}), { action: 'allow', dest: '192.0.2.7', port: 53 });
    assert.deepEqual(ruleFromArgs('@dest:2001:db8::1', '443', { deny: true }), { action: 'deny', dest: '2001:db8::1', port: 443 });
    assert.equal(
      ruleFromArgs('@dest:192.0.2.7:53', '53', {}),
      '"@dest:192.0.2.7:53" is not @dest:<ip>: the port goes in the second argument (bastion rules add @dest:192.0.2.7 53), and --dest takes a CIDR block',
    );
    assert.deepEqual(ruleFromArgs('*', '*', { list: 'ads', deny: true }), { action: 'deny', list: 'ads' });
    assert.match(String(ruleFromArgs('*', '*', {})), /needs a criterion/);
    assert.deepEqual(ruleFromArgs('*', '443', { user: 'alice' }), { action: 'allow', port: 443, user: 'alice' });
  });
});

describe('rules.json entries in the rules.d format', () => {
  it('converts each subject kind and back', () => {
    const legacy = RuleSet.fromJSON(
      JSON.parse('{"/usr/bin/curl:443": true, "@name:python3:*": false, "@dest:2001:db8::1:443:*": false, "@host:*.ads.test:*": false}'),
    );
    assert.ok(legacy.ok);
    const rules = legacy.rules.entries().map(legacyToExtended);
    assert.deepEqual(rules.map(ruleToJson), [
      { action: 'allow', exe: '/usr/bin/curl', port: 443 },
      { action: 'deny', dest: '2001:db8::1/128', port: 443 },
      { action: 'deny', host: '*.ads.test' },
      { action: 'deny', comm: 'python3' },
    ]);
    const back = rules.map((r) => extendedToLegacy(r));
    assert.deepEqual(back, [
      { subject: '/usr/bin/curl', port: 443 },
      { subject: '@dest:2001:db8::1:443', port: '*' },
      { subject: '@host:*.ads.test', port: '*' },
      { subject: '@name:python3', port: '*' },
    ]);
    assert.equal(extendedToLegacy(rule({ action: 'allow', exe: '/usr/bin/curl', user: 1000 })), null);
    assert.equal(extendedToLegacy(rule({ action: 'allow', dest: '10.0.0.0/8' })), null);
  });
});

describe('bastion check-config on rules.d', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bastion-rules-d-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('exits 0 for valid files and names every skipped file and rule otherwise', async () => {
    const rulesDir = join(dir, 'rules.d');
    mkdirSync(rulesDir);
    writeFileSync(
      join(rulesDir, '10-ok.json'),
      JSON.stringify([
        { action: 'deny', list: 'ads' },
        { action: 'allow', exe: '/usr/bin/curl', port: 443 },
      ]),
    );
    assert.deepEqual(await checkConfigFiles({ rulesDir }), { ok: true, lines: [`${rulesDir}: 2 extended rules from 1 files`] });
    writeFileSync(
      join(rulesDir, '20-bad.json'),
      JSON.stringify([
        { action: 'allow', exe: 'curl' },
        { action: 'deny', port: 25 },
      ]),
    );
    writeFileSync(join(rulesDir, '30-broken.json'), '{"rules": []}');
    writeFileSync(join(rulesDir, 'README'), 'not a rules file');
    const report = await checkConfigFiles({ rulesDir });
    assert.equal(report.ok, false);
    assert.deepEqual(report.lines, [
      `error: ${rulesDir}/20-bad.json#1: "exe" must be an absolute path without "." or ".." parts; rule skipped`,
      `error: ${rulesDir}/30-broken.json: must be a JSON array of rules; file skipped`,
      `${rulesDir}: 3 extended rules from 3 files`,
    ]);
  });
});
