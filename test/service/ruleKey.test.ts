import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  destSubject,
  formatRuleKey,
  isDestSubject,
  isHostSubject,
  isMetaKey,
  isNameSubject,
  isPathSubject,
  nameOfSubject,
  nameSubject,
  parseDestSubject,
  parseRuleKey,
  subjectKind,
} from '../../service/rules/ruleKey.js';

describe('parseRuleKey', () => {
  const valid: [key: string, subject: string, port: number | '*'][] = [
    ['/usr/bin/curl:443', '/usr/bin/curl', 443],
    ['/usr/bin/curl:*', '/usr/bin/curl', '*'],
    ['/usr/bin/wget:0', '/usr/bin/wget', '*'],
    ['/usr/bin/curl:1', '/usr/bin/curl', 1],
    ['/usr/bin/curl:65535', '/usr/bin/curl', 65535],
    ['/usr/bin/curl:0443', '/usr/bin/curl', 443],
    ['/opt/tools/sync agent:443', '/opt/tools/sync agent', 443],
    ['/opt/a:b/tool:22', '/opt/a:b/tool', 22],
    ['@name:python3:*', '@name:python3', '*'],
    ['@name:IPC:CSteamEngin:27015', '@name:IPC:CSteamEngin', 27015],
    ['@dest:192.0.2.7:8443:*', '@dest:192.0.2.7:8443', '*'],
    ['@dest:2001:db8::1:443:*', '@dest:2001:db8::1:443', '*'],
    // ICMP has no port: a @dest subject for every port of the address, "0" written as "*".
    ['@dest:10.201.1.2:*:*', '@dest:10.201.1.2:*', '*'],
    ['@dest:10.201.1.2:0:*', '@dest:10.201.1.2:*', '*'],
    ['@dest:2001:db8::1:*:*', '@dest:2001:db8::1:*', '*'],
    ['@host:example.org:443', '@host:example.org', 443],
    ['@host:WWW.Example.ORG.:443', '@host:www.example.org', 443],
    ['@host:*.example.org:*', '@host:*.example.org', '*'],
    ['@host:_dmarc.example.org:53', '@host:_dmarc.example.org', 53],
  ];
  for (const [key, subject, port] of valid) {
    it(`splits ${JSON.stringify(key)} at its last ':'`, () => {
      assert.deepEqual(parseRuleKey(key), { ok: true, subject, port });
    });
  }

  const invalid: [key: string, error: string][] = [
    ['/usr/bin/curl', 'rule key "/usr/bin/curl" has no ":<port>" part'],
    ['/usr/bin/curl:http', 'rule key "/usr/bin/curl:http" has port part "http"; expected 1-65535, "*" or "0"'],
    ['/usr/bin/curl:65536', 'rule key "/usr/bin/curl:65536" has port part "65536"; expected 1-65535, "*" or "0"'],
    ['/usr/bin/curl:-1', 'rule key "/usr/bin/curl:-1" has port part "-1"; expected 1-65535, "*" or "0"'],
    ['/usr/bin/curl:', 'rule key "/usr/bin/curl:" has port part ""; expected 1-65535, "*" or "0"'],
    ['curl:443', 'rule key "curl:443" has subject "curl"; expected an absolute path, @name:<comm>, @dest:<ip>:<port or *> or @host:<name or *.suffix>'],
    ['@name::443', 'rule key "@name::443" has subject "@name:"; expected an absolute path, @name:<comm>, @dest:<ip>:<port or *> or @host:<name or *.suffix>'],
    [
      '@dest:192.0.2.7:*',
      'rule key "@dest:192.0.2.7:*" has subject "@dest:192.0.2.7"; expected an absolute path, @name:<comm>, @dest:<ip>:<port or *> or @host:<name or *.suffix>',
    ],
    [
      '@dest:example.org:443:*',
      'rule key "@dest:example.org:443:*" has subject "@dest:example.org:443"; expected an absolute path, @name:<comm>, @dest:<ip>:<port or *> or @host:<name or *.suffix>',
    ],
  ];
  const badHosts = [
    '@host:',
    '@host:*',
    '@host:*.',
    '@host:a..b',
    '@host:-a.org',
    '@host:a-.org',
    '@host:exa mple.org',
    '@host:a.*.org',
    '@host:**.org',
    '@host:ex\u001b[31m.org',
    `@host:${'a'.repeat(64)}.org`,
    `@host:${'a.'.repeat(127)}a`,
  ];
  for (const subject of badHosts) {
    invalid.push([
      `${subject}:443`,
      `rule key ${JSON.stringify(`${subject}:443`)} has subject ${JSON.stringify(subject)}; expected an absolute path, @name:<comm>, @dest:<ip>:<port or *> or @host:<name or *.suffix>`,
    ]);
  }
  for (const [key, error] of invalid) {
    it(`rejects ${JSON.stringify(key)}`, () => {
      assert.deepEqual(parseRuleKey(key), { ok: false, error });
    });
  }
});

