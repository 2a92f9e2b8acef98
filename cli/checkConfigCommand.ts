// `bastion check-config`: validates config.json and rules.json with the service's own stores,
// exactly as a reload would read them (size limit, no symlinks, every bad key named). Used by
// the package's install check and by bastion-reload-rules / bastion-reload-config before they
// replace a file. Exit code 0: every file named is usable; 1: one is not.
import type { Command } from 'commander';
import { visible } from '../common/visibleText.js';
import { ConfigStore, type ConfigLoadResult } from '../service/config.js';
import { RulesStore, type RulesLoadResult } from '../service/rules/rulesStore.js';
import { DEFAULTS } from './defaults.js';

export interface CheckReport {
  ok: boolean;
  lines: string[];
}

/** Checks the files named; with neither named, both default files. */
export async function checkConfigFiles(paths: { config?: string; rules?: string }): Promise<CheckReport> {
  const both = paths.config === undefined && paths.rules === undefined;
  const configPath = paths.config ?? (both ? DEFAULTS.configPath : undefined);
  const rulesPath = paths.rules ?? (both ? DEFAULTS.rulesPath : undefined);
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
    reports.push(describe<Extract<RulesLoadResult, { ok: true }>>(rulesPath, result, (r) => (r.missing ? 'not found; no rules' : `ok (${r.count} rules)`)));
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
    .description(`validate config.json and rules.json (both defaults when neither is named); exit code 0 or 1`)
    .option('--config <path>', `config.json to check (default ${DEFAULTS.configPath})`)
    .option('--rules <path>', `rules.json to check (default ${DEFAULTS.rulesPath})`)
    .action(async (opts: { config?: string; rules?: string }) => {
      const report = await checkConfigFiles(opts);
      const out = report.ok ? process.stdout : process.stderr;
      // Warnings quote rules.json keys, which name paths programs chose: shown escaped.
      for (const line of report.lines) out.write(`${visible(line)}\n`);
      process.exitCode = report.ok ? 0 : 1;
    });
}
