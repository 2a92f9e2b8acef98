import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { RuleSet } from '../../service/rules/ruleSet.js';
import type { RuleQuery } from '../../service/rules/ruleSet.js';

const FIXTURE = new URL('../fixtures/rules-rust-daemon.json', import.meta.url);
const fixtureText = readFileSync(FIXTURE, 'utf8');

function build(json: unknown): RuleSet {
  const result = RuleSet.fromJSON(json);
  assert.ok(result.ok, 'fromJSON failed');
  return result.rules;
}

function query(q: Partial<RuleQuery> & { destPort: number }): RuleQuery {
  return { exe: null, comm: null, destIp: '198.51.100.1', ...q };
}

describe("RuleSet with the old daemon's rules.json", () => {
  const loaded = RuleSet.fromJSON(JSON.parse(fixtureText));

  it('loads 10 rules and skips the meta keys without warnings', () => {
    assert.ok(loaded.ok);
    assert.equal(loaded.rules.size, 10);
    assert.deepEqual(loaded.warnings, []);
  });

  it('writes the file back byte for byte, except that ":0" comes back as ":*"', () => {
    assert.ok(loaded.ok);
    const expected = fixtureText.replace('"/usr/bin/wget:0"', '"/usr/bin/wget:*"');
    assert.equal(JSON.stringify(loaded.rules.toJSON(), null, 2) + '\n', expected);
  });

  const matches: [name: string, q: RuleQuery, expected: { allow: boolean; key: string } | null][] = [
    ['the path with a space matches', query({ exe: '/opt/tools/sync agent', destPort: 443 }), { allow: true, key: '/opt/tools/sync agent:443' }],
    [
      '@name:IPC:CSteamEngin with port 27015 matches',
      query({ exe: '/home/u/.steam/steam', comm: 'IPC:CSteamEngin', destPort: 27015 }),
      { allow: true, key: '@name:IPC:CSteamEngin:27015' },
    ],
    ['the IPv6 @dest deny matches', query({ destIp: '2001:db8::1', destPort: 443 }), { allow: false, key: '@dest:2001:db8::1:443:*' }],
    ['the IPv4 @dest allow matches', query({ destIp: '192.0.2.7', destPort: 8443 }), { allow: true, key: '@dest:192.0.2.7:8443:*' }],
    ['the ":0" entry matches every port', query({ exe: '/usr/bin/wget', destPort: 8080 }), { allow: true, key: '/usr/bin/wget:*' }],
    ['the specific-port deny beats the wildcard allow', query({ exe: '/usr/bin/curl', destPort: 25 }), { allow: false, key: '/usr/bin/curl:25' }],
    ['the wildcard allow covers other ports', query({ exe: '/usr/bin/curl', destPort: 587 }), { allow: true, key: '/usr/bin/curl:*' }],
    ['an unlisted program matches nothing', query({ exe: '/usr/bin/ssh', comm: 'ssh', destPort: 22 }), null],
    ['a listed program on an unlisted port matches nothing', query({ exe: '/usr/lib/firefox/firefox', destPort: 8080 }), null],
  ];
  for (const [name, q, expected] of matches) {
    it(name, () => {
      assert.ok(loaded.ok);
      assert.deepEqual(loaded.rules.match(q), expected);
    });
  }
});

