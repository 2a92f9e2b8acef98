// Issue 18, item 1: the caller record cannot be pushed out or dodged. As an unprivileged user,
// a program no rule allows (python3) connects a UDP socket (the kernel records it as the
// caller) and hands a copy to an idle /usr/bin/curl (allowed to port 80); then it tries to
// have its own datagram credited to curl (test/fixtures/caller-record-attack.py): by making
// 70,000 sockets to push its record out of the map before it sends and closes its copy, by
// parking its copy in an unread SCM_RIGHTS message while the datagram waits for its verdict,
// and with sockets connected before the helper restarted. Enforcement, `/usr/bin/curl:80`
// allowed, default deny: what counts is the datagrams the server namespace receives.
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { TestFirewall } from '../support/firewall.js';
import { LocalUser } from '../support/localUser.js';

const CURL = '/usr/bin/curl';
const ATTACK = new URL('../fixtures/caller-record-attack.py', import.meta.url).pathname;

function settle(ms = 300): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

describe('the caller record cannot be pushed out or dodged (issue 18)', { skip: !existsSync(CURL) && `${CURL} is not installed` }, () => {
  let fw: TestFirewall;
  let attacker: LocalUser;
  before(async () => {
    attacker = LocalUser.create();
    fw = await new TestFirewall({ rules: { [`${CURL}:80`]: true }, config: { mode: 'enforcement', default_action: 'deny' }, udpPorts: [80] }).start();
  });
  after(async () => {
    await attacker?.remove().catch(() => undefined);
    await fw?.close();
  });

  /** Runs the fixture as the attacker in the client namespace; the datagrams that got out of those it sent. */
  async function attack(mode: string, count: number, meanwhile?: () => Promise<void>): Promise<{ out: number; sent: number }> {
    await settle();
    const before = fw.datagramsReceived(80);
    const run = attacker.run(fw.net.client, `python3 ${ATTACK} ${mode} ${fw.net.serverV4} 80 ${count}`, 180_000);
    await meanwhile?.();
    const result = await run;
    assert.equal(result.code, 0, result.stderr);
    await settle();
    return { out: fw.datagramsReceived(80) - before, sent: Number(result.stdout.trim()) };
  }

  it('curl itself is let out over UDP (the rule works)', async () => {
    const run = await attacker.run(
      fw.net.client,
      `python3 -c "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect(('${fw.net.serverV4}', 80)); s.send(b'x')"`,
    );
    assert.equal(run.code, 0, run.stderr);
    await settle();
    assert.equal(fw.datagramsReceived(80), 0, 'python3 is not allowed');
    // curl has no UDP of its own: its TCP connection shows the rule works for it.
    assert.equal(fw.http(fw.net.serverV4), true);
  });

  for (const mode of ['evict-fork', 'evict-scm'] as const) {
    it(`70,000 sockets made after the caller's own (${mode === 'evict-fork' ? 'curl inherited it across fork+exec' : 'curl got it over SCM_RIGHTS'}), then one datagram and its copy closed: 0 of 5 out`, async (t: TestContext) => {
      const { out, sent } = await attack(mode, 5);
      t.diagnostic(`${mode}: ${out} of ${sent} datagrams out`);
      assert.equal(sent, 5);
      assert.equal(out, 0);
    });
  }

  it("the caller's copy parked in an unread SCM_RIGHTS message while each datagram waits, and taken back: 0 of 20 out", async (t: TestContext) => {
    const { out, sent } = await attack('park', 20);
    t.diagnostic(`park: ${out} of ${sent} datagrams out`);
    assert.equal(sent, 20);
    assert.equal(out, 0);
  });

  it('UDP sockets connected before the helper restarted, each sent on and closed: 0 of 15 out', async (t: TestContext) => {
    const ready = join(attacker.home, 'ready');
    const { out, sent } = await attack('older', 15, async () => {
      for (let i = 0; i < 200 && !existsSync(ready); i++) await settle(50);
      assert.ok(existsSync(ready), 'the attacker did not get ready');
      const paired = fw.daemon!.count('helper connected');
      await fw.helper!.stop();
      await fw.startHelper();
      for (let i = 0; i < 200 && fw.daemon!.count('helper connected') <= paired; i++) await settle(50);
      writeFileSync(join(attacker.home, 'go'), 'go\n');
    });
    t.diagnostic(`older: ${out} of ${sent} datagrams out`);
    assert.equal(sent, 15);
    assert.equal(out, 0);
  });
});
