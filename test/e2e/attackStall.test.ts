// Issue 11, item 3: no local user can stall the helper or flood it into letting anything out.
// Run as an unprivileged user against the real helper and service (real NFQUEUE and iptables
// in a test network namespace), rules `/usr/bin/curl:80` allowed, enforcement, default deny:
//  - sockets that no process holds any more (parked in SCM_RIGHTS messages nobody reads),
//    started by a process with 20,000 open files beside sleepers with as many, retransmit
//    their SYNs: the helper must not stall, no fallback verdict may be given, nothing gets out;
//  - a flood of new UDP flows while the same user tries 40 connections no rule allows: the
//    flood is dropped (the user's own share), none of the 40 gets out.
// Meanwhile root's curl, which the rule allows, must keep working; how long its connects take
// is reported (bench figures, not asserted here).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it, type TestContext } from 'node:test';
import { TestFirewall } from '../support/firewall.js';
import { LocalUser } from '../support/localUser.js';
import type { LogLine } from '../support/bastion.js';

const CURL = '/usr/bin/curl';
const ATTACK = new URL('../fixtures/stall-attack.py', import.meta.url).pathname;
const ENFORCING = { mode: 'enforcement', default_action: 'deny', timeout_seconds: 60 };
const DENIED_PORT = 81;

interface RootConnects {
  /** time_connect of each of root's curls that got through, in ms. */
  ms: number[];
  failed: number;
}

/** root's allowed curl to port 80, one after another, until stop() says so. */
function rootCurls(fw: TestFirewall): { stop: () => Promise<RootConnects> } {
  const result: RootConnects = { ms: [], failed: 0 };
  let running = true;
  const loop = (async () => {
    while (running) {
      const r = await fw.net.runAsync(
        fw.net.client,
        CURL,
        ['-s', '-o', '/dev/null', '-m', '10', '-w', '%{time_connect}', `http://${fw.net.serverV4}:80/`],
        15_000,
      );
      if (r.code === 0) result.ms.push(Number(r.stdout) * 1000);
      else result.failed++;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return result;
    },
  };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
}

function describeConnects(r: RootConnects): string {
  const slowest = r.ms
    .map((ms, i) => [ms, i + 1] as const)
    .sort((a, b) => b[0] - a[0])
    .slice(0, 3);
  return (
    `root's allowed connects: ${r.ms.length} ok, ${r.failed} failed, p50 ${percentile(r.ms, 50).toFixed(1)} ms, p99 ${percentile(r.ms, 99).toFixed(1)} ms; ` +
    `slowest ${slowest.map(([ms, n]) => `${ms.toFixed(1)} ms (#${n})`).join(', ')}`
  );
}

/** The helper's last words: counters, flood drops and how long its event loop was blocked. */
async function helperSummary(fw: TestFirewall): Promise<LogLine> {
  await fw.helper!.stop();
  return fw.helper!.lines.find((l) => l.msg === 'helper stopped') ?? {};
}

async function withFirewall(fn: (fw: TestFirewall, attacker: LocalUser) => Promise<void>): Promise<void> {
  const fw = new TestFirewall({ rules: { [`${CURL}:80`]: true }, config: ENFORCING, serverPorts: [80, DENIED_PORT] });
  let attacker: LocalUser | null = null;
  try {
    attacker = LocalUser.create();
    await fw.start();
    await fn(fw, attacker);
  } finally {
    await attacker?.remove().catch(() => undefined);
    await fw.close();
  }
}

describe('3. a stalled helper (issue 11)', { skip: !existsSync(CURL) && `${CURL} is not installed` }, () => {
  it('sockets nobody holds, behind processes with 20,000 open files, neither stall the helper nor get out', async (t: TestContext) => {
    await withFirewall(async (fw, attacker) => {
      const parked = attacker.run(fw.net.client, `python3 ${ATTACK} park ${fw.net.serverV4} ${DENIED_PORT} 200 20000 4 12`, 60_000);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const curls = rootCurls(fw);
      const attack = await parked;
      const root = await curls.stop();
      assert.match(attack.stdout, /^parked 200$/m, `the attack could not be set up: ${attack.stderr}`);
      const summary = await helperSummary(fw);
      const counters = summary['counters'] as { fallbackVerdicts: number };
      t.diagnostic(
        `parked sockets: ${fw.connectionsReceived(DENIED_PORT)} of 200 got out; fallback verdicts ${counters.fallbackVerdicts}; helper blocked ${String(summary['stalledMs'])} ms in all`,
      );
      t.diagnostic(describeConnects(root));
      assert.equal(fw.connectionsReceived(DENIED_PORT), 0);
      assert.equal(counters.fallbackVerdicts, 0, 'a packet got the fallback verdict');
      assert.equal(root.failed, 0, "root's allowed curl failed");
      assert.ok(root.ms.length > 0);
    });
  });

  it('a flood of new UDP flows opens the door for no one: none of 40 denied connections of the same user gets out', async (t: TestContext) => {
    await withFirewall(async (fw, attacker) => {
      const flood = attacker.run(fw.net.client, `python3 ${ATTACK} flood ${fw.net.serverV4} 8`, 60_000);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const curls = rootCurls(fw);
      const denied = await attacker.run(fw.net.client, `python3 ${ATTACK} connect ${fw.net.serverV4} ${DENIED_PORT} 40 5`, 30_000);
      const sent = await flood;
      const root = await curls.stop();
      const summary = await helperSummary(fw);
      t.diagnostic(
        `${sent.stdout.trim()} flood datagrams; ${denied.stdout.trim()}; the helper dropped ${String(summary['floodDrops'])} for their user's share`,
      );
      t.diagnostic(describeConnects(root));
      assert.match(denied.stdout, /^connected 0 of 40$/m, denied.stderr);
      assert.equal(fw.connectionsReceived(DENIED_PORT), 0);
      assert.equal(root.failed, 0, "root's allowed curl failed");
      assert.ok(root.ms.length > 0);
    });
  });
});
