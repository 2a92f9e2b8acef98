// One line of `bastion monitor` per decided connection: when, verdict, program, destination,
// protocol, and which rule or reason decided.
import type { DecisionMessage as WireDecisionMessage } from '../common/decisionMessage.js';
import { normalizeHostName } from '../common/hostName.js';
import { visible } from '../common/visibleText.js';
import type { Colors } from './colors.js';

/** What the service's `decision` message carries, without its type tag. */
export type DecisionMessage = Omit<WireDecisionMessage, 'type'>;

/** Why, in words: the rule's key for rules and sessions, else the reason. */
const REASONS: Record<string, string> = {
  rule: 'rule',
  session: 'session',
  prompt: 'answered',
  timeout: 'no answer in time',
  default: 'default action',
  learning: 'learning mode',
  localhost: 'loopback',
  lan: 'local network',
  'system-service': 'system service',
  dns: 'DNS to a nameserver',
};

export function hostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** `who`: a column between the time and the verdict (`bastion log`'s user), shown as given. */
export function formatDecision(m: DecisionMessage, c: Colors, who?: string): string[] {
  const lines: string[] = [];
  if (m.missed > 0) lines.push(c.yellow(`… ${m.missed} decision(s) not shown: this terminal read too slowly`));
  const time = m.time.length >= 19 ? m.time.slice(11, 19) : m.time;
  const verdict = m.allow ? c.green('ALLOW') : c.red('DENY ');
  // Every string from the service is shown escaped (common/visibleText.ts): a program's path,
  // comm and the rule named after them are the program's own choice.
  const name = visible(m.app_name);
  const program = m.app_path !== 'unknown' && m.app_path !== m.app_name ? `${c.bold(name)} ${c.dim(visible(m.app_path))}` : c.bold(name);
  const why = visible(REASONS[m.reason] ?? m.reason);
  const decidedBy = m.rule_key ? `${why} ${c.cyan(visible(m.rule_key))}` : why;
  const address = visible(m.protocol === 'ICMP' ? m.dest_ip : hostPort(m.dest_ip, m.dest_port));
  // Checked again before it reaches the terminal: only name characters, never escapes.
  const host = typeof m.host === 'string' ? normalizeHostName(m.host) : null;
  const unverified = host === null && typeof m.unverified_host === 'string' ? normalizeHostName(m.unverified_host) : null;
  const port =
    host !== null
      ? `${visible(host)} ${c.dim(`(${address})`)}`
      : unverified !== null
        ? `${visible(unverified)} ${c.yellow('(unverified)')} ${c.dim(`(${address})`)}`
        : address;
  const times = m.connections > 1 ? ` ×${m.connections}` : '';
  const user = who === undefined ? '' : `${who} `;
  lines.push(`${c.dim(visible(time))} ${user}${verdict} ${program} → ${port} ${visible(m.protocol)}${times}  ${c.dim('[')}${decidedBy}${c.dim(']')}`);
  return lines;
}
