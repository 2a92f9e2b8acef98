// `bastion config get [KEY]` and `bastion config set KEY VALUE`: config.json through the running
// service (GUI socket messages get_config / set_config, docs/gui-extensions.md). The service
// checks every value with the parser that reads config.json, asks polkit as for a rule change,
// saves the file atomically and puts it in force at once.
import type { Command } from 'commander';
import { visible, visibleJson } from '../common/visibleText.js';
import { requestOrExit } from './commandRequests.js';
import { AUTHORIZED_REPLY_MS } from './guiClient.js';
import { DEFAULTS } from './defaults.js';

/**
 * A value as typed: JSON where it is JSON (true, 30, "x"), else the text itself, so that
 * `set mode learning` needs no quotes and `set allow_lan yes` reaches the parser as "yes".
 */
export function parseValue(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** `key  value` lines, the values as config.json has them (strings without quotes). */
export function configLines(config: Record<string, unknown>): string {
  const width = Math.max(0, ...Object.keys(config).map((k) => k.length));
  return Object.entries(config)
    .map(([k, v]) => `${visible(k.padEnd(width))}  ${shown(v)}\n`)
    .join('');
}

function shown(value: unknown): string {
  return visible(typeof value === 'string' ? value : JSON.stringify(value));
}

export function registerConfigCommand(program: Command): void {
  const socketOption = ['--socket <path>', 'GUI socket path', DEFAULTS.guiSocketPath] as const;
  const config = program.command('config').description('show or change config.json through the service (changes are authorized like rule edits)');
  config
    .command('get [key]')
    .description('every key in force, or the value of one')
    .option(...socketOption)
    .option('--json', 'print JSON')
    .action(async (key: string | undefined, opts: { socket: string; json?: boolean }) => {
      const reply = await requestOrExit(opts.socket, { type: 'get_config', ...(key !== undefined && { key }) }, 'config', { client: 'bastion config' });
      const values = reply['config'] as Record<string, unknown>;
      if (opts.json) process.stdout.write(visibleJson(key === undefined ? values : values[key], 2) + '\n');
      else if (key !== undefined) process.stdout.write(shown(values[key]) + '\n');
      else process.stdout.write(configLines(values));
    });
  config
    .command('set <key> <value>')
    .description('change one key: checked as config.json is, saved, in force at once')
    .option(...socketOption)
    .action(async (key: string, value: string, opts: { socket: string }) => {
      const reply = await requestOrExit(opts.socket, { type: 'set_config', key, value: parseValue(value) }, 'config_changed', {
        timeoutMs: AUTHORIZED_REPLY_MS,
        client: 'bastion config',
      });
      for (const warning of (reply['warnings'] as unknown[] | undefined) ?? []) process.stderr.write(`bastion: warning: ${visible(String(warning))}\n`);
    });
}
