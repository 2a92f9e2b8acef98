// Each decision as one journal entry: a MESSAGE in the old daemon's words, which the control
// panel's Logs tab parses (it runs `journalctl -u bastion-firewall -n 200 --no-pager` and
// matches the patterns of the upstream GUI's bastion/log_parser.py), and structured fields
// beside it for `journalctl -o json` and field filters (BASTION_VERDICT=deny, ...).
import type { Connection } from '../connection.js';
import type { DecisionEvent } from '../decider.js';

export interface JournalEntry {
  /** What journalctl prints after "bastion-daemon[pid]: ". One line. */
  message: string;
  /** syslog priority: 6 info (allowed, prompts), 5 notice (blocked). */
  priority: 5 | 6;
  /** BASTION_* fields; values are single lines. */
  fields: Record<string, string>;
}

/**
 * A fixed id for decision entries (`journalctl MESSAGE_ID=...`), and one for opened prompts.
 * Made once with `systemd-id128 new`-style randomness; they never change.
 */
export const DECISION_MESSAGE_ID = '6c2b3f0e9a7d4e41b8f5a0c3d2e1f4a7';
export const PROMPT_MESSAGE_ID = '9e1d4c7b2a5f4038a6b1c0d9e8f7a6b5';

/**
 * `user=` of the GUI's patterns is digits only: an unknown user is written as (uid_t)-1, the
 * kernel's own "no user" (the old daemon wrote 0, which reads as root). BASTION_UID is omitted.
 */
const NO_UID_TEXT = '4294967295';

/** Longest value written: a journal entry is one datagram (native/src/addon.c caps it at 8 KiB). */
const MAX_VALUE_CHARS = 512;

/** Quoted for the line: backslash, quote and control characters escaped, so it stays one line. */
function quote(value: string): string {
  return `"${escape(value)}"`;
}

