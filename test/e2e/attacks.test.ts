// Issue 11's attacks, each run as an unprivileged local user against the real helper and service
// (real NFQUEUE and iptables in a test network namespace), with the rules of the report:
// `/usr/bin/curl:80` allowed, enforcement, default deny. What counts is what reached the server
// namespace: every attack must end with 0 connections received from it.
//
// One describe block per item of the issue; each test builds its firewall and users with
// withAttack(), which removes them again whatever happens.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it, type TestContext } from 'node:test';
import { TestFirewall, type FirewallSetup } from '../support/firewall.js';
import { TrayClient, type Message } from '../support/guiTray.js';
import { LocalUser } from '../support/localUser.js';

const CURL = '/usr/bin/curl';
const ENFORCING = { mode: 'enforcement', default_action: 'deny', timeout_seconds: 60 };

interface Attack {
  fw: TestFirewall;
  /** Unprivileged users made for this test (removed afterwards). */
  users: LocalUser[];
  /** `curl` arguments for one HTTP GET to the server namespace on port, giving up after timeoutS. */
  get: (port: number, timeoutS: number) => string;
}

/** A started firewall with the rules, and `users` fresh local users; all removed afterwards. */
async function withAttack(setup: FirewallSetup & { users: number }, fn: (a: Attack) => Promise<void>): Promise<void> {
  const fw = new TestFirewall({ rules: { [`${CURL}:80`]: true }, config: ENFORCING, ...setup });
  const users: LocalUser[] = [];
  try {
    for (let i = 0; i < setup.users; i++) users.push(LocalUser.create());
    await fw.start();
    await fn({ fw, users, get: (port, timeoutS) => `-s -o /dev/null -m ${timeoutS} http://${fw.net.serverV4}:${port}/` });
  } finally {
    for (const user of users) await user.remove().catch(() => undefined);
    await fw.close();
  }
}

/** curl's exit code for a connection the firewall denied: our chain resets it (--deny-with reject, the default). */
const REFUSED = 7;

/** curl's exit codes printed by the attack scripts as `exit <code>` lines. */
function exitCodes(stdout: string): number[] {
  return [...stdout.matchAll(/^exit (\d+)$/gm)].map((m) => Number(m[1]));
}

