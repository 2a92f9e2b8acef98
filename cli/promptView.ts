// What `bastion prompt` shows for one connection request: program, path, destination, port,
// protocol, the seconds left, and the keys. Pure text, so it is tested without a terminal.
import { visible } from '../common/visibleText.js';
import type { Colors } from './colors.js';
import { hostPort } from './decisionLine.js';
import type { ConnectionRequest, TimedDuration } from './promptKeys.js';

/** The service's "<comm> (<host>, unverified)" (service/prompts/connectionRequest.ts). */
/** An app_name the service marked as carrying a host name from another resolver than the system's. */
export const UNVERIFIED_NAME = / \([^()]*, unverified\)$/;

export function requestLines(req: ConnectionRequest, c: Colors): string[] {
  // The program's name and path are its own choice: escaped (common/visibleText.ts), so no
  // control sequence in them can redraw these lines.
  const name = visible(req.app_name);
  const title = req.learning_mode ? `${c.bold(name)} connected ${c.dim('(learning mode: allowed)')}` : `${c.yellow('?')} ${c.bold(name)} wants to connect`;
  const dest = visible(req.protocol === 'ICMP' ? req.dest_ip : hostPort(req.dest_ip, req.dest_port));
  return [
    title,
    `  path         ${visible(req.app_path)}`,
    `  destination  ${dest}`,
    ...(UNVERIFIED_NAME.test(req.app_name) ? [`  ${c.yellow('name not from the system resolver: anyone may have forged it')}`] : []),
    `  port         ${req.dest_port}`,
    `  protocol     ${visible(req.protocol)}`,
  ];
}

/**
 * The line under a request: countdown, keys, and how many more requests wait. `secondsLeft`
 * null = no countdown (learning mode: nothing waits).
 */
export function keysLine(req: ConnectionRequest, secondsLeft: number | null, allPorts: boolean, queued: number, c: Colors, time: TimedDuration = '5m'): string {
  const ports = `${c.bold('p')} all ports: ${allPorts ? c.green('yes') : 'no'}`;
  const more = queued > 0 ? c.dim(`  (+${queued} waiting)`) : '';
  if (req.learning_mode) {
    return `  ${c.bold('a')} always allow · ${c.bold('A')} always deny · ${ports} · ${c.bold('space')} next · ${c.bold('q')} quit${more}`;
  }
  const clock = secondsLeft === null ? '' : `${c.yellow(`${String(Math.max(0, secondsLeft)).padStart(3)} s`)}  `;
  return (
    `  ${clock}allow: ${c.bold('o')} once · ${c.bold('s')} session · ${c.bold('t')} ${time} · ${c.bold('a')} always   ` +
    `deny: ${c.bold('O')} · ${c.bold('S')} · ${c.bold('T')} · ${c.bold('A')}   ${c.bold('w')} other time · ${ports} · ${c.bold('q')} quit${more}`
  );
}
