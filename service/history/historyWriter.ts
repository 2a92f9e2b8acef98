// Keeps every decision in the history file, off the verdict path: a decision is only pushed to
// an array; a timer writes what gathered in one transaction (multi-row INSERTs, run on libuv's
// thread pool by the sqlite3 addon), and now and then removes what is older than the retention
// or beyond the size cap. A file that is not a usable history (corrupt, not SQLite, another
// schema) is moved aside with an error line and a new one is started: the history never stops
// the service, and nothing here throws into the decider.
import { closeSync, constants, lstatSync, openSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import { closeDatabase, COLUMNS, exec, openDatabase, run, all, SCHEMA, SCHEMA_VERSION, HistoryError, type Db, type HistoryRow } from '../../common/history.js';
import type { Logger } from '../../common/log.js';
import type { DecisionEvent } from '../decider.js';

export interface HistoryWriterOptions {
  path: string;
  /** config.json history_max_entries: the size cap (0: no history is written). */
  maxEntries: () => number;
  /** config.json history_retention_days. */
  retentionDays: () => number;
  log: Logger;
  /** How often gathered decisions are written. */
  flushMs?: number;
  /** Decisions waiting to be written at most; beyond, new ones are counted as dropped. */
  maxPending?: number;
  /** How often old entries are removed. */
  pruneMs?: number;
  now?: () => number;
}

/** Rows per INSERT: 13 parameters each, well under SQLite's 32766 variables. */
const ROWS_PER_INSERT = 500;
/** Codes that say the file is not a usable history. */
const UNUSABLE = new Set(['SQLITE_CORRUPT', 'SQLITE_NOTADB']);

export class HistoryWriter {
  private db: Db | null = null;
  private pending: unknown[][] = [];
  private flushing: Promise<void> | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  private pruneTimer: NodeJS.Timeout | null = null;
  private readonly now: () => number;
  /** Decisions not kept because writing fell behind (or the file could not be written). */
  dropped = 0;
  written = 0;

  constructor(private readonly options: HistoryWriterOptions) {
    this.now = options.now ?? Date.now;
  }

  /**
   * Opens (or creates) the file. False, with a log line saying why, when there will be no
   * history this run: its directory is missing or not a real directory, the file is a link.
   */
  async open(): Promise<boolean> {
    const path = this.options.path;
    const dir = dirname(path);
    try {
      if (!lstatSync(dir).isDirectory()) throw new Error(`${dir} is not a directory`);
    } catch (err) {
      this.options.log.info({ path, reason: (err as Error).message }, 'no decision history: its directory is not there');
      return false;
    }
    try {
      this.createFile(path);
      this.db = await this.openChecked(path);
    } catch (err) {
      if (err instanceof HistoryError && UNUSABLE.has(err.code)) {
        this.moveAside(path, err.message);
        try {
          this.createFile(path);
          this.db = await this.openChecked(path);
        } catch (again) {
          this.options.log.error({ path, err: again }, 'no decision history: a new file could not be started');
          return false;
        }
      } else {
        this.options.log.error({ path, err }, 'no decision history: the file could not be opened');
        return false;
      }
    }
    const flushMs = this.options.flushMs ?? 500;
    this.flushTimer = setInterval(() => void this.flush(), flushMs);
    this.flushTimer.unref();
    this.pruneTimer = setInterval(() => void this.prune(), this.options.pruneMs ?? 60_000);
    this.pruneTimer.unref();
    void this.prune();
    return true;
  }

  /** The verdict path's only cost: one array push. */
  add(e: DecisionEvent): void {
    if (this.db === null || this.options.maxEntries() === 0) return;
    if (this.pending.length >= (this.options.maxPending ?? 50_000)) {
      this.dropped++;
      return;
    }
    this.pending.push([
      e.at,
      e.pid,
      e.uid >= 0 ? e.uid : null,
      e.exe ?? 'unknown',
      e.comm,
      e.host ?? null,
      e.destIp,
      e.port,
      e.protocol,
      e.allow ? 1 : 0,
      e.reason,
      e.ruleKey,
      e.connections,
    ]);
  }

  /** Writes what gathered, in one transaction. Concurrent calls share one write. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.db === null || this.pending.length === 0) return Promise.resolve();
    const rows = this.pending;
    this.pending = [];
    const db = this.db;
    this.flushing = this.write(db, rows)
      .then(() => {
        this.written += rows.length;
      })
      .catch((err: unknown) => this.writeFailed(err, rows.length))
      .finally(() => {
        this.flushing = null;
      });
    return this.flushing;
  }

  /** Removes decisions older than the retention, then the oldest beyond the size cap. */
  async prune(): Promise<void> {
    const db = this.db;
    if (db === null) return;
    await this.flushing;
    try {
      await run(db, 'DELETE FROM decisions WHERE at < ?', [this.now() - this.options.retentionDays() * 86_400_000]);
      const [top] = await all<{ maxId: number | null }>(db, 'SELECT max(id) AS maxId FROM decisions');
      const cap = this.options.maxEntries();
      if (top?.maxId != null) await run(db, 'DELETE FROM decisions WHERE id <= ?', [top.maxId - cap]);
    } catch (err) {
      this.options.log.warn({ err }, 'old decisions could not be removed from the history');
    }
  }

  async close(): Promise<void> {
    if (this.flushTimer) clearInterval(this.flushTimer);
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    await this.flushing; // a write under way, then what gathered since
    await this.flush();
    const db = this.db;
    this.db = null;
    if (db) await closeDatabase(db);
  }

  private async write(db: Db, rows: unknown[][]): Promise<void> {
    await exec(db, 'BEGIN');
    try {
      for (let i = 0; i < rows.length; i += ROWS_PER_INSERT) {
        const chunk = rows.slice(i, i + ROWS_PER_INSERT);
        const one = `(${COLUMNS.map(() => '?').join(',')})`;
        await run(db, `INSERT INTO decisions (${COLUMNS.join(',')}) VALUES ${chunk.map(() => one).join(',')}`, chunk.flat());
      }
      await exec(db, 'COMMIT');
    } catch (err) {
      await exec(db, 'ROLLBACK').catch(() => undefined);
      throw err;
    }
  }

  private writeFailed(err: unknown, lost: number): void {
    this.dropped += lost;
    if (err instanceof HistoryError && UNUSABLE.has(err.code)) {
      // Start over with a new file; decisions already gathered meanwhile are kept.
      const db = this.db;
      this.db = null;
      void (async () => {
        if (db) await closeDatabase(db);
        this.moveAside(this.options.path, err.message);
        try {
          this.createFile(this.options.path);
          this.db = await this.openChecked(this.options.path);
        } catch (again) {
          this.options.log.error({ err: again }, 'no decision history from now on: a new file could not be started');
        }
      })();
      return;
    }
    this.options.log.warn({ err, lost }, 'decisions could not be written to the history');
  }

  /** A new file, 0640, created here and never through a link (O_EXCL|O_NOFOLLOW). */
  private createFile(path: string): void {
    try {
      closeSync(openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o640));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const st = lstatSync(path);
      if (!st.isFile()) throw new Error(`${path} is not a regular file (a link?): refusing to use it`);
    }
  }

  /** Opens, checks the schema version, creates the tables. */
  private async openChecked(path: string): Promise<Db> {
    const db = await openDatabase(path, 'write');
    try {
      await exec(db, 'PRAGMA busy_timeout = 5000');
      const [version] = await all<{ user_version: number }>(db, 'PRAGMA user_version');
      const [tables] = await all<{ n: number }>(db, "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'");
      if (tables!.n > 0 && version!.user_version !== SCHEMA_VERSION) {
        throw new HistoryError(`schema version ${version!.user_version}, expected ${SCHEMA_VERSION}`, 'SQLITE_NOTADB');
      }
      await exec(db, SCHEMA);
      await exec(db, `PRAGMA user_version = ${SCHEMA_VERSION}`);
      return db;
    } catch (err) {
      await closeDatabase(db);
      throw err;
    }
  }

  private moveAside(path: string, why: string): void {
    const aside = `${path}.unusable-${new Date(this.now()).toISOString().replace(/[:.]/g, '-')}`;
    try {
      renameSync(path, aside);
      this.options.log.error({ path, movedTo: aside, why }, 'the decision history was not usable: moved aside, starting a new one');
    } catch (err) {
      this.options.log.error({ path, why, err }, 'the decision history is not usable and could not be moved aside');
    }
    for (const suffix of ['-journal', '-wal', '-shm']) {
      try {
        renameSync(path + suffix, aside + suffix);
      } catch {
        // not there
      }
    }
  }
}

export type { HistoryRow };
