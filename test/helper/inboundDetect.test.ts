// Which inbound firewalls count as in force: read from `iptables -S` and `nft -j list ruleset`.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { iptablesDrops, nftDrops } from '../../helper/inbound/inboundDetect.js';
import { inboundRuleSpecs } from '../../helper/inbound/inboundRules.js';

const ACCEPTING = ['-P INPUT ACCEPT', '-P FORWARD ACCEPT', '-P OUTPUT ACCEPT'];

describe('iptablesDrops', () => {
  const cases: [string, string[], { kind: string } | null][] = [
    ['nothing but ACCEPT policies', ACCEPTING, null],
    ['UFW enabled (INPUT policy DROP, ufw- chains)', ['-P INPUT DROP', '-N ufw-before-input', '-A INPUT -j ufw-before-input'], { kind: 'ufw' }],
    ['UFW disabled (its chains left empty)', [...ACCEPTING, '-N ufw-before-input', '-A INPUT -j ufw-before-input'], null],
    ['a DROP two chains away from INPUT', [...ACCEPTING, '-N a', '-N b', '-A INPUT -j a', '-A a -j b', '-A b -p tcp --dport 22 -j DROP'], { kind: 'iptables' }],
    ['a REJECT in INPUT', [...ACCEPTING, '-A INPUT -p tcp -j REJECT --reject-with tcp-reset'], { kind: 'iptables' }],
    ['a DROP in a chain INPUT never reaches', [...ACCEPTING, '-N lonely', '-A lonely -j DROP'], null],
    [
      "Bastion's own chain is not another firewall",
      [...ACCEPTING, '-N BASTION-IN', '-A INPUT -m comment --comment BASTION_INBOUND -j BASTION-IN', '-A BASTION-IN -j DROP'],
      null,
    ],
    ['firewalld (iptables backend)', ['-P INPUT ACCEPT', '-N INPUT_direct', '-A INPUT -j INPUT_direct', '-A INPUT -j REJECT'], { kind: 'firewalld' }],
    ['a jump loop ends', [...ACCEPTING, '-N a', '-N b', '-A INPUT -j a', '-A a -j b', '-A b -j a'], null],
  ];
  for (const [name, lines, expected] of cases) {
    it(name, () => {
      const found = iptablesDrops(lines.join('\n'), 'BASTION-IN');
      assert.equal(found?.kind ?? null, expected?.kind ?? null, JSON.stringify(found));
    });
  }
});

describe('nftDrops', () => {
  const ruleset = (...items: object[]): string => JSON.stringify({ nftables: [{ metainfo: {} }, ...items] });
  const chain = (over: object): object => ({ chain: { family: 'inet', table: 'filter', name: 'input', hook: 'input', policy: 'accept', ...over } });
  it('an input chain with policy drop', () => {
    assert.equal(nftDrops(ruleset({ table: { name: 'filter' } }, chain({ policy: 'drop' })))?.kind, 'nftables');
  });
  it('an input chain with a drop rule of its own', () => {
    const rule = { rule: { family: 'inet', table: 'filter', chain: 'input', expr: [{ match: {} }, { drop: null }] } };
    assert.equal(nftDrops(ruleset(chain({}), rule))?.kind, 'nftables');
  });
  it('an accepting input chain, and an output chain that drops, are no inbound firewall', () => {
    assert.equal(nftDrops(ruleset(chain({}), chain({ name: 'output', hook: 'output', policy: 'drop' }))), null);
  });
  it('names firewalld by its table', () => {
    assert.equal(
      nftDrops(
        ruleset({ table: { name: 'firewalld' } }, chain({ table: 'firewalld', name: 'filter_INPUT' }), {
          rule: { family: 'inet', table: 'firewalld', chain: 'filter_INPUT', expr: [{ reject: null }] },
        }),
      )?.kind,
      'firewalld',
    );
  });
  it('ignores what is not JSON', () => {
    assert.equal(nftDrops('not json'), null);
  });
});

describe('inboundRuleSpecs', () => {
  it('IPv6 lets neighbour discovery and router advertisements in only from the link (hop limit 255)', () => {
    const v6 = inboundRuleSpecs(6);
    for (const type of ['router-advertisement', 'neighbour-solicitation', 'neighbour-advertisement']) {
      assert.ok(v6.includes(`-p ipv6-icmp --icmpv6-type ${type} -m hl --hl-eq 255 -j ACCEPT`), type);
    }
    assert.equal(v6.at(-1), '-j DROP');
    assert.equal(inboundRuleSpecs(4).at(-1), '-j DROP');
  });
});
