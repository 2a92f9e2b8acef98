// The helper's inbound decisions over time, with fake chains and a fake detector (the real
// ones are test/e2e/inbound.test.ts): who takes over when, and what is reported.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger } from '../../common/log.js';
import type { InboundState } from '../../common/wire.js';
import type { OtherFirewall } from '../../helper/inbound/inboundDetect.js';
import { InboundProtection, type InboundChains } from '../../helper/inbound/inboundProtection.js';

class FakeChains implements InboundChains {
  readonly chain = 'BASTION-IN';
  present = false;
  installs = 0;
  failWith: string | null = null;
  async install(): Promise<void> {
    if (this.failWith !== null) throw new Error(this.failWith);
    this.installs++;
    this.present = true;
  }
  async remove(): Promise<void> {
    this.present = false;
  }
  async allInstalled(): Promise<boolean> {
    return this.present;
  }
  async anyInstalled(): Promise<boolean> {
    return this.present;
  }
}

function setUp(): { chains: FakeChains; reports: InboundState[]; other: { now: OtherFirewall | null }; inbound: InboundProtection } {
  const chains = new FakeChains();
  const reports: InboundState[] = [];
  const other: { now: OtherFirewall | null } = { now: null };
  const inbound = new InboundProtection({
    rules: chains,
    detect: async () => other.now,
    report: (s) => reports.push(s),
    log: createLogger({ name: 'test', level: 'silent' }),
    recheckMs: 3_600_000,
  });
  return { chains, reports, other, inbound };
}

describe('InboundProtection', () => {
  it('installs its chains when wanted and nothing else drops, and removes them when not wanted', async () => {
    const { chains, reports, inbound } = setUp();
    await inbound.apply(true);
    assert.equal(chains.present, true);
    assert.equal(reports.at(-1)?.state, 'bastion');
    await inbound.apply(false);
    assert.equal(chains.present, false);
    assert.equal(reports.at(-1)?.state, 'off');
  });

  it('leaves another firewall alone, and gives way to one that appears later', async () => {
    const { chains, reports, other, inbound } = setUp();
    other.now = { kind: 'ufw', detail: 'iptables INPUT policy DROP' };
    await inbound.apply(true);
    assert.equal(chains.present, false);
    assert.deepEqual(reports.at(-1), { state: 'other', firewall: 'ufw', detail: 'iptables INPUT policy DROP' });
    other.now = null;
    await inbound.apply(true);
    assert.equal(chains.present, true);
    other.now = { kind: 'nftables', detail: 'policy drop' };
    await inbound.apply(true);
    assert.equal(chains.present, false, 'ours stayed beside a firewall enabled later');
    assert.equal(reports.at(-1)?.firewall, 'nftables');
    await inbound.stop();
  });

  it('puts a chain someone flushed back, and installs only once while it stays', async () => {
    const { chains, inbound } = setUp();
    await inbound.apply(true);
    await inbound.apply(true);
    assert.equal(chains.installs, 1);
    chains.present = false;
    await inbound.apply(true);
    assert.equal(chains.installs, 2);
    await inbound.stop();
    assert.equal(chains.present, false, 'the chain outlived the stop');
  });

  it('reports an error with the reason when its chains cannot be installed', async () => {
    const { chains, reports, inbound } = setUp();
    chains.failWith = 'ip6tables-restore: line 3 failed';
    await inbound.apply(true);
    assert.deepEqual(reports.at(-1), { state: 'error', firewall: '', detail: 'ip6tables-restore: line 3 failed' });
    await inbound.stop();
  });

  it('removes a chain a crashed helper left when protection is not wanted', async () => {
    const { chains, inbound } = setUp();
    chains.present = true;
    await inbound.apply(false);
    assert.equal(chains.present, false);
  });
});
