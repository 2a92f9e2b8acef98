// `bastion check-config`: validates config.json, rules.json, rules.d (and the imported rules)
// and lists.d with the service's own loaders, exactly as a reload would read them (size limit,
// no symlinks, every bad key, rule and line named). Used by the package's install check and by
// bastion-reload-rules / bastion-reload-config before they replace a file. Exit code 0: every
// file named loads whole; 1: one does not load, or something in it would be skipped.
import type { Command } from 'commander';
import { visible } from '../common/visibleText.js';
import { ConfigStore, type ConfigLoadResult } from '../service/config.js';
import { RulesStore, type RulesLoadResult } from '../service/rules/rulesStore.js';
import { besideRules, DEFAULTS } from './defaults.js';
import { ExtendedRulesStore, unknownLists } from '../service/rules/extendedRulesStore.js';
import { HostLists } from '../service/lists/hostLists.js';

export interface CheckReport {
  ok: boolean;
  lines: string[];
}

export interface CheckPaths {
  config?: string;
  rules?: string;
  rulesDir?: string;
  importedRules?: string;
  listsDir?: string;
}

/** Checks the files named; with none named, every default (rules.d and lists.d beside rules.json). */
export async function checkConfigFiles(paths: CheckPaths): Promise<CheckReport> {
  const all = Object.values(paths).every((p) => p === undefined);
  const configPath = paths.config ?? (all ? DEFAULTS.configPath : undefined);
  const rulesPath = paths.rules ?? (all ? DEFAULTS.rulesPath : undefined);
  const beside = besideRules({ rules: paths.rules ?? DEFAULTS.rulesPath, ...paths });
  // A rules.json named alone may be a new file about to be installed: rules.d is checked when named, or by default.
  const rulesDir = paths.rulesDir ?? (all ? beside.rulesDir : undefined);
  const importedRules = paths.importedRules ?? (all ? beside.importedRulesPath : undefined);
  const listsDir = paths.listsDir ?? (all ? beside.listsDir : undefined);
  const lists = listsDir === undefined ? null : new HostLists({ dir: listsDir });
  const reports: CheckReport[] = [];
  if (configPath !== undefined) {
    const result = await new ConfigStore({ path: configPath }).load();
    reports.push(
      describe<Extract<ConfigLoadResult, { ok: true }>>(configPath, result, (r) =>
        r.missing ? 'not found; the defaults apply' : `ok (mode ${r.config.mode}, prompts time out after ${r.config.timeoutSeconds} s)`,
      ),
    );
  }
  if (rulesPath !== undefined) {
    const result = await new RulesStore({ path: rulesPath }).load();
    const report = describe<Extract<RulesLoadResult, { ok: true }>>(rulesPath, result, (r) => (r.missing ? 'not found; no rules' : `ok (${r.count} rules)`));
    // A repeated key is only a warning; a key or value that is skipped fails the check.
    if (result.ok && result.warnings.some((w) => w.startsWith('skipped'))) report.ok = false;
    reports.push(report);
  }
  if (rulesDir !== undefined || importedRules !== undefined) {
    const store = new ExtendedRulesStore({ dir: rulesDir ?? null, importedPath: importedRules ?? null });
    const loaded = await store.load();
    // A list is known when lists.d is checked too and has it.
    if (lists !== null) await lists.load();
    const missing = lists === null ? [] : unknownLists(store.rules.ordered, (name) => lists.has(name));
    const errors = [...loaded.errors, ...missing];
    reports.push({
      ok: errors.length === 0,
      lines: [
        ...errors.map((e) => `error: ${e}`),
        `${rulesDir ?? ''}${importedRules ? ` + ${importedRules}` : ''}: ${loaded.count} extended rules from ${loaded.files} files`,
      ],
    });
  }
  if (lists !== null) {
    const loaded = await lists.load();
    const names = loaded.lists.map((l) => `${l.name} (${l.names + l.addresses} entries)`).join(', ');
    reports.push({ ok: loaded.errors.length === 0, lines: [...loaded.errors.map((e) => `error: ${e}`), `${listsDir!}: ${names || 'no lists'}`] });
  }
  return { ok: reports.every((r) => r.ok), lines: reports.flatMap((r) => r.lines) };
}

/** One file's lines: the error, or its warnings and then what was loaded. */
function describe<T extends { ok: true; warnings: string[] }>(
  path: string,
  result: T | { ok: false; error: string },
  loaded: (result: T) => string,
): CheckReport {
  if (!result.ok) return { ok: false, lines: [`${path}: invalid: ${result.error}`] };
  return { ok: true, lines: [...result.warnings.map((w) => `${path}: warning: ${w}`), `${path}: ${loaded(result)}`] };
}

export function registerCheckConfigCommand(program: Command): void {
  program
    .command('check-config')
    .description(`validate config.json, rules.json, rules.d and lists.d (every default when none is named); exit code 0, or 1 when anything would be skipped`)
    .option('--config <path>', `config.json to check (default ${DEFAULTS.configPath})`)
    .option('--rules <path>', `rules.json to check (default ${DEFAULTS.rulesPath}); also checks rules.d and lists.d beside it`)
    .option('--rules-dir <dir>', 'rules.d to check')
    .option('--imported-rules <path>', 'imported rules to check')
    .option('--lists-dir <dir>', 'lists.d to check')
    .action(async (opts: CheckPaths) => {
      const report = await checkConfigFiles(opts);
      const out = report.ok ? process.stdout : process.stderr;
      // Warnings quote rules.json keys, which name paths programs chose: shown escaped.
      for (const line of report.lines) out.write(`${visible(line)}\n`);
      process.exitCode = report.ok ? 0 : 1;
    });
}