describe('RuleSet.match precedence', () => {
  const cases: [name: string, json: Record<string, boolean>, q: RuleQuery, expected: { allow: boolean; key: string } | null][] = [
    [
      'a deny rule for the exact port beats an allow for all ports',
      { '/usr/bin/curl:*': true, '/usr/bin/curl:443': false },
      query({ exe: '/usr/bin/curl', destPort: 443 }),
      { allow: false, key: '/usr/bin/curl:443' },
    ],
    [
      'an allow rule for the exact port beats a deny for all ports',
      { '/usr/bin/curl:*': false, '/usr/bin/curl:443': true },
      query({ exe: '/usr/bin/curl', destPort: 443 }),
      { allow: true, key: '/usr/bin/curl:443' },
    ],
    [
      'a path rule for all ports beats an @name rule for the exact port',
      { '/usr/bin/curl:*': true, '@name:curl:443': false },
      query({ exe: '/usr/bin/curl', comm: 'curl', destPort: 443 }),
      { allow: true, key: '/usr/bin/curl:*' },
    ],
    [
      'an @name rule beats an @dest rule',
      { '@name:curl:*': false, '@dest:192.0.2.1:443:*': true },
      query({ exe: '/usr/bin/curl', comm: 'curl', destIp: '192.0.2.1', destPort: 443 }),
      { allow: false, key: '@name:curl:*' },
    ],
    [
      'an @name rule applies when the path has no rule',
      { '/usr/bin/wget:*': false, '@name:curl:443': true },
      query({ exe: '/usr/bin/curl', comm: 'curl', destPort: 443 }),
      { allow: true, key: '@name:curl:443' },
    ],
    [
      'a path rule for another port falls through to @name',
      { '/usr/bin/curl:80': false, '@name:curl:*': true },
      query({ exe: '/usr/bin/curl', comm: 'curl', destPort: 443 }),
      { allow: true, key: '@name:curl:*' },
    ],
    ['an @dest rule matches only its own destination port', { '@dest:192.0.2.1:443:*': true }, query({ destIp: '192.0.2.1', destPort: 80 }), null],
    [
      'an @dest rule matches a connection with no process',
      { '@dest:192.0.2.1:443:*': false },
      query({ exe: 'unknown', comm: 'unknown', destIp: '192.0.2.1', destPort: 443 }),
      { allow: false, key: '@dest:192.0.2.1:443:*' },
    ],
  ];
  for (const [name, json, q, expected] of cases) {
    it(name, () => {
      assert.deepEqual(build(json).match(q), expected);
    });
  }

  for (const exe of ['unknown', '']) {
    it(`exe ${JSON.stringify(exe)} never matches a path rule`, () => {
      const rules = build({ '/usr/bin/curl:*': true });
      assert.equal(rules.match(query({ exe, destPort: 443 })), null);
    });
  }

  it('an empty comm never matches an @name rule', () => {
    const rules = new RuleSet();
    // Not a valid subject, so it cannot even be stored.
    assert.deepEqual(rules.set('@name:', '*', true), {
      ok: false,
      error: 'rule subject "@name:" is not an absolute path, @name:<comm>, @dest:<ip>:<port or *> or @host:<name or *.suffix>',
    });
    assert.equal(rules.match(query({ comm: '', destPort: 443 })), null);
  });
});

describe('RuleSet.fromJSON', () => {
  const refused: [name: string, value: unknown, error: string][] = [
    ['an array', [], 'rules must be a JSON object, got an array'],
    ['null', null, 'rules must be a JSON object, got null'],
    ['a string', 'rules', 'rules must be a JSON object, got a string'],
    ['a number', 42, 'rules must be a JSON object, got a number'],
  ];
  for (const [name, value, error] of refused) {
    it(`refuses ${name}`, () => {
      assert.deepEqual(RuleSet.fromJSON(value), { ok: false, error });
    });
  }

  it('skips bad keys and non-boolean values with a warning each and keeps the rest', () => {
    const result = RuleSet.fromJSON({
      '/usr/bin/curl:443': true,
      '/usr/bin/curl:http': true,
      'curl:443': false,
      '/usr/bin/wget:80': 'yes',
      '/usr/bin/ssh:22': 1,
      '/usr/bin/git:*': { allow: true },
    });
    assert.ok(result.ok);
    assert.equal(result.rules.size, 1);
    assert.deepEqual(result.warnings, [
      'skipped: rule key "/usr/bin/curl:http" has port part "http"; expected 1-65535, "*" or "0"',
      'skipped: rule key "curl:443" has subject "curl"; expected an absolute path, @name:<comm>, @dest:<ip>:<port or *> or @host:<name or *.suffix>',
      'skipped: rule "/usr/bin/wget:80" has value "yes"; expected true or false',
      'skipped: rule "/usr/bin/ssh:22" has value 1; expected true or false',
      'skipped: rule "/usr/bin/git:*" has value {"allow":true}; expected true or false',
    ]);
  });

  it('warns when ":0" and ":*" name the same rule, and the later one wins', () => {
    const result = RuleSet.fromJSON({ '/usr/bin/wget:*': true, '/usr/bin/wget:0': false });
    assert.ok(result.ok);
    assert.equal(result.rules.size, 1);
    assert.equal(result.rules.get('/usr/bin/wget', '*'), false);
    assert.deepEqual(result.warnings, ['rule "/usr/bin/wget:0" repeats "/usr/bin/wget:*"; the later entry wins']);
  });

  it('keeps non-empty legacy meta values on save', () => {
    const rules = build({ applications: { firefox: 'x' }, '/usr/bin/curl:*': true });
    assert.deepEqual(rules.toJSON(), { '/usr/bin/curl:*': true, applications: { firefox: 'x' }, services: {} });
  });
});

