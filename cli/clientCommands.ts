// CLI commands that talk to the running service over the GUI socket.
import type { Command } from 'commander';
import { visible, visibleJson } from '../common/visibleText.js';
import { registerConfigCommand } from './configCommand.js';
import { inboundLine, registerInboundCommand } from './inboundCommand.js';
import { DEFAULTS } from './defaults.js';
import { requestOrExit } from './commandRequests.js';
import { AUTHORIZED_REPLY_MS } from './guiClient.js';
import { registerMonitorCommand } from './monitorCommand.js';
import { registerPromptCommand } from './promptCommand.js';
import { registerRulesCommand } from './rulesCommand.js';

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
      const status = await requestOrExit(opts.socket, { type: 'status' }, 'status');
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
          `rules:    ${String(status['rules'])}${Number(status['extended_rules'] ?? 0) > 0 ? ` (and ${String(status['extended_rules'])} extended: bastion rules list)` : ''}`,
          `clients:  ${String(status['clients'])}`,
          `decided:  ${stats['total_connections']} (allowed ${stats['allowed_connections']}, blocked ${stats['blocked_connections']})`,
          `inbound:  ${inboundLine(status['inbound'])}`,
          `forward:  ${typeof status['forwarded'] === 'string' ? visible(status['forwarded']) : 'unknown (an older service)'}`,
          `metrics:  ${metricsLine(status['metrics'])}`,
        ].join('\n') + '\n',
      );
    });

  registerRulesCommand(program);

  program
    .command('mode <mode>')
    .description('switch between learning and enforcement')
    .option(...socketOption)
    .action(async (mode: string, opts: { socket: string }) => {
      await requestOrExit(opts.socket, { type: 'set_mode', mode }, 'mode_changed', { timeoutMs: AUTHORIZED_REPLY_MS });
    });

  registerConfigCommand(program);
  registerInboundCommand(program);
}

/** Where the metrics go (service/metrics/metricsFile.ts): the file, or why it is not written. */
export function metricsLine(metrics: unknown): string {
  if (typeof metrics !== 'object' || metrics === null) return 'none (bastion daemon --metrics-dir DIR writes bastion.prom for node_exporter)';
  const m = metrics as { file?: unknown; error?: unknown };
  const file = visible(String(m.file));
  return typeof m.error === 'string' ? `${file} NOT WRITTEN: ${visible(m.error)}` : file;
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
  const has = (name: string): boolean => Array.isArray(capabilities) && capabilities.includes(name);
  if (!has('kernel_verdicts')) return 'every new connection in the queue (no kernel verdicts: --no-kernel-verdicts, or eBPF without the executable)';
  return has('kernel_udp_allow')
    ? 'path rules in the kernel (eBPF), everything else in the queue'
    : "path rules in the kernel (eBPF) but UDP allows in the queue (no UDP filter: no bpf file system, --bpf-fs, or the kernel refused it; the helper's log says which), everything else in the queue";
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
