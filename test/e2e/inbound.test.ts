// Inbound protection end to end: the real helper and service in test namespaces, with Debian's
// real ufw (run only inside the client namespace; its files in /etc/ufw are restored after) and
// without it. A server listens in the client namespace, where the firewall runs; the server
// namespace plays the outside world.
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GuiConnection } from '../../cli/guiClient.js';
import { TestFirewall } from '../support/firewall.js';

const LISTEN_PORT = 8080;
const LISTENER = "require('http').createServer((q,s)=>s.end('in')).listen(+process.argv[1],'::')";

interface Inbound {
  wanted: boolean;
  helper_applies: boolean;
  state: string | null;
  firewall: string | null;
  detail: string | null;
}

async function inbound(fw: TestFirewall): Promise<Inbound> {
  return (await fw.status())['inbound'] as Inbound;
}

async function until(fw: TestFirewall, ok: (i: Inbound) => boolean, what: string): Promise<Inbound> {
  let last = await inbound(fw);
  for (let i = 0; i < 100 && !ok(last); i++) {
    await new Promise((r) => setTimeout(r, 100));
    last = await inbound(fw);
  }
  assert.ok(ok(last), `${what}; inbound: ${JSON.stringify(last)}`);
  return last;
}

async function setInbound(fw: TestFirewall, enabled: boolean): Promise<void> {
  const conn = await GuiConnection.connect(fw.guiSocket);
  try {
    await conn.request({ type: 'set_config', key: 'inbound_protection', value: enabled }, 'config_changed');
  } finally {
    conn.close();
  }
}

/** A connection from the server namespace (the outside) to the listener in the client namespace. */
function reachesIn(fw: TestFirewall, family: 4 | 6): boolean {
  const host = family === 4 ? fw.net.clientV4 : `[${fw.net.clientV6}]`;
  return fw.net.run(fw.net.server, 'curl', ['-s', '-o', '/dev/null', '-m', '2', `http://${host}:${LISTEN_PORT}/`], 8000).code === 0;
}

/** Ping from the outside; IPv6 after the neighbour cache is flushed, so neighbour discovery must get through. */
function pingsIn(fw: TestFirewall, family: 4 | 6): boolean {
  if (family === 6) fw.net.run(fw.net.server, 'ip', ['-6', 'neigh', 'flush', 'all']);
  const host = family === 4 ? fw.net.clientV4 : fw.net.clientV6;
  return fw.net.run(fw.net.server, 'ping', ['-c', '1', '-W', '2', host], 8000).code === 0;
}

function startFirewall(): { fw: TestFirewall; listener: ChildProcess } {
  const fw = new TestFirewall({ config: { mode: 'learning', inbound_protection: true }, helperArgs: ['--inbound-recheck', '1'] });
  const listener = fw.net.spawn(fw.net.client, process.execPath, ['-e', LISTENER, String(LISTEN_PORT)]);
  return { fw, listener };
}

/** The listener answers from outside before any firewall runs. */
async function listening(fw: TestFirewall): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if (reachesIn(fw, 4)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the listener in the client namespace did not start');
}

const stateFile = (fw: TestFirewall): string => join(fw.dir.path, 'inbound-active');
const ourJump = (fw: TestFirewall, family: 4 | 6): boolean => fw.iptablesRules(family).includes('-A INPUT -m comment --comment BASTION_INBOUND -j BASTION-IN');