function escape(value: string): string {
  const capped = value.length > MAX_VALUE_CHARS ? `${value.slice(0, MAX_VALUE_CHARS)}...` : value;
  // eslint-disable-next-line no-control-regex
  return capped.replace(/[\\"\u0000-\u001f\u007f]/g, (ch) => (ch === '\\' || ch === '"' ? `\\${ch}` : `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

/** A field value: one line (a newline would end the field in journald's native protocol). */
function fieldValue(value: string): string {
  const capped = value.length > MAX_VALUE_CHARS ? `${value.slice(0, MAX_VALUE_CHARS)}...` : value;
  // eslint-disable-next-line no-control-regex
  return capped.replace(/[\n\u0000]/g, (ch) => (ch === '\n' ? '\\n' : '\\0'));
}

interface LineParts {
  comm: string;
  /** `comm (host)` as the old daemon showed it, when the host name is known. */
  app: string;
  path: string;
  dst: string;
  user: string;
  protocol: string;
}

function parts(e: { comm: string | null; exe: string | null; destIp: string; port: number; protocol: string; uid: number; host?: string }): LineParts {
  const comm = e.comm || 'unknown';
  return {
    comm,
    app: e.host ? `${comm} (${e.host})` : comm,
    path: e.exe || 'unknown',
    dst: `${e.destIp}:${e.port}`,
    user: e.uid >= 0 ? String(e.uid) : NO_UID_TEXT,
    protocol: e.protocol,
  };
}

const WHITELIST_WORDS: Record<string, string> = {
  localhost: 'loopback destination',
  lan: 'local network destination (allow_lan)',
  'system-service': 'system service',
};

/**
 * The line for a decision. Tags by what decided (log_parser.py's patterns):
 * rule -> [RULE:ALLOW|BLOCK], prompt answer -> [USER:ALLOW|BLOCK], session -> [SESSION:...],
 * learning -> [LEARN], whitelist -> [AUTO], default/timeout -> [BLOCK] or, when the default
 * allows, [AUTO]. Extra key="value" pairs after the parsed ones are ignored by the GUI.
 */
export function decisionMessage(e: DecisionEvent): string {
  const p = parts(e);
  const action = e.allow ? 'ALLOW' : 'BLOCK';
  const who = `app=${quote(p.app)}`;
  const dst = `dst=${quote(p.dst)}`;
  const tail = `user=${p.user} protocol=${quote(p.protocol)}`;
  switch (e.reason) {
    case 'rule':
      return `[RULE:${action}] ${who} path=${quote(p.path)} ${dst} ${tail}${e.ruleKey ? ` rule=${quote(e.ruleKey)}` : ''}`;
    case 'prompt':
      return `[USER:${action}] ${who} ${dst} ${tail} path=${quote(p.path)}`;
    case 'session':
      return `[SESSION:${action}] ${who} ${dst} ${tail} path=${quote(p.path)}`;
    case 'learning':
      return `[LEARN] ${who} path=${quote(p.path)} ${dst} ${tail}`;
    case 'localhost':
    case 'lan':
    case 'system-service':
      return `[AUTO] ${escape(p.app)} - ${WHITELIST_WORDS[e.reason]} ${dst} ${tail} path=${quote(p.path)}`;
    case 'default':
    case 'timeout': {
      const why = e.reason === 'timeout' ? 'no answer in time' : 'nobody to ask';
      if (!e.allow) return `[BLOCK] ${who} ${dst} ${tail} path=${quote(p.path)} reason=${quote(why)}`;
      return `[AUTO] ${escape(p.app)} - allowed by default (${why}) ${dst} ${tail} path=${quote(p.path)}`;
    }
  }
}

export function decisionEntry(e: DecisionEvent): JournalEntry {
  const fields: Record<string, string> = {
    MESSAGE_ID: DECISION_MESSAGE_ID,
    BASTION_EVENT: 'decision',
    BASTION_PROGRAM: fieldValue(e.exe || 'unknown'),
    BASTION_COMM: fieldValue(e.comm || 'unknown'),
    BASTION_PID: String(e.pid),
    BASTION_DESTINATION: e.destIp,
    BASTION_PORT: String(e.port),
    BASTION_PROTOCOL: e.protocol,
    BASTION_VERDICT: e.allow ? 'allow' : 'deny',
    BASTION_DECIDED_BY: e.reason,
    BASTION_CONNECTIONS: String(e.connections),
  };
  if (e.uid >= 0) fields['BASTION_UID'] = String(e.uid);
  if (e.ruleKey) fields['BASTION_RULE'] = fieldValue(e.ruleKey);
  if (e.host) fields['BASTION_HOST'] = fieldValue(e.host);
  return { message: decisionMessage(e), priority: e.allow ? 6 : 5, fields };
}

/**
 * A prompt opened: `[POPUP] comm (path) -> ip:port`. The GUI's POPUP pattern has no end
 * marker after the port, so the host name goes after it rather than beside comm.
 */
export function promptEntry(conn: Connection & { host?: string }): JournalEntry {
  const uid = conn.record.process?.uid ?? (conn.record.uid >= 0 ? conn.record.uid : -1);
  const p = parts({ ...conn, uid });
  const host = conn.host ? ` host=${quote(conn.host)}` : '';
  const fields: Record<string, string> = {
    MESSAGE_ID: PROMPT_MESSAGE_ID,
    BASTION_EVENT: 'prompt',
    BASTION_PROGRAM: fieldValue(p.path),
    BASTION_COMM: fieldValue(p.comm),
    BASTION_PID: String(conn.record.process?.pid ?? 0),
    BASTION_DESTINATION: conn.destIp,
    BASTION_PORT: String(conn.port),
    BASTION_PROTOCOL: conn.protocol,
  };
  if (uid >= 0) fields['BASTION_UID'] = String(uid);
  if (conn.host) fields['BASTION_HOST'] = fieldValue(conn.host);
  return {
    message: `[POPUP] ${escape(p.comm)} (${escape(p.path)}) -> ${p.dst} user=${p.user} protocol=${quote(p.protocol)}${host}`,
    priority: 6,
    fields,
  };
}
