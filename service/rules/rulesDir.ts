// rules.d (docs/rules.md): files of extended rules that a configuration-management tool
// deploys, read-only to the GUI. Each `*.json` file is a JSON array of rule objects. A file
// that is not readable or not an array is skipped whole; a bad rule is skipped alone. Every skip
// is an error line naming the file and the rule, so `bastion check-config` can fail on it.
import { readFileSync } from 'node:fs';
import fsp from 'node:fs/promises';
import { join } from 'node:path';
import { readFileNoFollow } from '../../common/safeFile.js';
import { parseExtendedRule, type ExtendedRule, type UserLookup } from './extendedRule.js';

export const DEFAULT_RULES_DIR = '/etc/bastion/rules.d';
export const DEFAULT_RULES_FILE_MAX_BYTES = 4 * 1024 * 1024;
/** More files than this in rules.d is a mistake (a wrong directory), not a policy. */
export const MAX_RULES_FILES = 1000;
/** Rules per file: a rule is matched per connection in order, so thousands belong in a list. */
export const MAX_RULES_PER_FILE = 10_000;

export interface RulesParseResult {
  rules: ExtendedRule[];
  /** One line per file or rule skipped. */
  errors: string[];
}

export interface RulesDirResult extends RulesParseResult {
  files: number;
}

/** Parses a rules.d file's text; `label` names it in sources and errors. */
export function parseRulesText(text: string, label: string, lookupUser: UserLookup): RulesParseResult {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { rules: [], errors: [`${label}: not valid JSON (${err instanceof Error ? err.message : String(err)}); file skipped`] };
  }
  if (!Array.isArray(json)) return { rules: [], errors: [`${label}: must be a JSON array of rules; file skipped`] };
  if (json.length > MAX_RULES_PER_FILE) return { rules: [], errors: [`${label}: ${json.length} rules, more than ${MAX_RULES_PER_FILE}; file skipped`] };
  const rules: ExtendedRule[] = [];
  const errors: string[] = [];
  json.forEach((value, i) => {
    const parsed = parseExtendedRule(value, `${label}#${i + 1}`, lookupUser);
    if (parsed.ok) rules.push(parsed.rule);
    else errors.push(`${parsed.error}; rule skipped`);
  });
  return { rules, errors };
}

/** Loads every `*.json` file of dir in name order. A missing directory holds no rules. */
export async function loadRulesDir(dir: string, lookupUser: UserLookup, maxBytes = DEFAULT_RULES_FILE_MAX_BYTES): Promise<RulesDirResult> {
  const names = await listDirFiles(dir);
  if (!names.ok) return { rules: [], errors: names.errors, files: 0 };
  const out: RulesDirResult = { rules: [], errors: [], files: 0 };
  for (const name of names.files) {
    const path = join(dir, name);
    const read = await readFileNoFollow(path, maxBytes);
    if (!read.ok) {
      out.errors.push(`${path}: ${read.error}; file skipped`);
      continue;
    }
    out.files++;
    const parsed = parseRulesText(read.text, path, lookupUser);
    out.rules.push(...parsed.rules);
    out.errors.push(...parsed.errors);
  }
  return out;
}

/** The names of a directory's regular-looking `*.json` entries, sorted; a symlinked directory is refused. */
export async function listDirFiles(dir: string, suffix = '.json'): Promise<{ ok: true; files: string[] } | { ok: false; errors: string[] }> {
  try {
    const st = await fsp.lstat(dir);
    if (st.isSymbolicLink()) return { ok: false, errors: [`${dir} is a symlink; refusing to follow it`] };
    if (!st.isDirectory()) return { ok: false, errors: [`${dir} is not a directory`] };
    const names = (await fsp.readdir(dir)).filter((n) => n.endsWith(suffix) && !n.startsWith('.')).sort();
    if (names.length > MAX_RULES_FILES) return { ok: false, errors: [`${dir}: ${names.length} files, more than ${MAX_RULES_FILES}; none read`] };
    return { ok: true, files: names };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { ok: true, files: [] };
    return { ok: false, errors: [`${dir}: ${err instanceof Error ? err.message : String(err)}`] };
  }
}

/** User names from a passwd file, read once per call (a load of rules.d). */
export function passwdLookup(path = '/etc/passwd'): UserLookup {
  let byName: Map<string, number> | null = null;
  return (name) => {
    if (byName === null) {
      byName = new Map();
      let text = '';
      try {
        text = readFileSync(path, 'utf8');
      } catch {
        // No passwd file: only numeric uids can be named.
      }
      for (const line of text.split('\n')) {
        const f = line.split(':');
        if (f.length >= 3 && /^[0-9]+$/.test(f[2]!) && f[0] && !byName.has(f[0])) byName.set(f[0], Number(f[2]));
      }
    }
    return byName.get(name) ?? null;
  };
}
