// `bastion log` (issue 17): the user column, what stderr says when --limit cut the result, and a
// reader that closes the pipe early (`| head`): the command ends quietly, exit code 0.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Command } from 'commander';
import { closeDatabase, countDecisions, exec, openDatabase, SCHEMA } from '../../common/history.js';
import type { DecisionEvent } from '../../service/decider.js';
import { HistoryWriter } from '../../service/history/historyWriter.js';
import { exitQuietlyOnClosedOutput, handleClosedOutput } from '../../cli/closedOutput.js';
import { limitNote } from '../../cli/logCommand.js';
import { parsePasswd, userLabel } from '../../cli/userNames.js';
import { REPO, tempDir } from '../support/bastion.js';
import { silentLog } from '../support/promptFakes.js';

const TSX = join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs');
const CLI = join(REPO, 'cli', 'bastion.ts');
const NODE_CLI = [process.execPath, '--import', TSX, CLI];

function bastion(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      NODE_CLI[0]!,
      [...NODE_CLI.slice(1), ...args],
      { timeout: 30_000, maxBuffer: 1 << 26, env: { ...process.env, NO_COLOR: '1' } },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

/** A shell pipeline, as a user types it; pipefail: the exit code is bastion's unless head fails. */
function pipeline(command: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('bash', ['-o', 'pipefail', '-c', command], { timeout: 30_000, env: { ...process.env, NO_COLOR: '1' } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const quote = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`;

const T0 = Date.parse('2026-12-05T12:00:00Z');
/** A uid no system has a name for. */
const NAMELESS = 4000123;

function decision(overrides: Partial<DecisionEvent> = {}): DecisionEvent {
  return {
    at: T0,
    pid: 3131,
    uid: 0,
    exe: '/usr/bin/curl',
    comm: 'curl',
    destIp: '198.51.100.7',
    port: 443,
    protocol: 'TCP',
    allow: true,
    reason: 'rule',
    ruleKey: '/usr/bin/curl:443',
    attribution: 'sock_diag',
    lookupMicros: 1,
    connections: 1,
    ...overrides,
  };
}

async function writeHistory(path: string, events: DecisionEvent[]): Promise<void> {
  const writer = new HistoryWriter({ path, maxEntries: () => 1_000_000, retentionDays: () => 3650, log: silentLog, flushMs: 3_600_000, now: () => T0 });
  assert.equal(await writer.open(), true);
  for (const e of events) writer.add(e);
  await writer.close();
}

describe('bastion log', () => {
  const dir = tempDir('bastion-log-');
  const small = join(dir.path, 'small.sqlite');
  const big = join(dir.path, 'big.sqlite');
  before(async () => {
    await writeHistory(small, [
      decision(),
      decision({
        at: T0 + 1000,
        uid: NAMELESS,
        exe: '/usr/bin/wget',
        comm: 'wget',
        allow: false,
        ruleKey: '/usr/bin/wget:*',
        host: 'www.example.org',
        destIp: '192.0.2.1',
      }),
      decision({
        at: T0 + 2000,
        uid: -1,
        exe: null,
        comm: null,
        destIp: '2001:db8::1',
        port: 53,
        protocol: 'UDP',
        reason: 'default',
        ruleKey: null,
        allow: false,
      }),
      decision({ at: T0 + 3000, reason: 'prompt', destIp: '192.0.2.2' }),
      decision({ at: T0 + 4000, destIp: '192.0.2.3' }),
    ]);
    await writeHistory(
      big,
      Array.from({ length: 3000 }, (_, i) => decision({ at: T0 + i })),
    );
  });
  after(() => dir.remove());

  it('shows who: the uid, with its name where it has one, in a column as wide as its widest entry', async () => {
    const r = await bastion('log', '--history', small);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.equal(
      r.stdout,
      [
        '2026-12-05 12:00:00 0(root) ALLOW curl /usr/bin/curl → 198.51.100.7:443 TCP  [rule /usr/bin/curl:443]',
        `2026-12-05 12:00:01 ${NAMELESS} DENY  wget /usr/bin/wget → www.example.org (192.0.2.1:443) TCP  [rule /usr/bin/wget:*]`,
        '2026-12-05 12:00:02 -       DENY  unknown → [2001:db8::1]:53 UDP  [default action]',
        '2026-12-05 12:00:03 0(root) ALLOW curl /usr/bin/curl → 192.0.2.2:443 TCP  [answered /usr/bin/curl:443]',
        '2026-12-05 12:00:04 0(root) ALLOW curl /usr/bin/curl → 192.0.2.3:443 TCP  [rule /usr/bin/curl:443]',
        '',
      ].join('\n'),
    );
  });

  it('says on stderr when --limit cut the result, with how many match and the --limit that shows them', async () => {
    const cut = await bastion('log', '--history', small, '--limit', '2');
    assert.equal(cut.code, 0, cut.stderr);
    assert.equal(cut.stderr, 'showing the newest 2 of 5 matching decisions; --limit 5 for more\n');
    assert.equal(cut.stdout.split('\n').length - 1, 2);
    const filtered = await bastion('log', '--history', small, '--program', 'curl', '--limit', '1', '--json');
    assert.equal(filtered.stderr, 'showing the newest 1 of 3 matching decisions; --limit 3 for more\n');
    assert.equal(filtered.stdout.split('\n').length - 1, 1);
  });

  it('says nothing when the limit cut nothing (exactly as many as the limit, or fewer)', async () => {
    for (const limit of ['5', '50']) {
      const r = await bastion('log', '--history', small, '--limit', limit);
      assert.equal(r.stderr, '', `--limit ${limit}`);
      assert.equal(r.stdout.split('\n').length - 1, 5);
    }
  });

  it('the 50 by default: 3000 decisions give 50 lines and the note', async () => {
    const r = await bastion('log', '--history', big);
    assert.equal(r.stdout.split('\n').length - 1, 50);
    assert.equal(r.stderr, 'showing the newest 50 of 3000 matching decisions; --limit 3000 for more\n');
  });

  it('under a reader that closes early (| head -n 1): exit code 0, nothing on stderr, no EPIPE trace', async () => {
    // 3000 lines are ~300 kB, far more than a pipe holds: bastion still writes when head is gone.
    for (const json of [[], ['--json']]) {
      const r = await pipeline(`${NODE_CLI.map(quote).join(' ')} log --history ${quote(big)} --limit 3000 ${json.join(' ')} | head -n 1`);
      assert.equal(r.stderr, '', json.join(' '));
      assert.equal(r.code, 0);
      assert.equal(r.stdout.split('\n').length - 1, 1);
    }
  });
});

describe('counting what the limit left out', () => {
  it('counts exactly within the budget, and gives up (null) when counting takes longer', async () => {
    const dir = tempDir('bastion-log-count-');
    try {
      const path = join(dir.path, 'h.sqlite');
      const db = await openDatabase(path, 'write');
      await exec(db, SCHEMA);
      // 300,000 decisions: a host filter reads every row (tens of ms).
      await exec(
        db,
        `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 300000)
         INSERT INTO decisions (at, pid, uid, program, comm, host, dest, port, protocol, allow, reason, rule, connections)
         SELECT ${T0} + i, 1, 0, '/usr/bin/curl', 'curl', 'h' || (i % 100) || '.example.org', '192.0.2.1', 443, 'TCP', 1, 'rule', NULL, 1 FROM s`,
      );
      assert.equal(await countDecisions(db, { host: 'h7.example.org', limit: 50 }, 60_000), 3000);
      assert.equal(await countDecisions(db, { host: 'example.org', limit: 50 }, 0), null);
      // The database stays usable after an interrupted count.
      assert.equal(await countDecisions(db, { limit: 50 }, 60_000), 300_000);
      await closeDatabase(db);
    } finally {
      dir.remove();
    }
  });

  it('the note without a count says that more exist and how to see them', () => {
    assert.equal(limitNote(50, null), 'showing the newest 50 matching decisions; more exist: a larger --limit (at most 100000) shows them');
    assert.equal(limitNote(50, 2_000_000), 'showing the newest 50 of 2000000 matching decisions; --limit 100000 for more');
  });
});

describe('user names', () => {
  it('reads name:x:uid lines for the uids asked about only', () => {
    const names = parsePasswd('root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\nbad line\n:x:7:7::/:/bin/sh\n', new Set([0, 7, 42]));
    assert.deepEqual([...names], [[0, 'root']]);
    assert.equal(userLabel(0, names), '0(root)');
    assert.equal(userLabel(42, names), '42');
    assert.equal(userLabel(null, names), '-');
  });
});

describe('a closed stdout, for every client command', () => {
  it('EPIPE exits 0 quietly; any other error still throws', () => {
    const stream = new EventEmitter();
    const codes: number[] = [];
    exitQuietlyOnClosedOutput([stream], (code) => codes.push(code));
    stream.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    assert.deepEqual(codes, [0]);
    assert.throws(() => stream.emit('error', Object.assign(new Error('write EIO'), { code: 'EIO' })), /EIO/);
  });

  it('is installed before a client command runs, never for the services (their stdout is their log)', async () => {
    const program = new Command('bastion').exitOverride();
    handleClosedOutput(program);
    const listeners = (): number => process.stdout.listenerCount('error');
    const seen: Record<string, number> = {};
    for (const name of ['helper', 'daemon', 'run']) program.command(name).action(() => void (seen[name] = listeners()));
    program
      .command('rules')
      .command('list')
      .action(() => void (seen['rules list'] = listeners()));
    const before = listeners();
    const original = new Map([process.stdout, process.stderr].map((s) => [s, s.listeners('error')] as const));
    try {
      for (const name of ['helper', 'daemon', 'run']) await program.parseAsync(['node', 'bastion', name]);
      assert.deepEqual([seen['helper'], seen['daemon'], seen['run']], [before, before, before]);
      await program.parseAsync(['node', 'bastion', 'rules', 'list']);
      assert.equal(seen['rules list'], before + 1);
    } finally {
      // This process's own streams: the handlers the test added go again.
      for (const [stream, kept] of original)
        for (const l of stream.listeners('error')) if (!kept.includes(l)) stream.off('error', l as (...args: unknown[]) => void);
    }
  });
});
