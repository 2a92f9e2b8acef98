// The extended rules in force: rules.d (deployed, read-only here) and the imported file (the
// service's own, written by `import_rules`). Loaded together on start and SIGHUP; a bad file or
// rule is skipped and reported, never fatal, and never takes the other rules with it.
import { writeFileAtomic, readFileNoFollow } from '../../common/safeFile.js';
import type { StoreLogger } from '../config.js';
import { ruleIdentity, ruleToJson, type ExtendedRule, type UserLookup } from './extendedRule.js';
import { ExtendedRuleSet } from './extendedRuleSet.js';
import { DEFAULT_RULES_FILE_MAX_BYTES, loadRulesDir, parseRulesText, passwdLookup } from './rulesDir.js';

export const DEFAULT_IMPORTED_RULES_PATH = '/etc/bastion/rules.imported.json';

export interface ExtendedRulesStoreOptions {
  /** rules.d; null: none. */
  dir: string | null;
  /** The service's own rules file in the rules.d format; null: importing is refused. */
  importedPath: string | null;
  lookupUser?: () => UserLookup;
  logger?: StoreLogger;
  onChange?: () => void;
}

export interface ExtendedLoadResult {
  count: number;
  files: number;
  errors: string[];
}

export type ImportOutcome = { rule: ExtendedRule; result: 'added' | 'replaced' | 'unchanged' } | { rule: ExtendedRule; result: 'refused'; error: string };

export class ExtendedRulesStore {
  private deployed: ExtendedRule[] = [];
  private imported: ExtendedRule[] = [];
  private current = new ExtendedRuleSet([]);
  private errors: string[] = [];
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: ExtendedRulesStoreOptions) {}

  /** Read at each use: a reload or an import replaces it. */
  get rules(): ExtendedRuleSet {
    return this.current;
  }

  /** rules.d's rules then the imported ones, as loaded, with their sources. */
  listed(): { deployed: readonly ExtendedRule[]; imported: readonly ExtendedRule[]; errors: readonly string[] } {
    return { deployed: this.deployed, imported: this.imported, errors: this.errors };
  }

  load(): Promise<ExtendedLoadResult> {
    return this.serialized(async () => {
      const lookup = (this.opts.lookupUser ?? passwdLookup)();
      const dir = this.opts.dir === null ? { rules: [], errors: [], files: 0 } : await loadRulesDir(this.opts.dir, lookup);
      const errors = [...dir.errors];
      let imported: ExtendedRule[] = [];
      let files = dir.files;
      if (this.opts.importedPath !== null) {
        const read = await readFileNoFollow(this.opts.importedPath, DEFAULT_RULES_FILE_MAX_BYTES);
        if (read.ok) {
          const parsed = parseRulesText(read.text, this.opts.importedPath, lookup);
          imported = parsed.rules;
          errors.push(...parsed.errors);
          files++;
        } else if (read.reason !== 'missing') {
          errors.push(`${this.opts.importedPath}: ${read.error}; file skipped`);
        }
      }
      if (errors.length > 0) this.opts.logger?.warn({ dir: this.opts.dir, errors }, 'extended rules skipped');
      this.deployed = dir.rules;
      this.imported = imported;
      this.errors = errors;
      this.rebuild();
      return { count: this.current.size, files, errors };
    });
  }

  /**
   * Adds rules to the imported file, idempotently: a rule already in force with the same
   * criteria and action is unchanged; one with other criteria is added; an imported one with the
   * same criteria takes the new action. A rule that contradicts rules.d is refused: those are the
   * administrator's, changed only where they are deployed.
   */
  importRules(rules: readonly ExtendedRule[]): Promise<{ ok: true; outcomes: ImportOutcome[] } | { ok: false; error: string }> {
    return this.serialized(async () => {
      if (this.opts.importedPath === null) return { ok: false as const, error: 'this service keeps no imported rules (--imported-rules none)' };
      const deployed = new Map(this.deployed.map((r) => [ruleIdentity(r), r]));
      const next = [...this.imported];
      const outcomes: ImportOutcome[] = [];
      const indexOf = new Map(next.map((r, i) => [ruleIdentity(r), i]));
      for (const rule of rules) {
        const identity = ruleIdentity(rule);
        const admin = deployed.get(identity);
        if (admin !== undefined) {
          if (admin.action === rule.action) outcomes.push({ rule, result: 'unchanged' });
          else outcomes.push({ rule, result: 'refused', error: `${admin.source} ${admin.action}s the same connections` });
          continue;
        }
        const at = indexOf.get(identity);
        if (at === undefined) {
          indexOf.set(identity, next.length);
          next.push(rule);
          outcomes.push({ rule, result: 'added' });
        } else if (next[at]!.action === rule.action) {
          outcomes.push({ rule, result: 'unchanged' });
        } else {
          next[at] = rule;
          outcomes.push({ rule, result: 'replaced' });
        }
      }
      if (outcomes.every((o) => o.result === 'unchanged' || o.result === 'refused')) return { ok: true as const, outcomes };
      const path = this.opts.importedPath;
      try {
        await writeFileAtomic(path, JSON.stringify(next.map(ruleToJson), null, 2) + '\n', { mode: 0o640 });
      } catch (err) {
        return { ok: false as const, error: `${path} not saved: ${err instanceof Error ? err.message : String(err)}` };
      }
      // Re-labelled with their place in the file, as a reload would read them.
      this.imported = next.map((r, i) => ({ ...r, source: `${path}#${i + 1}` }));
      this.rebuild();
      return { ok: true as const, outcomes };
    });
  }

  private rebuild(): void {
    this.current = new ExtendedRuleSet([...this.deployed, ...this.imported]);
    this.opts.onChange?.();
  }

  private serialized<T>(task: () => Promise<T>): Promise<T> {
    const run = this.tail.then(task);
    this.tail = run.catch(() => undefined);
    return run;
  }
}

/** The rules that name a list nobody loaded, as `<source>: list "<name>"` lines. */
export function unknownLists(rules: readonly ExtendedRule[], known: (name: string) => boolean): string[] {
  return rules.filter((r) => r.list !== undefined && !known(r.list)).map((r) => `${r.source}: list "${r.list!}" is not in lists.d; the rule matches nothing`);
}
