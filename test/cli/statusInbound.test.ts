// `bastion status` and `bastion inbound status`: the inbound and metrics lines, from the status message.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { metricsLine } from '../../cli/clientCommands.js';
import { inboundLine } from '../../cli/inboundCommand.js';

describe('bastion status: the inbound line', () => {
  const cases: [string, unknown, RegExp][] = [
    ['off', { wanted: false, helper_applies: true, state: 'off' }, /^not filtered by Bastion \(inbound_protection is false/],
    [
      'our chains',
      { wanted: true, helper_applies: true, state: 'bastion', detail: 'chain BASTION-IN' },
      /^protected by Bastion's own chains: .*\(chain BASTION-IN\)$/,
    ],
    [
      'ufw left alone',
      { wanted: true, helper_applies: true, state: 'other', firewall: 'ufw', detail: 'iptables INPUT policy DROP' },
      /^protected by ufw, left alone/,
    ],
    ['an error', { wanted: true, helper_applies: true, state: 'error', detail: 'ip6tables-restore: failed' }, /^NOT PROTECTED: .*ip6tables-restore: failed/],
    ['a helper that does not apply it', { wanted: true, helper_applies: false, state: null }, /^wanted, but the helper does not apply it/],
    ['an older service', undefined, /^unknown \(an older service\)$/],
  ];
  for (const [name, inbound, expected] of cases) it(name, () => assert.match(inboundLine(inbound), expected));

  it('escapes what the helper reported', () => {
    assert.equal(inboundLine({ wanted: true, helper_applies: true, state: 'other', firewall: 'x\u001b[2Jy', detail: '' }).includes('\u001b'), false);
  });
});

describe('bastion status: the metrics line', () => {
  it('names the file, says why it is not written, or how to turn it on', () => {
    assert.equal(
      metricsLine({ file: '/var/lib/prometheus/node-exporter/bastion.prom', writes: 3, error: null }),
      '/var/lib/prometheus/node-exporter/bastion.prom',
    );
    assert.match(metricsLine({ file: '/x/bastion.prom', writes: 0, error: 'EACCES' }), /NOT WRITTEN: EACCES$/);
    assert.match(metricsLine(null), /^none \(bastion daemon --metrics-dir DIR/);
  });
});
