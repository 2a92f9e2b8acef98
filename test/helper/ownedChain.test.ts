// helper/ownedChain.ts against real iptables and ip6tables, in a network namespace of the
// test's own (the binaries are reached through wrappers that enter it): what a crashed run left
// is replaced by exactly one set, and remove() takes ours and nothing else.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { OwnedChain } from '../../helper/ownedChain.js';
import { tempDir } from '../support/bastion.js';
import { TestNetwork } from '../support/netns.js';

const CHAIN = 'OWNED-TEST';
let net: TestNetwork;
let dir: ReturnType<typeof tempDir>;

/** iptables (or ip6tables) and its -restore, each a script that runs it in the namespace. */
function wrap(bin: string): string {
  for (const name of [bin, `${bin}-restore`]) {
    writeFileSync(join(dir.path, name), `#!/bin/sh\nexec ip netns exec ${net.client} ${name} "$@"\n`, { mode: 0o755 });
  }
  return join(dir.path, bin);
}

const rules = (bin: string, chain: string): string[] =>
  execFileSync('ip', ['netns', 'exec', net.client, bin, '-S', chain], { encoding: 'utf8' }).trim().split('\n');
const ipt = (bin: string, ...args: string[]): void => {
  execFileSync('ip', ['netns', 'exec', net.client, bin, ...args], { stdio: 'pipe' });
};

before(() => {
  net = TestNetwork.create();
  dir = tempDir('bastion-owned-chain-');
});
after(() => {
  net?.destroy();
  dir?.remove();
});

for (const bin of ['iptables', 'ip6tables']) {
  describe(`an owned chain (${bin})`, () => {
    it('replaces what a crashed run or a person left with one chain and one jump, and leaves the rest', async () => {
      const chain = new OwnedChain({ bin: wrap(bin), table: 'filter', chain: CHAIN, hook: 'OUTPUT' });
      // Jumps to our chain around another tool's rule (one only for TCP), and a stale rule in our chain.
      ipt(bin, '-N', CHAIN);
      ipt(bin, '-A', CHAIN, '-p', 'tcp', '--dport', '1', '-j', 'DROP');
      ipt(bin, '-A', 'OUTPUT', '-j', CHAIN);
      ipt(bin, '-A', 'OUTPUT', '-p', 'udp', '--dport', '9', '-j', 'ACCEPT');
      ipt(bin, '-A', 'OUTPUT', '-p', 'tcp', '-j', CHAIN);
      ipt(bin, '-A', 'OUTPUT', '-j', CHAIN);
      assert.equal(await chain.countJumps(), 3);
      await chain.install(['-p tcp --dport 2 -j ACCEPT', '-m comment --comment "two words" -j RETURN'], `-j ${CHAIN}`, 'start');
      assert.deepEqual(rules(bin, 'OUTPUT').slice(1), [`-A OUTPUT -j ${CHAIN}`, '-A OUTPUT -p udp -m udp --dport 9 -j ACCEPT']);
      assert.deepEqual(rules(bin, CHAIN), [
        `-N ${CHAIN}`,
        `-A ${CHAIN} -p tcp -m tcp --dport 2 -j ACCEPT`,
        `-A ${CHAIN} -m comment --comment "two words" -j RETURN`,
      ]);
      // Installing again changes nothing but the chain's rules.
      await chain.install(['-j RETURN'], `-j ${CHAIN}`, 'start');
      assert.equal(await chain.countJumps(), 1);
      assert.deepEqual(rules(bin, CHAIN), [`-N ${CHAIN}`, `-A ${CHAIN} -j RETURN`]);
    });

    it('removes every jump of ours and the chain, and nothing else', async () => {
      const chain = new OwnedChain({ bin: wrap(bin), table: 'filter', chain: CHAIN, hook: 'OUTPUT' });
      ipt(bin, '-A', 'OUTPUT', '-j', CHAIN);
      assert.equal(await chain.countJumps(), 2);
      await chain.remove();
      assert.equal(await chain.exists(), false);
      assert.deepEqual(rules(bin, 'OUTPUT').slice(1), ['-A OUTPUT -p udp -m udp --dport 9 -j ACCEPT']);
      await chain.remove(); // nothing of ours left: nothing to do, no error
    });

    it('a first install adds its jump at the start or the end of the hook', async () => {
      const chain = new OwnedChain({ bin: wrap(bin), table: 'filter', chain: CHAIN, hook: 'OUTPUT' });
      await chain.install([], `-j ${CHAIN}`, 'start');
      assert.equal(rules(bin, 'OUTPUT')[1], `-A OUTPUT -j ${CHAIN}`);
      await chain.remove();
      await chain.install([], `-m comment --comment ours -j ${CHAIN}`, 'end');
      assert.equal(rules(bin, 'OUTPUT').at(-1), `-A OUTPUT -m comment --comment ours -j ${CHAIN}`);
      await chain.remove();
      assert.deepEqual(rules(bin, 'OUTPUT').slice(1), ['-A OUTPUT -p udp -m udp --dport 9 -j ACCEPT']);
    });
  });
}

describe('an owned chain name', () => {
  it('must be one word xtables takes', () => {
    for (const bad of ['', 'has space', 'x'.repeat(29), 'semi;colon']) {
      assert.throws(() => new OwnedChain({ bin: 'iptables', table: 'filter', chain: bad, hook: 'OUTPUT' }), /invalid chain name/);
    }
  });
});
