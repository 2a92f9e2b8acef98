// The decision history: the service's writer on a real SQLite file, and `bastion log` as a
// child process searching it read-only.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { closeDatabase, openDatabase, searchHistory } from '../../common/history.js';
import type { DecisionEvent } from '../../service/decider.js';
import { HistoryWriter } from '../../service/history/historyWriter.js';
import { REPO, tempDir } from '../support/bastion.js';
import { silentLog } from '../support/promptFakes.js';

const TSX = join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs');
const CLI = join(REPO, 'cli', 'bastion.ts');

function bastion(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', TSX, CLI, ...args], { timeout: 30_000, env: { ...process.env, NO_COLOR: '1' } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const T0 = Date.parse('2026-12-05T12:00:00Z');

function decision(overrides: Partial<DecisionEvent> = {}): DecisionEvent {
  return {
    at: T0,
    pid: 3131,
    uid: 1000,
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

/** A logger that keeps its lines, to check what the writer said. */
function recordingLog(): { log: typeof silentLog; lines: { level: number; msg: string; [k: string]: unknown }[] } {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) });
  return { log, lines: lines as never };
}

describe('bastion log over the history the service wrote', () => {
  const dir = tempDir('bastion-history-');
  const path = join(dir.path, 'history.sqlite');
  before(async () => {
    const writer = new HistoryWriter({ path, maxEntries: () => 1000, retentionDays: () => 3650, log: silentLog, now: () => T0 });
    assert.equal(await writer.open(), true);
    writer.add(decision());
    writer.add(
      decision({
        at: T0 + 1000,
        uid: 0,
        exe: '/usr/bin/wget',
        comm: 'wget',
        allow: false,
        ruleKey: '/usr/bin/wget:*',
        host: 'www.example.org',
        destIp: '192.0.2.1',
      }),
    );
    writer.add(
      decision({
        at: T0 + 2000,
        exe: null,
        comm: null,
        uid: -1,
        destIp: '2001:db8::1',
        port: 53,
        protocol: 'UDP',
        reason: 'default',
        ruleKey: null,
        allow: false,
      }),
    );
    writer.add(decision({ at: T0 + 3000, host: 'example.org', reason: 'prompt', destIp: '192.0.2.2' }));
    await writer.close();
  });
  after(() => dir.remove());

  it("creates the file 0640 for the service's user and group only", () => {
    assert.equal(lstatSync(path).mode & 0o777, 0o640);
  });

  it("--json prints every decision, oldest first, with the live feed's field names", async () => {
    const r = await bastion('log', '--history', path, '--json');
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(rows.length, 4);
    assert.deepEqual(rows[1], {
      time: '2026-12-05T12:00:01.000Z',
      pid: 3131,
      uid: 0,
      app_name: 'wget',
      app_path: '/usr/bin/wget',
      host: 'www.example.org',
      dest_ip: '192.0.2.1',
      dest_port: 443,
      protocol: 'TCP',
      allow: false,
      reason: 'rule',
      rule_key: '/usr/bin/wget:*',
      connections: 1,
    });
    assert.equal(rows[2]!['uid'], null);
    assert.equal(rows[2]!['app_path'], 'unknown');
  });

  const filters: [what: string, args: string[], expectedTimes: number[]][] = [
    ['--program by path', ['--program', '/usr/bin/wget'], [1]],
    ['--program by process name', ['--program', 'curl'], [0, 3]],
    ['--host finds the name and its subdomains', ['--host', 'example.org'], [1, 3]],
    ['--host finds a destination address', ['--host', '2001:db8::1'], [2]],
    ['--verdict deny', ['--verdict', 'deny'], [1, 2]],
    ['--since a date and time', ['--since', '2026-12-05T12:00:02Z'], [2, 3]],
    ['--limit keeps the newest', ['--limit', '2'], [2, 3]],
    ['filters together', ['--verdict', 'allow', '--host', 'example.org'], [3]],
  ];
  for (const [what, args, expected] of filters) {
    it(what, async () => {
      const r = await bastion('log', '--history', path, '--json', ...args);
      assert.equal(r.code, 0, r.stderr);
      const times = r.stdout
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => (Date.parse((JSON.parse(l) as { time: string }).time) - T0) / 1000);
      assert.deepEqual(times, expected);
    });
  }

  it('prints one readable line per decision, as bastion monitor prints it after the date and the user: the host beside the address, and what decided', async () => {
    const r = await bastion('log', '--history', path, '--program', 'wget');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '2026-12-05 12:00:01 0(root) DENY  wget /usr/bin/wget → www.example.org (192.0.2.1:443) TCP  [rule /usr/bin/wget:*]\n');
  });

  it('refuses a bad option with the reason, and a missing file with what to check', async () => {
    const bad = await bastion('log', '--history', path, '--since', 'yesterday-ish');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--since must be a time such as 30m, 2h, 7d or a date/);
    const missing = await bastion('log', '--history', join(dir.path, 'nothing.sqlite'));
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read .*nothing\.sqlite \(no history yet, or you are not in group bastion\)/);
  });

  it('opens read-only: bastion log never creates or changes the file', async () => {
    const before = readFileSync(path);
    await bastion('log', '--history', path);
    assert.deepEqual(readFileSync(path), before);
    assert.deepEqual(readdirSync(dir.path).sort(), ['history.sqlite']);
  });
});

