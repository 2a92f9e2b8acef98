// `bastion log`: searches the decision history the service keeps (common/history.ts). Opens the
// file read-only; who may read it is who may read /var/lib/bastion (root and group bastion,
// docs/SECURITY.md).
import type { Command } from 'commander';
import { closeDatabase, DEFAULT_HISTORY_PATH, HistoryError, MAX_LIMIT, openDatabase, searchHistory, type HistoryQuery, type HistoryRow } from '../common/history.js';
import { visibleJson } from '../common/visibleText.js';
import { colorsFor } from './colors.js';
import { formatDecision } from './decisionLine.js';

const RELATIVE = /^([0-9]{1,6})([smhd])$/;
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** "30m", "2h", "7d" ago, or a date/time Date.parse reads ("2026-12-05", "2026-12-05T13:00"). */
export function parseSince(text: string, now: number): number | null {
  const m = RELATIVE.exec(text);
  if (m) return now - Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  const t = Date.parse(text);
  return Number.isNaN(t) ? null : t;
}

export interface LogOptions {
  history: string;
  since?: string;
  program?: string;
  host?: string;
  verdict?: string;
  json?: boolean;
  limit: string;
}

/** The options as a query, or the message that says what is wrong. */
export function toQuery(opts: LogOptions, now: number): HistoryQuery | string {
  const limit = Number(opts.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) return `--limit must be a whole number from 1 to ${MAX_LIMIT}`;
  const q: HistoryQuery = { limit };
  if (opts.since !== undefined) {
    const since = parseSince(opts.since, now);
    if (since === null) return `--since must be a time such as 30m, 2h, 7d or a date such as 2026-12-05, not "${opts.since}"`;
    q.since = since;
  }
  if (opts.verdict !== undefined) {
    if (opts.verdict !== 'allow' && opts.verdict !== 'deny') return '--verdict must be allow or deny';
    q.verdict = opts.verdict;
  }
  if (opts.program !== undefined) q.program = opts.program;
  if (opts.host !== undefined) q.host = opts.host;
  return q;
}

/** A row as JSON: the live feed's field names (docs/gui-extensions.md, `decision`), plus host and uid. */
export function rowJson(r: HistoryRow): Record<string, unknown> {
  return {
    time: new Date(r.at).toISOString(),
    pid: r.pid,
    uid: r.uid,
    app_name: r.comm ?? 'unknown',
    app_path: r.program,
    host: r.host,
    dest_ip: r.dest,
    dest_port: r.port,
    protocol: r.protocol,
    allow: r.allow,
    reason: r.reason,
    rule_key: r.rule,
    connections: r.connections,
  };
}

export function registerLogCommand(program: Command): void {
  program
    .command('log')
    .description('search the decision history: newest matches, oldest first')
    .option('--history <path>', 'the history file', DEFAULT_HISTORY_PATH)
    .option('--since <time>', 'only decisions since: 30m, 2h, 7d ago, or a date (2026-12-05)')
    .option('--program <p>', 'an executable path (with a /) or a process name')
    .option('--host <name>', 'a host name (and its subdomains) or a destination address')
    .option('--verdict <v>', 'allow or deny')
    .option('--json', 'one JSON object per line')
    .option('--limit <n>', 'at most this many (the newest)', '50')
    .action(async (opts: LogOptions) => {
      const query = toQuery(opts, Date.now());
      if (typeof query === 'string') {
        process.stderr.write(`bastion: ${query}\n`);
        process.exit(2);
      }
      let rows: HistoryRow[];
      try {
        const db = await openDatabase(opts.history, 'read');
        try {
          rows = await searchHistory(db, query);
        } finally {
          await closeDatabase(db);
        }
      } catch (err) {
        const why = err instanceof HistoryError && err.code === 'SQLITE_CANTOPEN'
          ? `cannot read ${opts.history} (no history yet, or you are not in group bastion)`
          : (err as Error).message;
        process.stderr.write(`bastion: ${why}\n`);
        process.exit(1);
      }
      if (opts.json) {
        process.stdout.write(rows.map((r) => visibleJson(rowJson(r)) + '\n').join(''));
        return;
      }
      const c = colorsFor(process.stdout);
      const out: string[] = [];
      for (const r of rows) {
        // The same line as `bastion monitor` (the host beside the address), after the date.
        const m = { ...rowJson(r), missed: 0 } as Parameters<typeof formatDecision>[0];
        out.push(`${c.dim(m.time.slice(0, 10))} ${formatDecision(m, c).join('\n')}`);
      }
      if (rows.length === 0) process.stderr.write(c.dim('no decisions match') + '\n');
      process.stdout.write(out.map((l) => l + '\n').join(''));
    });
}