describe('attacks by a local user (issue 11)', { skip: !existsSync(CURL) && `${CURL} is not installed` }, () => {
  describe('1. borrowed path', () => {
    it('a bind mount over /usr/bin/curl in a user namespace of its own gets no connection out, before or after the real curl was allowed', async (t: TestContext) => {
      await withAttack({ users: 1 }, async ({ fw, users: [attacker], get }) => {
        const attack = `cp ${CURL} ./evil && unshare -Urm sh -c 'mount --bind ./evil ${CURL} && echo borrowed && ${CURL} ${get(80, 3)}; echo "exit $?"'`;
        const cold = await attacker!.run(fw.net.client, attack);
        assert.match(cold.stdout, /^borrowed$/m, `the attack could not be set up: ${cold.stderr}`);
        const leakedCold = fw.connectionsReceived(80);
        // The same user's real curl is allowed by the rule: the setup works, and its verdict is
        // now cached (and armed in the fast path) for /usr/bin/curl:80.
        const real = await attacker!.run(fw.net.client, `${CURL} ${get(80, 5)}; echo "exit $?"`);
        assert.deepEqual(exitCodes(real.stdout), [0], 'the real curl was not allowed');
        const beforeWarm = fw.connectionsReceived(80);
        const warm = await attacker!.run(fw.net.client, attack);
        const leaked = leakedCold + fw.connectionsReceived(80) - beforeWarm;
        t.diagnostic(`borrowed /usr/bin/curl: ${leaked} of 2 attempts got out`);
        assert.equal(beforeWarm - leakedCold, 1, 'the real curl did not get out');
        assert.deepEqual([...exitCodes(cold.stdout), ...exitCodes(warm.stdout)], [REFUSED, REFUSED], 'curl was not blocked (7: refused)');
        assert.equal(leaked, 0);
      });
    });

    it('the real /usr/bin/curl run in a user namespace of its own is not credited to the host path', async (t: TestContext) => {
      await withAttack({ users: 1 }, async ({ fw, users: [attacker], get }) => {
        const run = await attacker!.run(fw.net.client, `unshare -Ur sh -c '${CURL} ${get(80, 3)}; echo "exit $?"'`);
        t.diagnostic(`/usr/bin/curl in another user namespace: ${fw.connectionsReceived(80)} of 1 attempt got out`);
        assert.deepEqual(exitCodes(run.stdout), [REFUSED], `curl was not blocked: ${run.stderr}`);
        assert.equal(fw.connectionsReceived(80), 0);
      });
    });

    it('a copy of curl named dnsmasq on a tmpfs over /usr/sbin gets nothing out on the DNS ports the whitelist opens', async (t: TestContext) => {
      await withAttack({ users: 1, serverPorts: [80, 53, 853] }, async ({ fw, users: [attacker], get }) => {
        const run = await attacker!.run(
          fw.net.client,
          `cp ${CURL} ./dnsmasq && unshare -Urm sh -c 'mount -t tmpfs tmpfs /usr/sbin && cp ./dnsmasq /usr/sbin/dnsmasq && echo borrowed && ` +
            `for port in 53 853; do /usr/sbin/dnsmasq ${get(0, 3).replace(':0/', ':$port/')}; echo "exit $?"; done'`,
        );
        assert.match(run.stdout, /^borrowed$/m, `the attack could not be set up: ${run.stderr}`);
        const leaked = fw.connectionsReceived(53) + fw.connectionsReceived(853);
        t.diagnostic(`borrowed /usr/sbin/dnsmasq: ${leaked} of 2 attempts got out`);
        assert.deepEqual(exitCodes(run.stdout), [REFUSED, REFUSED], 'the copy was not blocked');
        assert.equal(leaked, 0);
      });
    });
  });

  describe('4. buried prompts', () => {
    it("16 renamed copies × 4 ports of one user cannot keep another user's program from being asked about", async (t: TestContext) => {
      const floodPorts = [81, 82, 83, 84];
      await withAttack({ users: 2, serverPorts: [80, ...floodPorts, 8080] }, async ({ fw, users: [attacker, victim], get }) => {
        const tray = await TrayClient.connect(fw.guiSocket);
        try {
          const attackerAsked = (): Message[] => tray.ofType('connection_request').filter((m) => String(m['app_name']).startsWith('prog'));
          const copies = Array.from({ length: 16 }, (_, i) => `prog${String(i + 1).padStart(2, '0')}`);
          const flood = attacker!.run(
            fw.net.client,
            `for c in ${copies.join(' ')}; do cp ${CURL} ./$c; for port in ${floodPorts.join(' ')}; do ./$c ${get(0, 40).replace(':0/', ':$port/')} & done; done; echo started; wait`,
            60_000,
          );
          // The flood is in once every one of its 64 connections has been asked about or refused.
          const flooded = copies.length * floodPorts.length;
          for (let i = 0; i < 200; i++) {
            const blocked = (await fw.status())['stats'] as { blocked_connections: number };
            if (attackerAsked().length + blocked.blocked_connections >= flooded) break;
            await new Promise((r) => setTimeout(r, 100));
          }
          const victimGet = victim!.run(fw.net.client, `${CURL} ${get(8080, 20)}; echo "exit $?"`);
          let victimAsked = true;
          try {
            const request = await tray.nextRequest('curl', 10_000);
            assert.equal(request['dest_port'], 8080);
            tray.answer(request, { allow: true, duration: 'once' });
          } catch {
            victimAsked = false;
          }
          const victimExit = exitCodes((await victimGet).stdout);
          const leaked = floodPorts.reduce((n, port) => n + fw.connectionsReceived(port), 0);
          t.diagnostic(
            `flood: ${attackerAsked().length} prompts opened for the flooding user; the other user's program was ${victimAsked ? '' : 'NOT '}asked about; ${leaked} flood connections got out`,
          );
          assert.ok(victimAsked, "the other user's program was blocked without being asked");
          assert.deepEqual(victimExit, [0]);
          assert.equal(fw.connectionsReceived(8080), 1);
          assert.equal(leaked, 0);
          void flood;
        } finally {
          await tray.close();
        }
      });
    });
  });

  // 2. shared sockets and 3. a stalled helper: further describe blocks here, built with withAttack().
});