describe('RuleSet.set', () => {
  it('adds a rule and returns its canonical key', () => {
    const rules = new RuleSet();
    assert.deepEqual(rules.set('/usr/bin/curl', 0, true), { ok: true, key: '/usr/bin/curl:*' });
    assert.equal(rules.size, 1);
    assert.deepEqual(rules.match(query({ exe: '/usr/bin/curl', destPort: 1 })), { allow: true, key: '/usr/bin/curl:*' });
  });

  it('replaces the decision of an existing rule without adding one', () => {
    const rules = build({ '/usr/bin/curl:443': true });
    rules.set('/usr/bin/curl', 443, false);
    assert.equal(rules.size, 1);
    assert.equal(rules.get('/usr/bin/curl', 443), false);
  });

  it('indexes @name and @dest subjects for matching', () => {
    const rules = new RuleSet();
    rules.set('@name:IPC:CSteamEngin', 27015, true);
    rules.set('@dest:2001:db8::1:443', '*', false);
    assert.deepEqual(rules.match(query({ comm: 'IPC:CSteamEngin', destPort: 27015 })), {
      allow: true,
      key: '@name:IPC:CSteamEngin:27015',
    });
    assert.deepEqual(rules.match(query({ destIp: '2001:db8::1', destPort: 443 })), {
      allow: false,
      key: '@dest:2001:db8::1:443:*',
    });
  });

  const refused: [subject: string, port: number | '*', error: string][] = [
    ['usr/bin/curl', 443, 'rule subject "usr/bin/curl" is not an absolute path, @name:<comm>, @dest:<ip>:<port or *> or @host:<name or *.suffix>'],
    ['/usr/bin/curl', 65536, 'rule port 65536 is not 1-65535 or "*"'],
    ['/usr/bin/curl', 1.5, 'rule port 1.5 is not 1-65535 or "*"'],
    ['/usr/bin/curl', -1, 'rule port -1 is not 1-65535 or "*"'],
  ];
  for (const [subject, port, error] of refused) {
    it(`refuses subject ${JSON.stringify(subject)} with port ${port}`, () => {
      const rules = new RuleSet();
      assert.deepEqual(rules.set(subject, port, true), { ok: false, error });
      assert.equal(rules.size, 0);
    });
  }
});

