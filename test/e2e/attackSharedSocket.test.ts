// Issue 11, item 2, and issue 18, item 2: a socket held by processes of different programs is
// never credited to the allowed one. As an unprivileged user, a program no rule allows
// (python3) makes a TCP or UDP socket, gives a copy to an idle /usr/bin/curl (allowed to port
// 80), and connects it (and sends a datagram) itself: across fork+exec, and over SCM_RIGHTS to
// an unrelated process that then execs curl. With enforcement and no rule for python3, none of
// these may get out: with eBPF (the kernel says python3 connected), and without it
// (--no-caller-bpf: no holder's path is proven). --no-caller-bpf --weak-identity believes the
// holder found in /proc; what gets out then is measured, not asserted.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { after, before, describe, it, type TestContext } from 'node:test';
import { TestFirewall } from '../support/firewall.js';

const CURL = '/usr/bin/curl';
const PYTHON = realpathSync('/usr/bin/python3');
const ATTACK = new URL('../fixtures/shared-socket-attack.py', import.meta.url).pathname;
const ATTEMPTS = 20;
const USER = `bastion-att${process.pid % 100000}`;

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

type Mode = 'fork' | 'scm';
type Protocol = 'tcp' | 'udp';

const MODES: Record<Mode, string> = {
  fork: 'a socket curl inherited across fork+exec, connected by its parent',
  scm: 'a socket passed over SCM_RIGHTS to a process that execs curl, connected by the sender',
};

let uid = -1;

function settle(): Promise<void> {
  return new Promise((r) => setTimeout(r, 300));
}

/**
 * curl as the test user: whether its request got through. As root it flaked under load with
 * --no-caller-bpf --weak-identity: the holder of its socket is then searched in /proc, its uid's
 * processes first, within a per-uid time budget, and on a machine running other tests root holds
 * hundreds of processes (and fd tables) to search before curl, past the budget of its three SYNs
 * in 5 s; the test user holds curl alone. The rule names curl for every user.
 */
async function curlAsUser(fw: TestFirewall): Promise<boolean> {
  const args = ['--reuid', String(uid), '--regid', String(uid), '--clear-groups', CURL, '-s', '-o', '/dev/null', '-m', '5', `http://${fw.net.serverV4}/`];
  return (await fw.net.runAsync(fw.net.client, 'setpriv', args, 15_000)).code === 0;
}

/** The attack as the test user in the client namespace: how many of ATTEMPTS got out. */
async function attack(fw: TestFirewall, mode: Mode, protocol: Protocol): Promise<number> {
  const args = ['--reuid', String(uid), '--regid', String(uid), '--clear-groups', PYTHON, ATTACK, mode, fw.net.serverV4, '80', String(ATTEMPTS), protocol];
  await settle(); // what the server printed about earlier connections is read by now
  const before = protocol === 'tcp' ? fw.connectionsReceived(80) : fw.datagramsReceived(80);
  const result = await fw.net.runAsync(fw.net.client, 'setpriv', args, 120_000);
  assert.equal(result.code, 0, result.stderr);
  const outcomes = result.stdout.trim().split(' ');
  assert.equal(outcomes.length, ATTEMPTS);
  // What the server received (a SYN let out after the client gave up still got out).
  await settle();
  return (protocol === 'tcp' ? fw.connectionsReceived(80) : fw.datagramsReceived(80)) - before;
}

/** One firewall per helper setup: its attacks, each asserted (or only measured) below. */
function attacksWith(title: string, helperArgs: string[], expectNone: boolean): void {
  describe(title, () => {
    let fw: TestFirewall;
    before(async () => {
      fw = await new TestFirewall({ rules: { [`${CURL}:80`]: true }, config: { mode: 'enforcement' }, helperArgs, udpPorts: [80] }).start();
    });
    after(async () => {
      await fw?.close();
    });

    const proven = !helperArgs.includes('--no-caller-bpf') || helperArgs.includes('--weak-identity');
    it(
      proven ? 'curl itself is let out (the rule works)' : 'curl itself is not let out either: nothing proves it connected its socket (the default applies)',
      async () => {
        assert.equal(await curlAsUser(fw), proven);
      },
    );

    for (const protocol of ['tcp', 'udp'] as const) {
      for (const mode of ['fork', 'scm'] as const) {
        it(`${MODES[mode]} (${protocol.toUpperCase()})${expectNone ? `: 0 of ${ATTEMPTS} out` : ': measured'}`, async (t: TestContext) => {
          const out = await attack(fw, mode, protocol);
          t.diagnostic(`${helperArgs.join(' ') || 'eBPF'}: ${protocol} ${mode}: ${out} of ${ATTEMPTS} out`);
          if (expectNone) assert.equal(out, 0);
        });
      }
    }
  });
}

describe('a shared socket is not credited to the allowed program', () => {
  before(() => {
    sh('useradd', ['--system', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', '--user-group', USER]);
    uid = Number(sh('id', ['-u', USER]).trim());
  });
  after(() => {
    try {
      sh('userdel', [USER]);
    } catch {
      // never created
    }
  });

  attacksWith('with eBPF caller records', [], true);
  attacksWith('without eBPF (--no-caller-bpf): no holder is proven', ['--no-caller-bpf'], true);
  attacksWith('without eBPF, --weak-identity (the holder found is believed)', ['--no-caller-bpf', '--weak-identity'], false);
});
