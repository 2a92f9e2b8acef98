// Which verdicts the helper may reuse (Verdict.cacheMs), and how the service treats the
// connections the helper answered from its cache.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Decider } from '../../service/decider.js';
import { Policy } from '../../service/policy.js';
import { RuleSet } from '../../service/rules/ruleSet.js';
import { SessionDecisions } from '../../service/sessions.js';
import { Stats } from '../../service/stats.js';
import { Whitelist } from '../../service/whitelist.js';
import type { BastionConfig } from '../../service/config.js';
import { config, connection, silentLog, type ConnSpec } from '../support/promptFakes.js';

function setup(rules: Record<string, boolean>, cfg: BastionConfig = config()) {
  const built = RuleSet.fromJSON(rules);
  assert.ok(built.ok);
  let current = built.rules;
  const sessions = new SessionDecisions();
  const stats = new Stats();
  let resets = 0;
  const decider = new Decider({
    policy: new Policy({ config: () => cfg, rules: () => current, sessions, whitelist: new Whitelist() }),
    stats,
    log: silentLog,
    sendVerdicts: () => undefined,
    holdMs: () => 65_000,
    logDecisions: () => false,
    helperCacheMs: () => 5000,
    staleHelperCache: () => resets++,
  });
  const decide = (spec: ConnSpec) => decider.decideBatch([connection(spec).record], 1)[0]!;
  return {
    decider,
    stats,
    sessions,
    decide,
    resets: () => resets,
    replaceRules: (r: Record<string, boolean>) => {
      const next = RuleSet.fromJSON(r);
      assert.ok(next.ok);
      current = next.rules;
    },
  };
}

describe('verdicts the helper may reuse', () => {
  const cases: [string, Record<string, boolean>, ConnSpec, BastionConfig | undefined, boolean][] = [
    ['an allow by a rule for the path and port', { '/usr/bin/curl:443': true }, { exe: '/usr/bin/curl', port: 443 }, undefined, true],
    ['an allow by a rule for the path and all ports', { '/usr/bin/curl:*': true }, { exe: '/usr/bin/curl', port: 8443 }, undefined, true],
    ['an allow by a path rule over UDP', { '/usr/bin/dig:53': true }, { exe: '/usr/bin/dig', port: 53, protocol: 17 }, undefined, true],
    [
      'not a deny (loopback or LAN could be allowed for another destination)',
      { '/usr/bin/curl:443': false },
      { exe: '/usr/bin/curl', port: 443 },
      undefined,
      false,
    ],
    ['not an allow by an @name rule', { '@name:curl:443': true }, { exe: '/usr/bin/curl', port: 443 }, undefined, false],
    ['not an allow by an @dest rule', { '@dest:198.51.100.7:443:*': true }, { exe: '/usr/bin/curl', port: 443 }, undefined, false],
    ['not a learning-mode allow', {}, { exe: '/usr/bin/curl', port: 443 }, config({ mode: 'learning' }), false],
    ['not a loopback allow', { '/usr/bin/curl:443': false }, { exe: '/usr/bin/curl', port: 443, dst: [127, 0, 0, 1] }, undefined, false],
    ['not an ICMP allow', { '/usr/bin/ping:*': true }, { exe: '/usr/bin/ping', port: 0, protocol: 1 }, undefined, false],
    ['not without an executable', { '@name:curl:443': true }, { exe: null, comm: 'curl', port: 443 }, undefined, false],
  ];
  for (const [name, rules, spec, cfg, cacheable] of cases) {
    it(`${cacheable ? 'marks' : 'does not mark'} ${name}`, () => {
      const { decide } = setup(rules, cfg);
      const v = decide(spec);
      assert.equal(v.cacheMs, cacheable ? 5000 : undefined, JSON.stringify(v));
    });
  }

  it('does not mark a session decision, which may expire', () => {
    const { decide, sessions } = setup({ '/usr/bin/curl:443': true });
    sessions.set(1000, '/usr/bin/curl', 443, true, 30_000);
    const v = decide({ exe: '/usr/bin/curl', port: 443 });
    assert.equal(v.action, 'accept');
    assert.equal(v.cacheMs, undefined);
  });
});

describe('connections the helper answered from its cache', () => {
  it('are counted and reported but get no verdict', () => {
    const { decider, stats } = setup({ '/usr/bin/curl:443': true });
    const record = { ...connection({ exe: '/usr/bin/curl', port: 443 }).record, helperVerdict: 'accept' as const };
    assert.deepEqual(decider.decideBatch([record], 1), []);
    assert.deepEqual(stats.snapshot(), { total: 1, allowed: 1, blocked: 0 });
  });

  it('a grouped report counts every connection it stands for', () => {
    const { decider, stats } = setup({ '/usr/bin/curl:443': true });
    const record = { ...connection({ exe: '/usr/bin/curl', port: 443 }).record, helperVerdict: 'accept' as const, repeats: 25 };
    assert.deepEqual(decider.decideBatch([record], 1), []);
    assert.deepEqual(stats.snapshot(), { total: 25, allowed: 25, blocked: 0 });
  });

  it('reset the helper cache when the policy no longer gives what the helper applied', () => {
    const h = setup({ '/usr/bin/curl:443': true });
    const record = () => ({ ...connection({ exe: '/usr/bin/curl', port: 443 }).record, helperVerdict: 'accept' as const });
    h.decider.decideBatch([record()], 1);
    assert.equal(h.resets(), 0);
    h.replaceRules({ '/usr/bin/curl:443': false });
    h.decider.decideBatch([record()], 1);
    assert.equal(h.resets(), 1);
    // Counted as what really happened to the packet: the helper accepted it.
    assert.deepEqual(h.stats.snapshot(), { total: 2, allowed: 2, blocked: 0 });
  });
});
