// `bastion prompt`'s keys, as one table the screen's help line is also drawn from, and the
// message each answer sends: exactly what the Python tray sends for the same choice
// (gui_response in enforcement; in learning mode add_rule for "always", nothing otherwise).

import type { ConnectionRequestMessage } from '../common/connectionRequestMessage.js';
export type Duration = 'once' | 'session' | 'always';

export type KeyAction =
  | { kind: 'answer'; allow: boolean; duration: Duration }
  | { kind: 'toggle-all-ports' }
  | { kind: 'skip' }
  | { kind: 'quit' }
  | { kind: 'none' };

/** Lower case allows, the same key with Shift denies; y/n are once. */
export const KEYS: readonly { key: string; action: KeyAction }[] = [
  { key: 'o', action: { kind: 'answer', allow: true, duration: 'once' } },
  { key: 's', action: { kind: 'answer', allow: true, duration: 'session' } },
  { key: 'a', action: { kind: 'answer', allow: true, duration: 'always' } },
  { key: 'O', action: { kind: 'answer', allow: false, duration: 'once' } },
  { key: 'S', action: { kind: 'answer', allow: false, duration: 'session' } },
  { key: 'A', action: { kind: 'answer', allow: false, duration: 'always' } },
  { key: 'y', action: { kind: 'answer', allow: true, duration: 'once' } },
  { key: 'n', action: { kind: 'answer', allow: false, duration: 'once' } },
  { key: 'p', action: { kind: 'toggle-all-ports' } },
  { key: ' ', action: { kind: 'skip' } },
  { key: '\r', action: { kind: 'skip' } },
  { key: '\n', action: { kind: 'skip' } },
  { key: 'q', action: { kind: 'quit' } },
  { key: '\u0003', action: { kind: 'quit' } }, // Ctrl-C in raw mode
  { key: '\u0004', action: { kind: 'quit' } }, // Ctrl-D
];

const BY_KEY = new Map(KEYS.map((k) => [k.key, k.action]));

export function actionForKey(key: string): KeyAction {
  return BY_KEY.get(key) ?? { kind: 'none' };
}

/** The `connection_request` fields the prompt uses. */
export type ConnectionRequest = Omit<ConnectionRequestMessage, 'type' | 'app_category'>;

export function isConnectionRequest(m: Record<string, unknown>): m is Record<string, unknown> & ConnectionRequest {
  return (
    m['type'] === 'connection_request' &&
    typeof m['request_id'] === 'string' &&
    typeof m['app_name'] === 'string' &&
    typeof m['app_path'] === 'string' &&
    typeof m['dest_ip'] === 'string' &&
    typeof m['dest_port'] === 'number' &&
    typeof m['protocol'] === 'string' &&
    typeof m['learning_mode'] === 'boolean'
  );
}

/** The message to send for an answer, or null when the tray would send nothing. */
export function replyFor(req: ConnectionRequest, allow: boolean, duration: Duration, allPorts: boolean): Record<string, unknown> | null {
  if (req.learning_mode) {
    // Learning mode already allowed the connection; only "always" is worth a message.
    if (duration !== 'always') return null;
    return { type: 'add_rule', app_name: req.app_name, app_path: req.app_path, port: req.dest_port, dest_ip: req.dest_ip, allow, all_ports: allPorts };
  }
  return { type: 'gui_response', request_id: req.request_id, allow, permanent: duration === 'always', all_ports: allPorts, duration };
}

/** "allowed for this session (all ports)" */
export function describeAnswer(allow: boolean, duration: Duration, allPorts: boolean): string {
  const when = duration === 'once' ? 'once' : duration === 'session' ? 'for this session' : 'always';
  return `${allow ? 'allowed' : 'denied'} ${when}${allPorts && duration !== 'once' ? ' (all ports)' : ''}`;
}
