// CLI commands that talk to the running service over the GUI socket.
import { resolveProgramPath } from '../common/programPath.js';
import type { Command } from 'commander';
import { visible, visibleJson } from '../common/visibleText.js';
import { registerConfigCommand } from './configCommand.js';
import { DEFAULTS } from './defaults.js';
import { connectOrExit, type GuiConnection } from './guiClient.js';
import { registerMonitorCommand } from './monitorCommand.js';
import { registerPromptCommand } from './promptCommand.js';

async function withConnection<T>(socket: string, fn: (c: GuiConnection) => Promise<T>): Promise<T> {
  const conn = await connectOrExit(socket);
  try {
    return await fn(conn);
  } finally {
    conn.close();
  }
}

function failOnError(reply: Record<string, unknown>): Record<string, unknown> {
  if (reply['type'] === 'error') {
    process.stderr.write(`bastion: ${visible(String(reply['error']))}\n`);
    process.exit(1);
  }
  return reply;
}

export function registerClientCommands(program: Command): void {
  registerMonitorCommand(program);
  registerPromptCommand(program);
  const socketOption = ['--socket <path>', 'GUI socket path', DEFAULTS.guiSocketPath] as const;

  program
    .command('status')
    .description('mode, counters, connected clients and helper state')
    .option(...socketOption)
    .option('--json', 'print JSON')
    .action(async (opts: { socket: string; json?: boolean }) => {
      const status = failOnError(await withConnection(opts.socket, (c) => c.request({ type: 'status' }, 'status')));
      if (opts.json) {
        process.stdout.write(visibleJson(status, 2) + '\n');
        return;
      }
      const stats = status['stats'] as Record<string, number>;
      const helper = status['helper'] as Record<string, unknown>;
      process.stdout.write(
        [
          `mode:     ${String(status['mode'])} (default action: ${String(status['default_action'])})`,
          `helper:   ${helper['connected'] ? `connected (pid ${String(helper['pid'])}, queue ${String(helper['queue'])})` : 'not connected'}`,
          ...(helper['connected'] ? [`identity: ${identityLine(helper['capabilities'])}`, `decides:  ${decisionPathLine(helper['capabilities'])}`] : []),
          `dns:      ${dnsLine(status['dns'])}`,
          `rules:    ${String(status['rules'])}`,
          `clients:  ${String(status['clients'])}`,
          `decided:  ${stats['total_connections']} (allowed ${stats['allowed_connections']}, blocked ${stats['blocked_connections']})`,
        ].join('\n') + '\n',
      );
    });

  const rules = program.command('rules').description('list, add or delete rules (rules.json keys)');
  rules
    .command('list')
    .option(...socketOption)
    .action(async (opts: { socket: string }) => {
      const reply = failOnError(await withConnection(opts.socket, (c) => c.request({ type: 'list_rules' }, 'rules_list')));
      const entries = Object.entries(reply['rules'] as Record<string, unknown>).filter(([, v]) => typeof v === 'boolean');
      // Keys name paths that programs chose (an "always" answer saves them): shown escaped.
      for (const [key, allow] of entries) process.stdout.write(`${allow ? 'allow' : 'deny '}  ${visible(key)}\n`);
    });
  rules
    .command('add <subject> <port>')
    .description('add a rule for an executable path, or a destination host name as @host:<name or *.suffix> ("*" or 0 = all ports)')
    .option('--deny', 'a deny rule (default: allow)')
    .option('--force', 'keep a path that does not exist (a program not installed yet)')
    .option(...socketOption)
    .action(async (subject: string, port: string, opts: { socket: string; deny?: boolean; force?: boolean }) => {
      const all = port === '*' || port === '0';
      const path = await ruleProgramPath(subject, opts.force === true);
      await withConnection(opts.socket, async (c) => {
        c.send({ type: 'add_rule', app_path: path, app_name: '', port: all ? 0 : Number(port), allow: !opts.deny, all_ports: all });
        failOnError(await c.request({ type: 'list_rules' }, 'rules_list'));
      });
    });
  rules
    .command('delete <key>')
    .option(...socketOption)
    .action(async (key: string, opts: { socket: string }) => {
      const reply = failOnError(await withConnection(opts.socket, (c) => c.request({ type: 'delete_rule', key }, 'rule_deleted')));
      if (!reply['success']) {
        process.stderr.write(`bastion: no rule "${visible(key)}"\n`);
        process.exit(1);
      }
    });

  program
    .command('mode <mode>')
    .description('switch between learning and enforcement')
    .option(...socketOption)
    .action(async (mode: string, opts: { socket: string }) => {
      failOnError(await withConnection(opts.socket, (c) => c.request({ type: 'set_mode', mode }, 'mode_changed')));
    });

  registerConfigCommand(program);
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

/** Whether every program's DNS to the nameservers passes (allow_dns, service/nameservers.ts). */
export function dnsLine(dns: unknown): string {
  const d = (typeof dns === 'object' && dns !== null ? dns : {}) as { allowed?: unknown; nameservers?: unknown };
  if (d.allowed !== true) return 'each program needs a rule for its own queries (allow_dns false)';
  const list = Array.isArray(d.nameservers) ? d.nameservers.map((a) => visible(String(a))) : [];
  if (list.length === 0) return 'allowed to the nameservers, but resolv.conf names none the service believes (see its log)';
  return `port 53 to ${list.join(', ')} passes for every program, decided in the queue (allow_dns)`;
}

/** Where the helper's connections are decided (helper/kernelVerdicts.ts), from its capabilities. */
export function decisionPathLine(capabilities: unknown): string {
  const live = Array.isArray(capabilities) && capabilities.includes('kernel_verdicts');
  return live
    ? 'path rules in the kernel (eBPF), everything else in the queue'
    : 'every new connection in the queue (no kernel verdicts: --no-kernel-verdicts, or eBPF without the executable)';
}

/**
 * Which process identity the helper runs with, from the capabilities it announced
 * (helper/helper.ts): whether the kernel records who connected each socket (eBPF), and what a
 * socket is credited to when it does not (docs/SECURITY.md, "Which process a connection is
 * credited to").
 */
export function identityLine(capabilities: unknown): string {
  const has = (name: string): boolean => Array.isArray(capabilities) && capabilities.includes(name);
  if (has('caller_bpf') && has('caller_exe')) return 'eBPF caller records (process and executable)';
  if (has('caller_bpf')) return "eBPF caller records, without the executable (CAP_PERFMON or BTF missing: a caller that exec'd is still credited)";
  if (has('weak_identity')) return 'weak: no eBPF, the process found holding a socket is believed (--weak-identity)';
  if (has('caller_unproven')) return 'unproven: no eBPF, no program is proven to have connected its socket, so none matches a path rule';
  return 'unknown (an older helper)';
}
