// lists.d (docs/rules.md, "Lists"): each file is one host/IP list named after the file
// (`ads.list` -> `ads`), in hosts-file format (`0.0.0.0 ads.example.com`) or one name, address
// or block per line, `#` comments. Loaded at start, on SIGHUP and when the directory changes
// (fs.watch, debounced). Parsing yields to the event loop between chunks, so verdicts keep
// flowing while a million-line list loads; the lists in force are replaced only when the new
// ones are complete. A bad line is counted and skipped; an unreadable file keeps nothing of it.
import { watch, type FSWatcher } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { readFileNoFollow } from '../../common/safeFile.js';
import type { StoreLogger } from '../config.js';
import type { ListLookup } from '../rules/processFacts.js';
import { listDirFiles } from '../rules/rulesDir.js';
import { HostList } from './hostList.js';

/** A list file larger than this is refused before it is read (1,000,000 entries take ~30 MB). */
export const DEFAULT_LIST_MAX_BYTES = 256 * 1024 * 1024;
/** Lines parsed between two yields to the event loop: 10-35 ms of work at the 2-7 µs a line bench/lists.ts measured. */
const LINES_PER_CHUNK = 5_000;
const WATCH_DEBOUNCE_MS = 1000;
const LIST_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface ListsLoadResult {
  lists: { name: string; file: string; names: number; addresses: number; badLines: number }[];
  /** One line per file skipped or per file with bad lines. */
  errors: string[];
}

export interface HostListsOptions {
  dir: string;
  maxBytes?: number;
  logger?: StoreLogger & { info(obj: object, msg?: string): void };
  onChange?: () => void;
}

export class HostLists implements ListLookup {
  private current = new Map<string, HostList>();
  private watcher: FSWatcher | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private tail: Promise<unknown> = Promise.resolve();
  lastResult: ListsLoadResult = { lists: [], errors: [] };

  constructor(private readonly opts: HostListsOptions) {}

  contains(name: string, destAddr: Uint8Array, host: string | undefined): boolean {
    const list = this.current.get(name);
    if (list === undefined) return false;
    return list.hasAddress(destAddr) || (host !== undefined && list.hasName(host));
  }

  has(name: string): boolean {
    return this.current.has(name);
  }

  load(): Promise<ListsLoadResult> {
    const run = this.tail.then(() => this.loadNow());
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async loadNow(): Promise<ListsLoadResult> {
    const dir = this.opts.dir;
    const result: ListsLoadResult = { lists: [], errors: [] };
    const files = await listDirFiles(dir, '');
    if (!files.ok) {
      result.errors.push(...files.errors);
      return this.install(new Map(), result);
    }
    const next = new Map<string, HostList>();
    for (const file of files.files) {
      const path = join(dir, file);
      const name = basename(file, extname(file));
      if (!LIST_NAME.test(name)) {
        result.errors.push(`${path}: "${name}" is not a list name (letters, digits, '.', '_', '-'); file skipped`);
        continue;
      }
      if (next.has(name)) {
        result.errors.push(`${path}: another file already makes list "${name}"; file skipped`);
        continue;
      }
      const read = await readFileNoFollow(path, this.opts.maxBytes ?? DEFAULT_LIST_MAX_BYTES);
      if (!read.ok) {
        result.errors.push(`${path}: ${read.error}; file skipped`);
        continue;
      }
      const list = await parseList(read.text);
      next.set(name, list);
      const s = list.stats;
      result.lists.push({ name, file: path, names: s.names, addresses: s.addresses, badLines: s.badLines });
      if (s.badLines > 0) result.errors.push(`${path}: ${s.badLines} bad lines skipped (${s.badSamples.map((l) => `line ${l}`).join('; ')})`);
    }
    return this.install(next, result);
  }

  private install(next: Map<string, HostList>, result: ListsLoadResult): ListsLoadResult {
    this.current = next;
    this.lastResult = result;
    if (result.errors.length > 0) this.opts.logger?.warn({ dir: this.opts.dir, errors: result.errors }, 'lists: lines or files skipped');
    this.opts.logger?.info({ dir: this.opts.dir, lists: result.lists.map((l) => `${l.name}:${l.names + l.addresses}`) }, 'lists loaded');
    this.opts.onChange?.();
    return result;
  }

  /** Reloads when a file in the directory changes, once things are quiet for a second. */
  watch(): void {
    if (this.watcher !== null) return;
    try {
      this.watcher = watch(this.opts.dir, { persistent: false }, () => {
        if (this.debounce) clearTimeout(this.debounce);
        this.debounce = setTimeout(() => void this.load(), WATCH_DEBOUNCE_MS);
        this.debounce.unref();
      });
      this.watcher.on('error', (err) => this.opts.logger?.warn({ dir: this.opts.dir, err }, 'lists: watching stopped; SIGHUP reloads'));
    } catch (err) {
      // No directory yet: SIGHUP reloads it once it exists.
      this.opts.logger?.warn({ dir: this.opts.dir, error: (err as Error).message }, 'lists: directory not watched; SIGHUP reloads');
    }
  }

  close(): void {
    this.watcher?.close();
    this.watcher = null;
    if (this.debounce) clearTimeout(this.debounce);
  }
}

/** Parses a list file's text, yielding to the event loop every LINES_PER_CHUNK lines. */
export async function parseList(text: string): Promise<HostList> {
  const list = new HostList();
  let start = 0;
  let lineNumber = 0;
  while (start < text.length) {
    for (let n = 0; n < LINES_PER_CHUNK && start < text.length; n++) {
      let end = text.indexOf('\n', start);
      if (end < 0) end = text.length;
      list.addLine(text.slice(start, end), ++lineNumber);
      start = end + 1;
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  return list;
}
