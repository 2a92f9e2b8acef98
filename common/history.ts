// The decision history (an SQLite file in the service's state directory): its schema, how it
// is opened without following symlinks, and the search `bastion log` runs. The service writes
// it (service/history/historyWriter.ts); `bastion log` only ever opens it read-only.
//
// SQLite through the `sqlite3` package: an N-API addon, so one build loads on Debian 12's
// nodejs 18 and on newer Node alike (better-sqlite3 is built per Node ABI). The package build
// links it against Debian's libsqlite3 (debian/rules).
import type * as Sqlite3 from 'sqlite3';
import type { Database as SqliteDatabase } from 'sqlite3';
import type { HistoryRow } from './historyRow.js';

export type { HistoryRow };

/** The service's state directory (systemd's StateDirectory=bastion). */
export const DEFAULT_STATE_DIR = '/var/lib/bastion';
export const DEFAULT_HISTORY_PATH = `${DEFAULT_STATE_DIR}/history.sqlite`;

/** SQLITE_OPEN_NOFOLLOW (SQLite 3.31+): the file must not be a symbolic link. */
const OPEN_NOFOLLOW = 0x01000000;
const OPEN_READONLY = 0x00000001;
const OPEN_READWRITE = 0x00000002;
const OPEN_CREATE = 0x00000004;

