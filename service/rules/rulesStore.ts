// rules.json on disk (gui-protocol.md, "rules.json"): loaded without following symlinks,
// saved sorted and atomically, and never emptied or overwritten when it fails to load.
import { readFileNoFollow, writeFileAtomic } from '../../common/safeFile.js';
import type { WriteOptions } from '../../common/safeFile.js';
import { loadFailedReason, NOT_LOADED } from '../config.js';
import type { SaveResult, StoreLogger } from '../config.js';
import type { RulePort } from './ruleKey.js';
import { RuleSet } from './ruleSet.js';
import type { LastGoodCopy } from '../lastGoodCopy.js';

export const DEFAULT_RULES_MAX_BYTES = 4 * 1024 * 1024;
/** Owner writes, group `bastion` reads (the control panel lists rules over the socket, not the file). */
export const DEFAULT_RULES_FILE_MODE = 0o640;

export interface RulesStoreOptions {
  path: string;
  /** Files larger than this are refused before they are read. Default 4 MiB. */
  maxBytes?: number;
  /** Mode of the saved file. Default 0o640. */
  mode?: number;
  uid?: number;
  gid?: number;
  logger?: StoreLogger;
  /** Called whenever the rules in force are replaced (load, add, delete). */
  onChange?: () => void;
  /** Where the last rules that loaded are kept; a start with a broken file uses them. */
  lastGood?: LastGoodCopy;
}

export type RulesLoadResult = { ok: true; count: number; warnings: string[]; missing: boolean } | { ok: false; error: string; inForce: string };

export type SetRuleStoreResult = { ok: true; key: string } | { ok: false; error: string };
export type DeleteRuleResult = { ok: true; deleted: boolean } | { ok: false; error: string };

type SaveFailure = { ok: false; error: string };

/** What one edit did to the batch's copy of the rules. */
interface EditOutcome<T> {
  result: T;
  changed: boolean;
}

/** An edit waiting in a batch: applied to the batch's copy, then settled by the save's outcome. */
interface QueuedEdit {
  refuse(refusal: SaveFailure): void;
  apply(next: RuleSet): { changed: boolean; settle(failure: SaveFailure | null): void };
}

export class RulesStore {
  readonly path: string;
  private readonly maxBytes: number;
  private readonly writeOptions: WriteOptions;
  private readonly logger: StoreLogger | undefined;
  private current = new RuleSet();
  private readonly onChange: (() => void) | undefined;
  private readonly lastGood: LastGoodCopy | undefined;
  /** Whether any rules were ever put in force (a file, or the last good copy). */
  private loadedOnce = false;
  /** Why saving would destroy what is on disk; while set, every change is refused. */
  private saveBlocked: string | null = NOT_LOADED;
  private tail: Promise<unknown> = Promise.resolve();
  /** Edits waiting for their save; null when the next edit must start a new batch. */
  private openBatch: QueuedEdit[] | null = null;

  constructor(opts: RulesStoreOptions) {
    this.path = opts.path;
    this.maxBytes = opts.maxBytes ?? DEFAULT_RULES_MAX_BYTES;
    this.writeOptions = {
      mode: opts.mode ?? DEFAULT_RULES_FILE_MODE,
      ...(opts.uid !== undefined && { uid: opts.uid }),
      ...(opts.gid !== undefined && { gid: opts.gid }),
    };
    this.logger = opts.logger;
    this.onChange = opts.onChange;
    this.lastGood = opts.lastGood;
  }

  /**
   * The rules in force. A change or reload replaces the object, so read this at each use
   * rather than keeping it; change rules only through the store so they are saved.
   */
  get rules(): RuleSet {
    return this.current;
  }