describe('RuleSet.deleteKey', () => {
  const start = {
    '/usr/bin/curl:*': true,
    '/usr/bin/curl:25': false,
    '/usr/bin/curl:443': true,
    '@name:IPC:CSteamEngin:27015': true,
    '@name:IPC:CSteamEngin:*': false,
    '@dest:192.0.2.7:8443:*': true,
  };
  const cases: [key: string, deleted: boolean, remaining: string[]][] = [
    ['/usr/bin/curl:443', true, ['/usr/bin/curl:*', '/usr/bin/curl:25', '@dest:192.0.2.7:8443:*', '@name:IPC:CSteamEngin:*', '@name:IPC:CSteamEngin:27015']],
    ['/usr/bin/curl:*', true, ['/usr/bin/curl:25', '/usr/bin/curl:443', '@dest:192.0.2.7:8443:*', '@name:IPC:CSteamEngin:*', '@name:IPC:CSteamEngin:27015']],
    ['/usr/bin/curl:0', true, ['/usr/bin/curl:25', '/usr/bin/curl:443', '@dest:192.0.2.7:8443:*', '@name:IPC:CSteamEngin:*', '@name:IPC:CSteamEngin:27015']],
    ['/usr/bin/curl', true, ['@dest:192.0.2.7:8443:*', '@name:IPC:CSteamEngin:*', '@name:IPC:CSteamEngin:27015']],
    ['@name:IPC:CSteamEngin', true, ['/usr/bin/curl:*', '/usr/bin/curl:25', '/usr/bin/curl:443', '@dest:192.0.2.7:8443:*']],
    ['@dest:192.0.2.7:8443', true, ['/usr/bin/curl:*', '/usr/bin/curl:25', '/usr/bin/curl:443', '@name:IPC:CSteamEngin:*', '@name:IPC:CSteamEngin:27015']],
    [
      '/usr/bin/curl:80',
      false,
      ['/usr/bin/curl:*', '/usr/bin/curl:25', '/usr/bin/curl:443', '@dest:192.0.2.7:8443:*', '@name:IPC:CSteamEngin:*', '@name:IPC:CSteamEngin:27015'],
    ],
    [
      'applications',
      false,
      ['/usr/bin/curl:*', '/usr/bin/curl:25', '/usr/bin/curl:443', '@dest:192.0.2.7:8443:*', '@name:IPC:CSteamEngin:*', '@name:IPC:CSteamEngin:27015'],
    ],
    [
      'services',
      false,
      ['/usr/bin/curl:*', '/usr/bin/curl:25', '/usr/bin/curl:443', '@dest:192.0.2.7:8443:*', '@name:IPC:CSteamEngin:*', '@name:IPC:CSteamEngin:27015'],
    ],
  ];
  for (const [key, deleted, remaining] of cases) {
    it(`${deleted ? 'deletes' : 'deletes nothing for'} ${JSON.stringify(key)}`, () => {
      const rules = build(start);
      assert.equal(rules.deleteKey(key), deleted);
      assert.deepEqual(
        rules.entries().map((e) => e.key),
        remaining,
      );
      assert.equal(rules.size, remaining.length);
    });
  }

  it('keeps the meta keys after a meta key delete', () => {
    const rules = build(start);
    rules.deleteKey('applications');
    const json = rules.toJSON();
    assert.deepEqual(json['applications'], {});
    assert.deepEqual(json['services'], {});
  });

  it('stops matching a deleted @name or @dest subject', () => {
    const rules = build(start);
    rules.deleteKey('@name:IPC:CSteamEngin');
    rules.deleteKey('@dest:192.0.2.7:8443');
    assert.equal(rules.match(query({ comm: 'IPC:CSteamEngin', destIp: '192.0.2.7', destPort: 8443 })), null);
  });
});

describe('RuleSet.toJSON and clone', () => {
  it('sorts keys, writes port 0 as "*" and always writes the meta keys', () => {
    const rules = new RuleSet();
    rules.set('@name:python3', 0, false);
    rules.set('/usr/bin/curl', 443, true);
    rules.set('/usr/bin/curl', '*', true);
    assert.deepEqual(Object.keys(rules.toJSON()), ['/usr/bin/curl:*', '/usr/bin/curl:443', '@name:python3:*', 'applications', 'services']);
  });

  it('an empty set is just the meta keys', () => {
    assert.equal(JSON.stringify(new RuleSet().toJSON()), '{"applications":{},"services":{}}');
  });

  it('a clone is independent of the original', () => {
    const rules = build({ '/usr/bin/curl:*': true });
    const copy = rules.clone();
    copy.set('/usr/bin/wget', 80, true);
    copy.deleteKey('/usr/bin/curl:*');
    assert.deepEqual(rules.toJSON(), { '/usr/bin/curl:*': true, applications: {}, services: {} });
    assert.deepEqual(copy.toJSON(), { '/usr/bin/wget:80': true, applications: {}, services: {} });
  });
});