/** Schema version in PRAGMA user_version; a file with another version is moved aside. */
export const SCHEMA_VERSION = 1;

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS decisions (
  id INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  pid INTEGER NOT NULL,
  uid INTEGER,
  program TEXT NOT NULL,
  comm TEXT,
  host TEXT,
  dest TEXT NOT NULL,
  port INTEGER NOT NULL,
  protocol TEXT NOT NULL,
  allow INTEGER NOT NULL,
  reason TEXT NOT NULL,
  rule TEXT,
  connections INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_at ON decisions (at);
CREATE INDEX IF NOT EXISTS decisions_program ON decisions (program);
CREATE INDEX IF NOT EXISTS decisions_comm ON decisions (comm);
`;

export const COLUMNS = ['at', 'pid', 'uid', 'program', 'comm', 'host', 'dest', 'port', 'protocol', 'allow', 'reason', 'rule', 'connections'] as const;

export type Db = SqliteDatabase;

/** Loads the addon only when the history is used (the helper never needs it). */
async function sqlite(): Promise<typeof Sqlite3> {
  const mod = (await import('sqlite3')) as typeof Sqlite3 & { default?: typeof Sqlite3 };
  return mod.default ?? mod;
}

export class HistoryError extends Error {
  constructor(
    message: string,
    /** SQLite's code, e.g. SQLITE_CORRUPT, SQLITE_NOTADB, SQLITE_CANTOPEN. */
    readonly code: string,
  ) {
    super(message);
  }
}

function wrap(err: Error & { code?: string }, what: string): HistoryError {
  return new HistoryError(`${what}: ${err.message}`, err.code ?? 'SQLITE_ERROR');
}

export async function openDatabase(path: string, mode: 'read' | 'write'): Promise<Db> {
  const { Database } = await sqlite();
  const flags = OPEN_NOFOLLOW | (mode === 'read' ? OPEN_READONLY : OPEN_READWRITE | OPEN_CREATE);
  return new Promise((resolve, reject) => {
    const db: Db = new Database(path, flags, (err) => (err ? reject(wrap(err, `cannot open ${path}`)) : resolve(db)));
  });
}

export function exec(db: Db, sql: string): Promise<void> {
  return new Promise((resolve, reject) => db.exec(sql, (err) => (err ? reject(wrap(err, 'history')) : resolve())));
}

export function run(db: Db, sql: string, params: unknown[] = []): Promise<void> {
  return new Promise((resolve, reject) => db.run(sql, params, (err) => (err ? reject(wrap(err, 'history')) : resolve())));
}

export function all<T>(db: Db, sql: string, params: unknown[] = []): Promise<T[]> {
  return new Promise((resolve, reject) => db.all(sql, params, (err, rows) => (err ? reject(wrap(err, 'history')) : resolve(rows as T[]))));
}

export function closeDatabase(db: Db): Promise<void> {
  return new Promise((resolve) => db.close(() => resolve()));
}

export interface HistoryQuery {
  /** Milliseconds since the epoch: only decisions at or after. */
  since?: number;
  /** An executable path (with a "/"), else a process name. */
  program?: string;
  /** A host name (also matches its subdomains) or a destination address. */
  host?: string;
  verdict?: 'allow' | 'deny';
  /** The newest this many; printed oldest first. */
  limit: number;
}

export const MAX_LIMIT = 100_000;

/** The WHERE clause of a query (empty when it has no filter) and its parameters. */
function whereOf(q: HistoryQuery): { sql: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  if (q.since !== undefined) {
    where.push('at >= ?');
    params.push(q.since);
  }
  if (q.program !== undefined) {
    where.push(q.program.includes('/') ? 'program = ?' : 'comm = ?');
    params.push(q.program);
  }
  if (q.host !== undefined) {
    // "example.org" also finds www.example.org; an address finds that destination.
    where.push("(host = ? OR host LIKE ? ESCAPE '\\' OR dest = ?)");
    params.push(q.host, `%.${q.host.replace(/[\\%_]/g, (ch) => `\\${ch}`)}`, q.host);
  }
  if (q.verdict !== undefined) {
    where.push('allow = ?');
    params.push(q.verdict === 'allow' ? 1 : 0);
  }
  return { sql: where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '', params };
}

function clampLimit(limit: number): number {
  return Math.min(Math.max(1, Math.floor(limit)), MAX_LIMIT);
}

/**
 * The newest `limit` decisions that match, oldest first, and whether older ones match too (one
 * row more is read to know: the limit cut the result).
 */
export async function findDecisions(db: Db, q: HistoryQuery): Promise<{ rows: HistoryRow[]; more: boolean }> {
  const { sql, params } = whereOf(q);
  const limit = clampLimit(q.limit);
  const rows = await all<Omit<HistoryRow, 'allow'> & { allow: number }>(db, `SELECT ${COLUMNS.join(', ')} FROM decisions${sql} ORDER BY id DESC LIMIT ?`, [
    ...params,
    limit + 1,
  ]);
  const more = rows.length > limit;
  if (more) rows.pop();
  return { rows: rows.reverse().map((r) => ({ ...r, allow: r.allow === 1 })), more };
}

/** The newest `limit` decisions that match, oldest first. */
export async function searchHistory(db: Db, q: HistoryQuery): Promise<HistoryRow[]> {
  return (await findDecisions(db, q)).rows;
}

/**
 * How many decisions match (the limit aside), or null when counting takes longer than budgetMs
 * and was stopped. Most counts are cheap (a million decisions: under 20 ms by time, program or
 * no filter), but a host or verdict filter reads every row (about 0.2 s for a million).
 */
export async function countDecisions(db: Db, q: HistoryQuery, budgetMs: number): Promise<number | null> {
  const { sql, params } = whereOf(q);
  // sqlite3_interrupt does nothing while the statement is still being prepared: so it is
  // repeated until the count ends.
  let repeat: NodeJS.Timeout | undefined;
  const timer = setTimeout(() => {
    db.interrupt();
    repeat = setInterval(() => db.interrupt(), 5);
  }, budgetMs);
  try {
    const rows = await all<{ n: number }>(db, `SELECT count(*) AS n FROM decisions${sql}`, params);
    return rows[0]?.n ?? 0;
  } catch (err) {
    if (err instanceof HistoryError && err.code === 'SQLITE_INTERRUPT') return null;
    throw err;
  } finally {
    clearTimeout(timer);
    clearInterval(repeat);
  }
}
