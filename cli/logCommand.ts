// `bastion log`: searches the decision history the service keeps (common/history.ts). Opens the
// file read-only; who may read it is who may read /var/lib/bastion (root and group bastion,
// docs/SECURITY.md).
import type { Command } from 'commander';
import {
  closeDatabase,
  countDecisions,
  DEFAULT_HISTORY_PATH,
  findDecisions,
  HistoryError,
  MAX_LIMIT,
  openDatabase,
  type HistoryQuery,
  type HistoryRow,
} from '../common/history.js';
import { visible, visibleJson } from '../common/visibleText.js';
import { colorsFor } from './colors.js';
import { formatDecision } from './decisionLine.js';
import { userLabel, userNames } from './userNames.js';

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
      let total: number | null | undefined;
      try {
        const db = await openDatabase(opts.history, 'read');
        try {
          const found = await findDecisions(db, query);
          rows = found.rows;
          if (found.more) total = await countDecisions(db, query, COUNT_BUDGET_MS);
        } finally {
          await closeDatabase(db);
        }
      } catch (err) {
        const why =
          err instanceof HistoryError && err.code === 'SQLITE_CANTOPEN'
            ? `cannot read ${opts.history} (no history yet, or you are not in group bastion)`
            : (err as Error).message;
        process.stderr.write(`bastion: ${why}\n`);
        process.exit(1);
      }
      // Said before the rows: a reader that stops early (`| head`) still had the warning.
      if (total !== undefined) process.stderr.write(colorsFor(process.stderr).dim(limitNote(query.limit, total)) + '\n');
      if (opts.json) {
        process.stdout.write(rows.map((r) => visibleJson(rowJson(r)) + '\n').join(''));
        return;
      }
      const c = colorsFor(process.stdout);
      const names = await userNames(rows.flatMap((r) => (r.uid === null ? [] : [r.uid])));
      // The user column is as wide as its widest entry, so the verdicts line up.
      const users = rows.map((r) => visible(userLabel(r.uid, names)));
      const width = Math.max(0, ...users.map((u) => u.length));
      const out: string[] = [];
      rows.forEach((r, i) => {
        // The same line as `bastion monitor` (the host beside the address), after the date, with the user.
        const m = { ...rowJson(r), missed: 0 } as Parameters<typeof formatDecision>[0];
        out.push(`${c.dim(m.time.slice(0, 10))} ${formatDecision(m, c, users[i]!.padEnd(width)).join('\n')}`);
      });
      if (rows.length === 0) process.stderr.write(c.dim('no decisions match') + '\n');
      process.stdout.write(out.map((l) => l + '\n').join(''));
    });
}

/** How long `bastion log` may spend counting what its limit left out; beyond, it says "more". */
const COUNT_BUDGET_MS = 100;

/** What stderr says when the limit cut the result: `total` matched in all, null when not counted. */
export function limitNote(limit: number, total: number | null): string {
  if (total === null) return `showing the newest ${limit} matching decisions; more exist: a larger --limit (at most ${MAX_LIMIT}) shows them`;
  return `showing the newest ${limit} of ${total} matching decisions; --limit ${Math.min(total, MAX_LIMIT)} for more`;
}