describe('formatRuleKey', () => {
  it('writes port 0 as "*"', () => {
    assert.equal(formatRuleKey('/usr/bin/wget', 0), '/usr/bin/wget:*');
  });

  it('writes a port and the wildcard as they are', () => {
    assert.equal(formatRuleKey('/usr/bin/curl', 443), '/usr/bin/curl:443');
    assert.equal(formatRuleKey('@dest:2001:db8::1:443', '*'), '@dest:2001:db8::1:443:*');
  });

  it('round-trips through parseRuleKey', () => {
    const parsed = parseRuleKey(formatRuleKey(nameSubject('IPC:CSteamEngin'), 27015));
    assert.deepEqual(parsed, { ok: true, subject: '@name:IPC:CSteamEngin', port: 27015 });
  });
});

describe('subjects', () => {
  it('builds @dest and @name subjects', () => {
    assert.equal(destSubject('192.0.2.7', 8443), '@dest:192.0.2.7:8443');
    assert.equal(destSubject('10.201.1.2', 0), '@dest:10.201.1.2:*', 'ICMP (port 0) names every port');
    assert.equal(destSubject('2001:db8::1', 443), '@dest:2001:db8::1:443');
    assert.equal(nameSubject('IPC:CSteamEngin'), '@name:IPC:CSteamEngin');
  });

  const kinds: [subject: string, kind: ReturnType<typeof subjectKind>][] = [
    ['/usr/bin/curl', 'path'],
    ['@name:python3', 'name'],
    ['@dest:192.0.2.7:8443', 'dest'],
    ['@dest:2001:db8::1:443', 'dest'],
    ['@dest:192.0.2.7', null],
    ['@dest:192.0.2.7:0', 'dest'],
    ['@dest:192.0.2.7:*', 'dest'],
    ['@host:example.org', 'host'],
    ['@host:*.example.org', 'host'],
    ['@host:', null],
    ['@name:', null],
    ['unknown', null],
    ['', null],
  ];
  for (const [subject, kind] of kinds) {
    it(`tells that ${JSON.stringify(subject)} is ${kind ?? 'not a subject'}`, () => {
      assert.equal(subjectKind(subject), kind);
      assert.equal(isPathSubject(subject), kind === 'path');
      assert.equal(isNameSubject(subject), kind === 'name');
      assert.equal(isDestSubject(subject), kind === 'dest');
      assert.equal(isHostSubject(subject), kind === 'host');
    });
  }

  it('splits an IPv6 @dest subject at its last colon', () => {
    assert.deepEqual(parseDestSubject('@dest:2001:db8::1:443'), { ip: '2001:db8::1', port: 443 });
  });

  it('reads the comm of an @name subject, which may contain ":"', () => {
    assert.equal(nameOfSubject('@name:IPC:CSteamEngin'), 'IPC:CSteamEngin');
    assert.equal(nameOfSubject('/usr/bin/curl'), null);
  });

  it('knows the legacy meta keys', () => {
    assert.equal(isMetaKey('applications'), true);
    assert.equal(isMetaKey('services'), true);
    assert.equal(isMetaKey('/usr/bin/curl:*'), false);
  });
});
