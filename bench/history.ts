// The decision history at size: N decisions (default 100,000) written by the service's own
// writer into a fresh file, then `bastion log` searches over them, timed two ways: the query
// alone (open read-only, search, close; median of 7 runs, in this process), and the whole
// command as a user runs it (a new node process; median of 3). Also the writer's costs: what
// add() takes on the verdict path per decision, and how fast batches are written.
// Usage: tsx bench/history.ts [decisions=100000]
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { closeDatabase, openDatabase, searchHistory, type HistoryQuery } from '../common/history.js';
import type { DecisionEvent } from '../service/decider.js';
import { HistoryWriter } from '../service/history/historyWriter.js';
import { REPO, tempDir } from '../test/support/bastion.js';

const N = Number(process.argv[2] ?? 100_000);
const DAY = 86_400_000;
const now = Date.now();
const programs = Array.from({ length: 60 }, (_, i) => `/usr/bin/prog${i}`);
const hosts = Array.from({ length: 200 }, (_, i) => `h${i}.example${i % 20}.org`);

function synthetic(i: number): DecisionEvent {
  const exe = programs[i % programs.length]!;
  return {
    at: now - 7 * DAY + Math.floor((i / N) * 7 * DAY), // a week, oldest first
    pid: 1000 + (i % 5000),
    uid: 1000,
    exe,
    comm: exe.slice(9),
    destIp: `198.51.100.${i % 250}`,
    port: [443, 80, 53, 22][i % 4]!,
    protocol: i % 4 === 2 ? 'UDP' : 'TCP',
    allow: i % 7 !== 0,
    reason: i % 3 === 0 ? 'rule' : 'learning',
    ruleKey: i % 3 === 0 ? `${exe}:*` : null,
    attribution: 'sock_diag',
    lookupMicros: 50,
    connections: 1,
    host: hosts[i % hosts.length]!,
  };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const dir = tempDir('bastion-history-bench-');
try {
  const path = join(dir.path, 'history.sqlite');
  const writer = new HistoryWriter({
    path,
    maxEntries: () => 10_000_000,
    retentionDays: () => 30,
    log: pino({ level: 'warn' }),
    flushMs: 3_600_000,
    maxPending: N + 1,
  });
  await writer.open();
  const events = Array.from({ length: N }, (_, i) => synthetic(i));
  let t = performance.now();
  for (const e of events) writer.add(e);
  const addNs = ((performance.now() - t) * 1e6) / N;
  t = performance.now();
  await writer.flush();
  const flushMs = performance.now() - t;
  await writer.close();
  console.log(
    `${N} decisions: add() ${addNs.toFixed(0)} ns each on the verdict path; written in ${flushMs.toFixed(0)} ms (${Math.round(N / (flushMs / 1000))}/s); file ${(statSync(path).size / 1e6).toFixed(1)} MB`,
  );

  const queries: [label: string, q: HistoryQuery, args: string[]][] = [
    ['newest 50', { limit: 50 }, []],
    ['--program prog7 (name)', { program: 'prog7', limit: 50 }, ['--program', 'prog7']],
    ['--host example3.org (and subdomains)', { host: 'example3.org', limit: 50 }, ['--host', 'example3.org']],
    ['--host nothing.invalid (no match: reads every row)', { host: 'nothing.invalid', limit: 50 }, ['--host', 'nothing.invalid']],
    ['--verdict deny --since 1d', { verdict: 'deny', since: now - DAY, limit: 50 }, ['--verdict', 'deny', '--since', '1d']],
    [
      '--program /usr/bin/prog7 --verdict deny --limit 1000',
      { program: '/usr/bin/prog7', verdict: 'deny', limit: 1000 },
      ['--program', '/usr/bin/prog7', '--verdict', 'deny', '--limit', '1000'],
    ],
  ];
  // The compiled command as installed (npm run build), else the sources through tsx (slower start).
  const built = join(REPO, 'dist', 'cli', 'bastion.js');
  const cli = existsSync(built)
    ? [process.execPath, built]
    : [process.execPath, '--import', join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs'), join(REPO, 'cli', 'bastion.ts')];
  console.log(`bastion log runs as: ${existsSync(built) ? 'dist/cli/bastion.js (compiled)' : 'cli/bastion.ts through tsx'}`);
  console.log('query                                              rows   query alone   bastion log (whole command)');
  for (const [label, q, args] of queries) {
    const times: number[] = [];
    let rows = 0;
    for (let i = 0; i < 7; i++) {
      const start = performance.now();
      const db = await openDatabase(path, 'read');
      rows = (await searchHistory(db, q)).length;
      await closeDatabase(db);
      times.push(performance.now() - start);
    }
    const whole: number[] = [];
    for (let i = 0; i < 3; i++) {
      const start = performance.now();
      execFileSync(cli[0]!, [...cli.slice(1), 'log', '--history', path, '--json', ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
      whole.push(performance.now() - start);
    }
    console.log(`${label.padEnd(50)} ${String(rows).padStart(5)}   ${median(times).toFixed(1).padStart(8)} ms   ${median(whole).toFixed(0).padStart(8)} ms`);
  }
} finally {
  dir.remove();
}
