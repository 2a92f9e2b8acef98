// `bastion rules ...`: list, add, delete, export, import and suggest rules. rules.json edits
// go over the GUI socket as the GUI's own messages; extended rules (docs/rules.md) as the
// extension messages of docs/gui-extensions.md, authorized alike.
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolveProgramPath } from '../common/programPath.js';
import { closeDatabase, DEFAULT_HISTORY_PATH, HistoryError, openDatabase } from '../common/history.js';
import { visible, visibleJson } from '../common/visibleText.js';
import { DEFAULTS } from './defaults.js';
import { die, failOnError, replyOrError, requestOrExit, withConnection } from './commandRequests.js';
import { AUTHORIZED_REPLY_MS } from './guiClient.js';
import { parseSince } from './logCommand.js';
import { learnedDecisions, suggestRules } from './rulesSuggest.js';

const DEST_PREFIX = '@dest:';

interface AddOptions {
  socket: string;
  deny?: boolean;
  force?: boolean;
  user?: string;
  dest?: string;
  proto?: string;
  parent?: string;
  script?: string;
  appId?: string;
  sha256?: string;
  list?: string;
}

/**
 * The rule `bastion rules add` means, in the rules.d format. Subjects: an executable path,
 * `@name:<comm>`, `@host:<name or *.suffix>`, `@dest:<ip>` (the one destination syntax: the
 * port is the second argument, as for every other subject), or `*` for any program (with a
 * criterion flag). Returns an error text for a subject it cannot read.
 */
export function ruleFromArgs(subject: string, port: string, opts: Omit<AddOptions, 'socket'>): Record<string, unknown> | string {
  const rule: Record<string, unknown> = { action: opts.deny ? 'deny' : 'allow' };
  if (subject.startsWith(DEST_PREFIX)) {
    const ip = subject.slice(DEST_PREFIX.length);
    if (isIP(ip) === 0) {
      return `"${subject}" is not @dest:<ip>: the port goes in the second argument (bastion rules add @dest:192.0.2.7 53), and --dest takes a CIDR block`;
    }
    if (opts.dest !== undefined) return 'give the destination once: @dest:<ip> or --dest';
    rule['dest'] = ip;
  } else if (subject.startsWith('@name:')) rule['comm'] = subject.slice('@name:'.length);
  else if (subject.startsWith('@host:')) rule['host'] = subject.slice('@host:'.length);
  else if (subject.startsWith('/')) rule['exe'] = subject;
  else if (subject !== '*') return `"${subject}" is not an executable path, @name:<comm>, @host:<name>, @dest:<ip> or * (any program)`;
  if (port !== '*' && port !== '0') {
    if (!/^[0-9]{1,5}$/.test(port) || Number(port) > 65535 || Number(port) === 0) return `port "${port}" is not 1-65535, * or 0`;
    rule['port'] = Number(port);
  }
  if (opts.user !== undefined) rule['user'] = /^[0-9]+$/.test(opts.user) ? Number(opts.user) : opts.user;
  if (opts.dest !== undefined) rule['dest'] = opts.dest;
  if (opts.list !== undefined) rule['list'] = opts.list;
  if (opts.proto !== undefined) rule['proto'] = opts.proto;
  if (opts.parent !== undefined) rule['parent'] = opts.parent;
  if (opts.script !== undefined) rule['script'] = opts.script;
  if (opts.appId !== undefined) rule['app_id'] = opts.appId;
  if (opts.sha256 !== undefined) rule['sha256'] = opts.sha256;
  if (Object.keys(rule).length === 1) return 'a rule for any program (*) needs a criterion: --user, --dest, --list, --proto, --parent, --script or --app-id';
  return rule;
}

/** Sends import_rules and prints what it did; exits 1 on an error or a refused rule. */
async function importRules(socket: string, rules: unknown[]): Promise<void> {
  const reply = await requestOrExit(socket, { type: 'import_rules', rules }, 'rules_imported', { timeoutMs: AUTHORIZED_REPLY_MS });
  const refused = Array.isArray(reply['refused']) ? (reply['refused'] as unknown[]).map(String) : [];
  process.stdout.write(
    `added ${String(reply['added'])}, replaced ${String(reply['replaced'])}, unchanged ${String(reply['unchanged'])}, refused ${refused.length}\n`,
  );
  for (const line of refused) process.stderr.write(`bastion: refused: ${visible(line)}\n`);
  if (refused.length > 0) process.exitCode = 1;
}