describe('the history writer', () => {
  it('adding costs no write: decisions are written together when the batch is flushed', async () => {
    const dir = tempDir('bastion-history-');
    try {
      const path = join(dir.path, 'h.sqlite');
      const writer = new HistoryWriter({ path, maxEntries: () => 1000, retentionDays: () => 30, log: silentLog, flushMs: 3_600_000, now: () => T0 });
      await writer.open();
      for (let i = 0; i < 1200; i++) writer.add(decision({ at: T0 + i }));
      const db = await openDatabase(path, 'read');
      assert.equal((await searchHistory(db, { limit: 10 })).length, 0, 'written before the flush');
      await writer.flush();
      assert.equal((await searchHistory(db, { limit: 100_000 })).length, 1200);
      await closeDatabase(db);
      await writer.close();
    } finally {
      dir.remove();
    }
  });

  it('closing writes what gathered while a write was under way too', async () => {
    const dir = tempDir('bastion-history-');
    try {
      const path = join(dir.path, 'h.sqlite');
      const writer = new HistoryWriter({ path, maxEntries: () => 10_000, retentionDays: () => 30, log: silentLog, flushMs: 3_600_000, now: () => T0 });
      await writer.open();
      for (let i = 0; i < 500; i++) writer.add(decision({ at: T0 + i }));
      const first = writer.flush();
      for (let i = 500; i < 800; i++) writer.add(decision({ at: T0 + i }));
      await writer.close();
      await first;
      const db = await openDatabase(path, 'read');
      assert.equal((await searchHistory(db, { limit: 100_000 })).length, 800);
      await closeDatabase(db);
    } finally {
      dir.remove();
    }
  });

  it('keeps at most history_max_entries, the newest, and nothing older than the retention', async () => {
    const dir = tempDir('bastion-history-');
    try {
      const path = join(dir.path, 'h.sqlite');
      let now = T0;
      const writer = new HistoryWriter({ path, maxEntries: () => 100, retentionDays: () => 2, log: silentLog, flushMs: 3_600_000, now: () => now });
      await writer.open();
      for (let i = 0; i < 250; i++) writer.add(decision({ at: T0 - 3 * 86_400_000 + i })); // three days old
      for (let i = 0; i < 250; i++) writer.add(decision({ at: T0 + i }));
      await writer.flush();
      await writer.prune();
      const db = await openDatabase(path, 'read');
      const rows = await searchHistory(db, { limit: 100_000 });
      assert.equal(rows.length, 100);
      assert.deepEqual([rows[0]!.at, rows.at(-1)!.at], [T0 + 150, T0 + 249]);
      now = T0 + 3 * 86_400_000;
      await writer.prune();
      assert.equal((await searchHistory(db, { limit: 100_000 })).length, 0);
      await closeDatabase(db);
      await writer.close();
    } finally {
      dir.remove();
    }
  });

  it('moves a corrupt file aside with an error line and starts a new history', async () => {
    const dir = tempDir('bastion-history-');
    try {
      const path = join(dir.path, 'history.sqlite');
      writeFileSync(path, 'this is not an SQLite database, it is a file someone broke'.repeat(100), { mode: 0o640 });
      const { log, lines } = recordingLog();
      const writer = new HistoryWriter({ path, maxEntries: () => 1000, retentionDays: () => 30, log, now: () => T0 });
      assert.equal(await writer.open(), true);
      writer.add(decision());
      await writer.close();
      const aside = readdirSync(dir.path).filter((f) => f.startsWith('history.sqlite.unusable-'));
      assert.equal(aside.length, 1);
      assert.match(readFileSync(join(dir.path, aside[0]!), 'utf8'), /^this is not an SQLite database/);
      const said = lines.find((l) => l.msg === 'the decision history was not usable: moved aside, starting a new one');
      assert.ok(said, JSON.stringify(lines));
      assert.equal(said.level, 50);
      const db = await openDatabase(path, 'read');
      assert.equal((await searchHistory(db, { limit: 10 })).length, 1);
      await closeDatabase(db);
    } finally {
      dir.remove();
    }
  });

  it('never follows a symbolic link at the history path: no history, the target untouched', async () => {
    const dir = tempDir('bastion-history-');
    try {
      const target = join(dir.path, 'elsewhere');
      writeFileSync(target, 'precious');
      const path = join(dir.path, 'history.sqlite');
      symlinkSync(target, path);
      const { log, lines } = recordingLog();
      const writer = new HistoryWriter({ path, maxEntries: () => 1000, retentionDays: () => 30, log });
      assert.equal(await writer.open(), false);
      writer.add(decision());
      await writer.close();
      assert.equal(readFileSync(target, 'utf8'), 'precious');
      assert.ok(
        lines.some((l) => l.msg === 'no decision history: the file could not be opened'),
        JSON.stringify(lines),
      );
    } finally {
      dir.remove();
    }
  });

  it('without its directory, keeps no history and says so', async () => {
    const { log, lines } = recordingLog();
    const writer = new HistoryWriter({ path: '/nonexistent-bastion-state/history.sqlite', maxEntries: () => 1000, retentionDays: () => 30, log });
    assert.equal(await writer.open(), false);
    assert.equal(existsSync('/nonexistent-bastion-state'), false);
    assert.ok(lines.some((l) => l.msg === 'no decision history: its directory is not there'));
  });
});
