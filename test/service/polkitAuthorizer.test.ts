// PolkitAuthorizer without polkit: what it asks pkcheck, and how each answer becomes a result.
// (test/service/polkit.test.ts runs it against a real polkitd.)
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MANAGE_RULES_ACTION, parseStartTime, PolkitAuthorizer, runPkcheck, type PkcheckOutcome } from '../../service/authorizer.js';

const PEER = { pid: 4242, uid: 1000, gid: 1000, startTime: 987654 };
// /proc/PID/stat with a comm holding spaces and a ')': fields are counted after the last ')'.
const STAT = '4242 (evil) (app x) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200 1 2 3\n';

let proc: string;
before(() => {
  proc = mkdtempSync(join(tmpdir(), 'bastion-polkit-unit-'));
  mkdirSync(join(proc, String(PEER.pid)));
  writeFileSync(join(proc, String(PEER.pid), 'stat'), STAT);
});
after(() => rmSync(proc, { recursive: true, force: true }));

function fakeRunner(outcome: PkcheckOutcome): { calls: { file: string; args: readonly string[] }[]; run: typeof runPkcheck } {
  const calls: { file: string; args: readonly string[] }[] = [];
  return {
    calls,
    run: async (file, args) => {
      calls.push({ file, args });
      return outcome;
    },
  };
}

describe('parseStartTime', () => {
  const cases: [string, string, number | null][] = [
    ['a plain comm', '1 (bash) S 0 1 1 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 55 1 1\n', 55],
    ['a comm with spaces and parentheses', STAT, 987654],
    ['a line cut before field 22', '1 (bash) S 0 1 1 0', null],
    ['no comm at all', 'garbage', null],
  ];
  for (const [name, stat, expected] of cases) {
    it(`reads field 22 from ${name}`, () => assert.equal(parseStartTime(stat), expected));
  }
});

describe('PolkitAuthorizer', () => {
  it('asks pkcheck about the peer process by pid, start time and SO_PEERCRED uid, allowing a password dialog', async () => {
    const fake = fakeRunner({ code: 0, detail: '', missing: false });
    const result = await new PolkitAuthorizer({ procRoot: proc }, fake.run).authorize(PEER, 'add rules');
    assert.deepEqual(result, { ok: true });
    assert.deepEqual(fake.calls, [
      {
        file: 'pkcheck',
        args: ['--action-id', MANAGE_RULES_ACTION, '--process', '4242,987654,1000', '--allow-user-interaction'],
      },
    ]);
  });

  const refusals: [string, PkcheckOutcome, string][] = [
    ['exit 1 (denied)', { code: 1, detail: '', missing: false }, `polkit denied ${MANAGE_RULES_ACTION} to uid 1000`],
    [
      'exit 2 (no agent to authenticate)',
      { code: 2, detail: '', missing: false },
      `${MANAGE_RULES_ACTION} needs authentication and no polkit authentication agent of uid 1000 answered`,
    ],
    ['exit 3 (dialog dismissed)', { code: 3, detail: '', missing: false }, 'the authentication dialog was dismissed'],
    [
      'pkcheck missing',
      { code: null, detail: 'pkcheck not found', missing: true },
      'pkcheck is not installed (install polkitd, or run the service with --no-polkit)',
    ],
    [
      'polkitd unreachable (exit 127)',
      { code: 127, detail: 'Error getting authority', missing: false },
      'the polkit check failed (Error getting authority); is polkitd running?',
    ],
    [
      'a check that timed out',
      { code: null, detail: 'no answer within 120 s', missing: false },
      'the polkit check failed (no answer within 120 s); is polkitd running?',
    ],
  ];
  for (const [name, outcome, why] of refusals) {
    it(`refuses on ${name}`, async () => {
      const result = await new PolkitAuthorizer({ procRoot: proc }, fakeRunner(outcome).run).authorize(PEER, 'add rules');
      assert.deepEqual(result, { ok: false, error: `not authorized to add rules: ${why}` });
    });
  }

  it('authorizes root without asking polkit (polkit always does)', async () => {
    const fake = fakeRunner({ code: 1, detail: '', missing: false });
    assert.deepEqual(await new PolkitAuthorizer({ procRoot: proc }, fake.run).authorize({ pid: 1, uid: 0, gid: 0, startTime: 1 }, 'add rules'), {
      ok: true,
    });
    assert.equal(fake.calls.length, 0);
  });

  it('refuses a peer without credentials, one whose process is gone, and one whose pid names another process now, without asking polkit', async () => {
    const fake = fakeRunner({ code: 0, detail: '', missing: false });
    const authorizer = new PolkitAuthorizer({ procRoot: proc }, fake.run);
    assert.deepEqual(await authorizer.authorize(null, 'delete rules'), {
      ok: false,
      error: 'not authorized to delete rules: the requesting process is unknown (no peer credentials)',
    });
    assert.deepEqual(await authorizer.authorize({ pid: 999999, uid: 1000, gid: 1000, startTime: 5 }, 'delete rules'), {
      ok: false,
      error: 'not authorized to delete rules: the process that connected (pid 999999) is gone',
    });
    // Connected as a process that started at 987000; pid 4242 now started at 987654.
    assert.deepEqual(await authorizer.authorize({ ...PEER, startTime: 987000 }, 'delete rules'), {
      ok: false,
      error: 'not authorized to delete rules: the process that connected (pid 4242) is gone; its pid now names another process',
    });
    assert.deepEqual(await authorizer.authorize({ ...PEER, startTime: null }, 'delete rules'), {
      ok: false,
      error: 'not authorized to delete rules: the process that connected (pid 4242) was gone before it was accepted',
    });
    assert.equal(fake.calls.length, 0);
  });

  it('without user interaction, does not pass --allow-user-interaction', async () => {
    const fake = fakeRunner({ code: 0, detail: '', missing: false });
    await new PolkitAuthorizer({ procRoot: proc, allowUserInteraction: false }, fake.run).authorize(PEER, 'add rules');
    assert.deepEqual(fake.calls[0]!.args.slice(-2), ['--process', '4242,987654,1000']);
  });
});

describe('runPkcheck', () => {
  let bin: string;
  before(() => {
    bin = mkdtempSync(join(tmpdir(), 'bastion-pkcheck-'));
    const scripts: [string, string][] = [
      ['exit2', 'echo "Not authorized." >&2; exit 2'],
      ['ok', 'exit 0'],
      ['slow', 'exec sleep 10'],
    ];
    for (const [name, body] of scripts) {
      writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
      chmodSync(join(bin, name), 0o755);
    }
  });
  after(() => rmSync(bin, { recursive: true, force: true }));

  it('reports the exit code and the last line of stderr', async () => {
    assert.deepEqual(await runPkcheck(join(bin, 'exit2'), [], 5000), { code: 2, detail: 'Not authorized.', missing: false });
    assert.deepEqual(await runPkcheck(join(bin, 'ok'), [], 5000), { code: 0, detail: '', missing: false });
  });

  it('reports a missing pkcheck, and kills one that does not answer in time', async () => {
    assert.deepEqual(await runPkcheck(join(bin, 'absent'), [], 5000), {
      code: null,
      detail: `${join(bin, 'absent')} not found`,
      missing: true,
    });
    const started = Date.now();
    assert.deepEqual(await runPkcheck(join(bin, 'slow'), [], 300), { code: null, detail: 'no answer within 300 ms', missing: false });
    assert.ok(Date.now() - started < 5000);
  });
});
