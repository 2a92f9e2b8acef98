// Issue 11, item 2: a socket held by processes of different programs is never credited to the
// allowed one. As an unprivileged user, a program no rule allows (python3) makes a TCP
// socket, gives a copy to an idle /usr/bin/curl (allowed to port 80), and connects it itself:
// across fork+exec, and over SCM_RIGHTS to an unrelated process that then execs curl. With
// enforcement and no rule for python3, none of these connections may get out.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { TestFirewall } from '../support/firewall.js';

const CURL = '/usr/bin/curl';
const PYTHON = realpathSync('/usr/bin/python3');
const ATTACK = new URL('../fixtures/shared-socket-attack.py', import.meta.url).pathname;
const ATTEMPTS = 20;
const USER = `bastion-att${process.pid % 100000}`;

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('a shared socket is not credited to the allowed program', () => {
  let fw: TestFirewall;
  let uid = -1;
  before(async () => {
    sh('useradd', ['--system', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', '--user-group', USER]);
    uid = Number(sh('id', ['-u', USER]).trim());
    fw = await new TestFirewall({ rules: { [`${CURL}:80`]: true }, config: { mode: 'enforcement' } }).start();
  });
  after(async () => {
    await fw?.close();
    try {
      sh('userdel', [USER]);
    } catch {
      // never created
    }
  });

  /** The attack as the test user in the client namespace: one "ok"/"fail" per attempt. */
  async function attack(mode: 'fork' | 'scm'): Promise<string[]> {
    const args = ['--reuid', String(uid), '--regid', String(uid), '--clear-groups', PYTHON, ATTACK, mode, fw.net.serverV4, '80', String(ATTEMPTS)];
    const result = await fw.net.runAsync(fw.net.client, 'setpriv', args, 120_000);
    assert.equal(result.code, 0, result.stderr);
    return result.stdout.trim().split(' ');
  }

  it('curl itself is let out (the rule works)', () => {
    assert.equal(fw.http(fw.net.serverV4), true);
  });

  it('a socket curl inherited across fork+exec, connected by its parent: 0 of 20 out', async () => {
    const outcomes = await attack('fork');
    assert.equal(outcomes.length, ATTEMPTS);
    assert.equal(outcomes.filter((o) => o === 'ok').length, 0, `connections out: ${outcomes.join(' ')}`);
  });

  it('a socket passed over SCM_RIGHTS to a process that execs curl, connected by the sender: 0 of 20 out', async () => {
    const outcomes = await attack('scm');
    assert.equal(outcomes.length, ATTEMPTS);
    assert.equal(outcomes.filter((o) => o === 'ok').length, 0, `connections out: ${outcomes.join(' ')}`);
  });
});
