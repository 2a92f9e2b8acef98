// `bastion prompt`'s keys, as one table the screen's help line is also drawn from, and the
// message each answer sends: exactly what the Python tray sends for the same choice
// (gui_response in enforcement; in learning mode add_rule for "always", nothing otherwise).
// Timed answers ("for 1h") are the service's extension of gui_response's duration
// (service/prompts/answerScope.ts): the decision lasts that long, then the program is asked again.

import type { ConnectionRequestMessage } from '../common/connectionRequestMessage.js';

/** A time the service accepts as a duration: digits and s, m, h or d. */
export type TimedDuration = `${number}${'s' | 'm' | 'h' | 'd'}`;
export type Duration = 'once' | 'session' | 'always' | TimedDuration;

/** The times `w` steps through for `t`/`T`; the first is the one shown at the start. */
export const TIMED_CHOICES: readonly TimedDuration[] = ['5m', '1h', '8h', '1d'];

export type KeyAction =
  | { kind: 'answer'; allow: boolean; duration: Duration }
  /** For the time chosen with `w`. */
  | { kind: 'answer-timed'; allow: boolean }
  | { kind: 'next-time' }
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
  { key: 't', action: { kind: 'answer-timed', allow: true } },
  { key: 'T', action: { kind: 'answer-timed', allow: false } },
  { key: 'w', action: { kind: 'next-time' } },
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

const UNIT_WORDS = { s: 'second', m: 'minute', h: 'hour', d: 'day' } as const;

/** "5m" -> "5 minutes", "1h" -> "1 hour". */
export function timeWords(duration: TimedDuration): string {
  const n = Number(duration.slice(0, -1));
  const unit = UNIT_WORDS[duration.slice(-1) as keyof typeof UNIT_WORDS];
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

/** "allowed for this session (all ports)", "denied for 1 hour" */
export function describeAnswer(allow: boolean, duration: Duration, allPorts: boolean): string {
  const when = duration === 'once' ? 'once' : duration === 'session' ? 'for this session' : duration === 'always' ? 'always' : `for ${timeWords(duration)}`;
  return `${allow ? 'allowed' : 'denied'} ${when}${allPorts && duration !== 'once' ? ' (all ports)' : ''}`;
}