export function registerRulesCommand(program: Command): void {
  const socketOption = ['--socket <path>', 'GUI socket path', DEFAULTS.guiSocketPath] as const;
  const rules = program.command('rules').description('list, add, delete, export, import or suggest rules (docs/rules.md)');
  rules
    .command('list')
    .description('rules.json rules, then extended rules (rules.d read-only, imported)')
    .option(...socketOption)
    .action(async (opts: { socket: string }) => {
      const [legacy, extended] = await withConnection(opts.socket, async (c) => [
        failOnError(await replyOrError(c, { type: 'list_rules' }, 'rules_list')),
        failOnError(await replyOrError(c, { type: 'list_extended_rules' }, 'extended_rules')),
      ]);
      const entries = Object.entries(legacy['rules'] as Record<string, unknown>).filter(([, v]) => typeof v === 'boolean');
      // Keys name paths that programs chose (an "always" answer saves them): shown escaped.
      for (const [key, allow] of entries) process.stdout.write(`${allow ? 'allow' : 'deny '}  ${visible(key)}\n`);
      for (const rule of extended['rules'] as Record<string, unknown>[]) {
        const { action, source, origin, read_only: readOnly, ...criteria } = rule;
        const tag = readOnly ? ' (read-only)' : '';
        process.stdout.write(
          `${action === 'allow' ? 'allow' : 'deny '}  ${visibleJson(criteria)}  ${visible(String(source))}${tag}${origin === 'imported' ? ' (imported)' : ''}\n`,
        );
      }
      for (const error of extended['errors'] as string[]) process.stderr.write(`bastion: skipped: ${visible(error)}\n`);
    });
  rules
    .command('add <subject> <port>')
    .description(
      'add a rule: subject an executable path, @name:<comm>, @host:<name or *.suffix>, @dest:<ip>, or * with a criterion; port 1-65535, or * / 0 for all ports',
    )
    .option('--deny', 'a deny rule (default: allow)')
    .option('--force', 'keep a path that does not exist (a program not installed yet)')
    .option('--user <user>', 'only this user (name or uid)')
    .option('--dest <cidr>', 'only to this address or block (192.0.2.0/24, 2001:db8::/32)')
    .option('--list <name>', 'only to a host or address on this list of lists.d')
    .option('--proto <proto>', 'only this protocol: tcp, udp or icmp')
    .option('--parent <path>', "only when the parent process's executable is this")
    .option('--script <path>', 'only when the interpreter (python3, node, sh, perl, ruby, java -jar) runs this script')
    .option('--app-id <id>', 'only this Flatpak or Snap application')
    .option('--sha256 <hex>', "only while the executable's SHA-256 is this (a changed program is asked about again)")
    .option(...socketOption)
    .action(async (given: string, port: string, opts: AddOptions) => {
      const { socket, deny, force, ...criteria } = opts;
      const subject = await ruleProgramPath(given, force === true);
      if (criteria.parent !== undefined) criteria.parent = await ruleProgramPath(criteria.parent, force === true);
      const rule = ruleFromArgs(subject, port, deny === undefined ? criteria : { ...criteria, deny });
      if (typeof rule === 'string') die(rule, 2);
      if (Object.keys(criteria).length > 0) {
        // An extended rule: import_rules keeps it beside rules.json (docs/rules.md).
        await importRules(socket, [rule]);
        return;
      }
      // A rules.json rule, sent as the GUI sends it (gui-protocol.md, add_rule).
      const all = port === '*' || port === '0';
      const dest = typeof rule['dest'] === 'string' ? rule['dest'] : '';
      const add =
        dest !== ''
          ? { type: 'add_rule', app_path: '', app_name: 'unknown', dest_ip: dest, port: all ? 0 : Number(port), allow: !deny, all_ports: all }
          : { type: 'add_rule', app_path: subject, app_name: '', port: all ? 0 : Number(port), allow: !deny, all_ports: all };
      // add_rule has no reply of its own: the service answers a connection's messages in order,
      // so the rules list comes once the add (and polkit's question) is done.
      await withConnection(socket, async (c) => {
        c.send(add);
        failOnError(await replyOrError(c, { type: 'list_rules' }, 'rules_list', AUTHORIZED_REPLY_MS));
      });
    });
  rules
    .command('delete <key>')
    .description('delete a rules.json rule by its key (rules.d rules are changed where they are deployed)')
    .option(...socketOption)
    .action(async (key: string, opts: { socket: string }) => {
      const reply = await requestOrExit(opts.socket, { type: 'delete_rule', key }, 'rule_deleted', { timeoutMs: AUTHORIZED_REPLY_MS });
      if (!reply['success']) die(`no rule "${key}"`);
    });
  rules
    .command('export')
    .description('print every rule in force (rules.json, rules.d, imported) in the rules.d format')
    .option(...socketOption)
    .action(async (opts: { socket: string }) => {
      const reply = await requestOrExit(opts.socket, { type: 'export_rules' }, 'rules_export');
      // JSON escapes control characters itself; visibleJson also escapes what a terminal would act on.
      process.stdout.write(visibleJson(reply['rules'], 2) + '\n');
    });
  rules
    .command('import <file>')
    .description('apply a rules.d-format file (validated first, all or nothing); importing it again changes nothing')
    .option(...socketOption)
    .action(async (file: string, opts: { socket: string }) => {
      let rulesJson: unknown;
      try {
        rulesJson = JSON.parse(file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8'));
      } catch (err) {
        die(`${file}: ${err instanceof Error ? err.message : String(err)}`);
      }
      if (!Array.isArray(rulesJson)) die(`${file}: must be a JSON array of rules (as bastion rules export prints)`);
      await importRules(opts.socket, rulesJson);
    });
  rules
    .command('suggest')
    .description('print rules that allow what learning mode allowed, for review, then bastion rules import')
    .option('--since <time>', 'decisions since: 30m, 2h, 7d ago, or a date', '7d')
    .option('--history <path>', 'the history file', DEFAULT_HISTORY_PATH)
    .action(async (opts: { since: string; history: string }) => {
      const since = parseSince(opts.since, Date.now());
      if (since === null) die(`--since must be a time such as 30m, 2h, 7d or a date such as 2026-12-05, not "${opts.since}"`, 2);
      let suggested: Record<string, unknown>[];
      try {
        const db = await openDatabase(opts.history, 'read');
        try {
          suggested = suggestRules(await learnedDecisions(db, since));
        } finally {
          await closeDatabase(db);
        }
      } catch (err) {
        die(
          err instanceof HistoryError && err.code === 'SQLITE_CANTOPEN'
            ? `cannot read ${opts.history} (no history yet, or you are not in group bastion)`
            : (err as Error).message,
        );
      }
      process.stdout.write(visibleJson(suggested, 2) + '\n');
    });
}

/**
 * The path a rule must name (common/programPath.ts): links resolved, shown as "given → saved";
 * a path that does not exist is refused (a typo would make a rule that never matches) unless
 * --force. Subjects that are not paths (@host:, @name:, …) pass unchanged.
 */
export async function ruleProgramPath(subject: string, force: boolean): Promise<string> {
  if (!subject.startsWith('/')) return subject;
  const resolved = await resolveProgramPath(subject);
  if (resolved.ok) {
    if (resolved.linkedFrom !== null) process.stdout.write(`${visible(resolved.linkedFrom)} → ${visible(resolved.path)}: the rule names the program itself\n`);
    return resolved.path;
  }
  if (resolved.missing && force) {
    process.stderr.write(`bastion: warning: ${visible(subject)}: no such file; kept as given (--force)\n`);
    return subject;
  }
  const hint = resolved.missing ? ' (--force keeps it, for a program not installed yet)' : '';
  process.stderr.write(`bastion: ${visible(subject)}: ${visible(resolved.error)}: a rule for it would never match${hint}\n`);
  process.exit(1);
}