describe('inbound protection without another firewall', () => {
  it("installs Bastion's chains: the outside gets ping and replies but no new connection; the GUI's state file says active; disabling and stopping remove them", async () => {
    const { fw, listener } = startFirewall();
    try {
      await listening(fw);
      await fw.start();
      await until(fw, (i) => i.state === 'bastion', "Bastion's chains not reported in place");
      for (const family of [4, 6] as const) {
        assert.ok(ourJump(fw, family), `no jump to BASTION-IN in IPv${family} INPUT`);
        const input = fw
          .iptablesRules(family)
          .split('\n')
          .filter((l) => l.startsWith('-A INPUT '));
        assert.equal(input.at(-1), '-A INPUT -m comment --comment BASTION_INBOUND -j BASTION-IN', 'our jump is not the last INPUT rule');
        assert.equal(reachesIn(fw, family), false, `a new IPv${family} connection from outside got in`);
        assert.equal(pingsIn(fw, family), true, `IPv${family} ping from outside (and neighbour discovery) was dropped`);
      }
      assert.equal(fw.http(fw.net.serverV4), true, "an outbound connection's replies were dropped");
      assert.equal(readFileSync(stateFile(fw), 'utf8'), 'active\n');
      assert.equal(statSync(stateFile(fw)).mode & 0o777, 0o644);

      await setInbound(fw, false);
      await until(fw, (i) => i.state === 'off' && !i.wanted, 'not off after inbound_protection false');
      assert.equal(ourJump(fw, 4) || ourJump(fw, 6), false, 'our chains stayed after disabling');
      assert.equal(existsSync(stateFile(fw)), false, 'the state file stayed');
      assert.equal(reachesIn(fw, 4), true, 'the outside still cannot connect after disabling');

      await setInbound(fw, true);
      await until(fw, (i) => i.state === 'bastion', 'not back after enabling');
      await fw.helper!.stop();
      for (const family of [4, 6] as const)
        assert.equal(fw.iptablesRules(family).includes('BASTION-IN'), false, `IPv${family} chain left after the helper stopped`);
    } finally {
      listener.kill();
      await fw.close();
    }
  });

  it('an nftables input chain that drops is left alone', async () => {
    const { fw, listener } = startFirewall();
    try {
      fw.net.run(fw.net.client, 'nft', ['add table inet bst_test']);
      fw.net.run(fw.net.client, 'nft', ['add chain inet bst_test input { type filter hook input priority 0 ; policy drop ; }']);
      await fw.start();
      const state = await until(fw, (i) => i.state === 'other', 'the nftables chain was not seen');
      assert.equal(state.firewall, 'nftables');
      assert.equal(ourJump(fw, 4), false);
      assert.equal(existsSync(stateFile(fw)), false);
    } finally {
      listener.kill();
      await fw.close();
    }
  });
});

describe('inbound protection with ufw', () => {
  // ufw keeps its settings in /etc/ufw and /etc/default/ufw, shared with the host: saved here, put back after.
  const saved = mkdtempSync(join(tmpdir(), 'bastion-ufw-'));
  before(() => {
    cpSync('/etc/ufw', join(saved, 'ufw'), { recursive: true, verbatimSymlinks: true });
    cpSync('/etc/default/ufw', join(saved, 'default-ufw'));
  });
  after(() => {
    rmSync('/etc/ufw', { recursive: true, force: true });
    cpSync(join(saved, 'ufw'), '/etc/ufw', { recursive: true, verbatimSymlinks: true });
    cpSync(join(saved, 'default-ufw'), '/etc/default/ufw');
    rmSync(saved, { recursive: true, force: true });
  });

  it('leaves an enabled ufw alone, and takes over with its own chains once ufw is disabled', async () => {
    const { fw, listener } = startFirewall();
    const ufw = (...args: string[]): void => {
      const r = fw.net.run(fw.net.client, 'ufw', args, 30_000);
      assert.equal(r.code, 0, `ufw ${args.join(' ')}: ${r.stderr}`);
    };
    try {
      await listening(fw);
      ufw('--force', 'enable');
      await fw.start();
      const state = await until(fw, (i) => i.state === 'other', 'ufw was not seen');
      assert.equal(state.firewall, 'ufw');
      assert.equal(ourJump(fw, 4) || ourJump(fw, 6), false, "Bastion's chains were installed beside ufw");
      assert.equal(existsSync(stateFile(fw)), false, 'the state file says Bastion protects');
      assert.equal(reachesIn(fw, 4), false, 'ufw let a new connection in');
      assert.equal(fw.http(fw.net.serverV4), true, 'outbound broken beside ufw');

      ufw('--force', 'disable');
      await until(fw, (i) => i.state === 'bastion', "Bastion's chains did not take over once ufw was disabled");
      assert.equal(readFileSync(stateFile(fw), 'utf8'), 'active\n');
      assert.equal(reachesIn(fw, 4), false);
    } finally {
      listener.kill();
      await fw.close();
    }
  });

  it('never touched the host namespace', () => {
    assert.equal(execFileSync('iptables', ['-S', 'INPUT'], { encoding: 'utf8' }).includes('ufw'), false);
  });
});