  /** (Re)reads the file, e.g. on SIGHUP. A missing file means no rules; a bad one keeps the current rules. */
  load(): Promise<RulesLoadResult> {
    this.openBatch = null; // an edit made after this call applies to what it loads
    return this.serialized(async () => {
      const read = await readFileNoFollow(this.path, this.maxBytes);
      if (!read.ok && read.reason === 'missing') {
        this.replace(new RuleSet());
        this.saveBlocked = null;
        return { ok: true, count: 0, warnings: [], missing: true };
      }
      if (!read.ok) return this.keepPrevious(read.error);
      let json: unknown;
      try {
        json = JSON.parse(read.text);
      } catch (err) {
        return this.keepPrevious(`${this.path}: not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
      }
      const built = RuleSet.fromJSON(json);
      if (!built.ok) return this.keepPrevious(`${this.path}: ${built.error}`);
      if (built.warnings.length > 0) {
        this.logger?.warn({ path: this.path, warnings: built.warnings }, 'rules.json: entries skipped');
      }
      this.replace(built.rules);
      this.saveBlocked = null;
      await this.lastGood?.remember(read.text);
      return { ok: true, count: built.rules.size, warnings: built.warnings, missing: false };
    });
  }

  private replace(next: RuleSet): void {
    this.loadedOnce = true;
    this.current = next;
    this.onChange?.();
  }

  /** Writes the current rules. */
  save(): Promise<SaveResult> {
    this.openBatch = null;
    return this.serialized(async () => {
      const blocked = this.refusal();
      if (blocked !== null) return blocked;
      return this.write(this.current);
    });
  }

  /** Adds or replaces one rule and saves; on any failure the rules stay as they were. */
  setRule(subject: string, port: RulePort, allow: boolean): Promise<SetRuleStoreResult> {
    return this.edit<SetRuleStoreResult>((next) => {
      const set = next.set(subject, port, allow);
      return { result: set, changed: set.ok };
    });
  }

  /** Deletes as `delete_rule` asks (see RuleSet.deleteKey) and saves when something was removed. */
  deleteKey(key: string): Promise<DeleteRuleResult> {
    return this.edit<DeleteRuleResult>((next) => {
      const deleted = next.deleteKey(key);
      return { result: { ok: true, deleted }, changed: deleted };
    });
  }

  /**
   * Queues one edit. Edits that arrive while a save is in flight are applied together, in call
   * order, and written with one fsync'd save: 60 deletes from the control panel cost a few saves,
   * not 60. If that save fails, every edit of the batch gets the error and none of them applies.
   */
  private edit<T>(apply: (next: RuleSet) => EditOutcome<T>): Promise<T | SaveFailure> {
    return new Promise((resolve) => {
      if (this.openBatch === null) {
        const batch: QueuedEdit[] = [];
        this.openBatch = batch;
        void this.serialized(() => this.commit(batch));
      }
      this.openBatch.push({
        refuse: resolve,
        apply(next) {
          const outcome = apply(next);
          return {
            changed: outcome.changed,
            settle: (failure) => resolve(outcome.changed && failure !== null ? failure : outcome.result),
          };
        },
      });
    });
  }

  private async commit(batch: QueuedEdit[]): Promise<void> {
    if (this.openBatch === batch) this.openBatch = null; // later edits form the next batch
    const blocked = this.refusal();
    if (blocked !== null) {
      for (const queued of batch) queued.refuse(blocked);
      return;
    }
    const next = this.current.clone();
    const applied = batch.map((queued) => queued.apply(next));
    let failure: SaveFailure | null = null;
    if (applied.some((edit) => edit.changed)) {
      const saved = await this.write(next);
      if (saved.ok) this.replace(next);
      else failure = saved;
    }
    for (const edit of applied) edit.settle(failure);
  }

  private refusal(): SaveFailure | null {
    return this.saveBlocked === null ? null : { ok: false, error: `refusing to save ${this.path}: ${this.saveBlocked}` };
  }

  private async write(rules: RuleSet): Promise<SaveResult> {
    try {
      const text = JSON.stringify(rules.toJSON(), null, 2) + '\n';
      await writeFileAtomic(this.path, text, this.writeOptions);
      await this.lastGood?.remember(text);
      return { ok: true };
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      this.logger?.error({ path: this.path, error }, 'rules.json not saved');
      return { ok: false, error };
    }
  }

  /**
   * A file that does not load leaves the rules in force as they are; at start there are none
   * yet, so the last good copy is put in force instead. Either way the broken file is not
   * overwritten until it loads again.
   */
  private async keepPrevious(error: string): Promise<RulesLoadResult> {
    this.saveBlocked = loadFailedReason(error);
    if (this.loadedOnce) {
      this.logger?.error({ path: this.path, error, rules: this.current.size }, 'rules.json not loaded; keeping the rules in force');
      return { ok: false, error, inForce: 'the previous rules stay in force' };
    }
    const text = await this.lastGood?.recall(this.maxBytes);
    const copy = text === null || text === undefined ? null : RuleSet.fromJSON(safeParse(text));
    if (copy?.ok) {
      this.replace(copy.rules);
      this.logger?.error(
        { path: this.path, error, lastGood: this.lastGood?.path, rules: copy.rules.size },
        'rules.json not loaded at start; the last good copy is in force',
      );
      return { ok: false, error, inForce: `the last good copy (${copy.rules.size} rules, ${this.lastGood?.path}) is in force` };
    }
    this.logger?.error({ path: this.path, error }, 'rules.json not loaded at start and no last good copy: no rules in force');
    return { ok: false, error, inForce: 'no last good copy: no rules are in force' };
  }

  /** Loads and saves run one at a time, in call order, so two quick edits cannot interleave. */
  private serialized<T>(task: () => Promise<T>): Promise<T> {
    const run = this.tail.then(task);
    this.tail = run.catch(() => undefined);
    return run;
  }
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