describe('RuleSet @dest for every port (ICMP)', () => {
  it('an ICMP answer without a process saves "@dest:<ip>:0" as "@dest:<ip>:*" and matches the next ping', () => {
    const rules = new RuleSet();
    assert.deepEqual(rules.set('@dest:10.201.1.2:0', '*', true), { ok: true, key: '@dest:10.201.1.2:*:*' });
    assert.deepEqual(rules.match(query({ destIp: '10.201.1.2', destPort: 0 })), { allow: true, key: '@dest:10.201.1.2:*:*' });
    assert.equal(rules.match(query({ destIp: '10.201.1.3', destPort: 0 })), null);
  });

  it('a @dest rule for one port beats the one for every port of that address', () => {
    const rules = build({ '@dest:192.0.2.7:*:*': false, '@dest:192.0.2.7:443:*': true });
    assert.deepEqual(rules.match(query({ destIp: '192.0.2.7', destPort: 443 })), { allow: true, key: '@dest:192.0.2.7:443:*' });
    assert.deepEqual(rules.match(query({ destIp: '192.0.2.7', destPort: 80 })), { allow: false, key: '@dest:192.0.2.7:*:*' });
  });

  it('deletes it by the key the control panel shows', () => {
    const rules = build({ '@dest:10.201.1.2:*:*': true });
    assert.equal(rules.deleteKey('@dest:10.201.1.2:*:*'), true);
    assert.equal(rules.size, 0);
    assert.equal(rules.match(query({ destIp: '10.201.1.2', destPort: 0 })), null);
  });
});

describe('RuleSet @host', () => {
  const rules = build({
    '@host:example.org:443': true,
    '@host:*.example.org:*': false,
    '@host:*.cdn.example.org:443': true,
    '@host:other.test:*': true,
    '/usr/bin/curl:443': false,
    '@dest:192.0.2.9:*:*': false,
  });
  const cases: [name: string, q: RuleQuery, expected: { allow: boolean; key: string } | null][] = [
    ['the exact name matches', query({ host: 'example.org', destPort: 443 }), { allow: true, key: '@host:example.org:443' }],
    ['the exact name on another port does not', query({ host: 'example.org', destPort: 80 }), null],
    ['a *.suffix matches a name below it', query({ host: 'www.example.org', destPort: 80 }), { allow: false, key: '@host:*.example.org:*' }],
    ['the longest *.suffix wins', query({ host: 'img.cdn.example.org', destPort: 443 }), { allow: true, key: '@host:*.cdn.example.org:443' }],
    [
      'a longer suffix for another port leaves the shorter',
      query({ host: 'img.cdn.example.org', destPort: 80 }),
      { allow: false, key: '@host:*.example.org:*' },
    ],
    ['a different name does not match', query({ host: 'example.net', destPort: 443 }), null],
    ['a name that only ends like the suffix does not match', query({ host: 'badexample.org', destPort: 443 }), null],
    ['no snooped name: no host rule applies', query({ destPort: 443 }), null],
    ['a path rule beats a host rule', query({ exe: '/usr/bin/curl', host: 'example.org', destPort: 443 }), { allow: false, key: '/usr/bin/curl:443' }],
    ['a @dest rule beats a host rule', query({ destIp: '192.0.2.9', host: 'other.test', destPort: 443 }), { allow: false, key: '@dest:192.0.2.9:*:*' }],
  ];
  for (const [name, q, expected] of cases) {
    it(name, () => assert.deepEqual(rules.match(q), expected));
  }

  it('stores a host pattern in lower case without a final dot, and deletes it by that key', () => {
    const set = new RuleSet();
    assert.deepEqual(set.set('@host:WWW.Example.org.', 443, true), { ok: true, key: '@host:www.example.org:443' });
    assert.deepEqual(set.toJSON(), { '@host:www.example.org:443': true, applications: {}, services: {} });
    assert.equal(set.deleteKey('@host:www.example.org:443'), true);
    assert.equal(set.size, 0);
  });

  it('each host key the control panel lists splits at its last ":" into subject and port, and deletes by that key', () => {
    // The control panel's rules table (main_window.py, refresh_rules_table): key.rsplit(':', 1),
    // then delete_rule with the key as listed.
    const copy = rules.clone();
    const hostKeys = Object.keys(copy.toJSON()).filter((k) => k.startsWith('@host:'));
    assert.equal(hostKeys.length, 4);
    for (const key of hostKeys) {
      assert.match(key.slice(key.lastIndexOf(':') + 1), /^(\*|[0-9]+)$/);
      assert.equal(copy.deleteKey(key), true, key);
    }
    assert.equal(copy.size, 2);
  });
});
