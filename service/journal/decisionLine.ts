// Each decision as one journal entry: a MESSAGE in the old daemon's words, which the control
// panel's Logs tab parses (it runs `journalctl -u bastion-firewall -n 200 --no-pager` and
// matches the patterns of the upstream GUI's bastion/log_parser.py), and structured fields
// beside it for `journalctl -o json` and field filters (BASTION_VERDICT=deny, ...).
import type { Connection } from '../connection.js';
import type { DecisionEvent } from '../decider.js';
import { visible } from '../../common/visibleText.js';

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

/** Longest value written, escapes included: a journal entry is one datagram (native/src/bind_unix_sockets.c caps it at 8 KiB). */
const MAX_VALUE_CHARS = 512;

/**
 * What a value of a line escapes besides controls, bidi marks and backslash
 * (common/visibleText.ts): the quote, so a quoted value never holds one and no `key="` of the
 * GUI's patterns can start inside it; `[`, so no `[POPUP] ...` (the pattern the GUI tries first,
 * anywhere in the line) can; and parentheses, so a comm or path in `[POPUP] comm (path) -> ip:port`
 * cannot end its field early or fake the `(host)` beside comm.
 */
const LINE_SYNTAX = '"[()';

/** A value as the line shows it: one line, none of the GUI patterns' delimiters in it. */
function escape(value: string): string {
  return visible(value, { also: LINE_SYNTAX, maxChars: MAX_VALUE_CHARS });
}

/** Quoted for the line. */
function quote(value: string): string {
  return quoted(escape(value));
}

function quoted(text: string): string {
  return `"${text}"`;
}

/**
 * The program of an `[AUTO] app - reason` line, which has no quotes: the GUI's app ends at the
 * first " - ", so a hyphen after a space is escaped too (a comm of "a - b" or "a -").
 */
function autoApp(text: string): string {
  return text.replace(/ -/g, ' \\x2d');
}

/**
 * A field value beside the line (BASTION_PROGRAM, ...), escaped the same way as the line's text
 * but without its syntax characters: one line (a newline would end the field in journald's
 * native protocol), and nothing that `journalctl -o verbose` would print raw.
 */
function fieldValue(value: string): string {
  return visible(value, { maxChars: MAX_VALUE_CHARS });
}

interface LineParts {
  comm: string;
  path: string;
  /** comm, escaped for the line. */
  commText: string;
  /** `comm (host)` as the old daemon showed it, when the host name is known; escaped. */
  appText: string;
  /** path, escaped for the line. */
  pathText: string;
  dst: string;
  user: string;
  protocol: string;
}

function parts(e: { comm: string | null; exe: string | null; destIp: string; port: number; protocol: string; uid: number; host?: string }): LineParts {
  const comm = e.comm || 'unknown';
  const path = e.exe || 'unknown';
  const commText = escape(comm);
  return {
    comm,
    path,
    commText,
    appText: e.host ? `${commText} (${escape(e.host)})` : commText,
    pathText: escape(path),
    dst: `${e.destIp}:${e.port}`,
    user: e.uid >= 0 ? String(e.uid) : NO_UID_TEXT,
    protocol: e.protocol,
  };
}

const WHITELIST_WORDS: Record<string, string> = {
  localhost: 'loopback destination',
  lan: 'local network destination (allow_lan)',
  'system-service': 'system service',
  dns: 'DNS to a configured nameserver (allow_dns)',
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
  const who = `app=${quoted(p.appText)}`;
  const dst = `dst=${quote(p.dst)}`;
  const tail = `user=${p.user} protocol=${quote(p.protocol)}`;
  switch (e.reason) {
    case 'rule':
      return `[RULE:${action}] ${who} path=${quoted(p.pathText)} ${dst} ${tail}${e.ruleKey ? ` rule=${quote(e.ruleKey)}` : ''}`;
    case 'prompt':
      return `[USER:${action}] ${who} ${dst} ${tail} path=${quoted(p.pathText)}`;
    case 'session':
      return `[SESSION:${action}] ${who} ${dst} ${tail} path=${quoted(p.pathText)}`;
    case 'learning':
      return `[LEARN] ${who} path=${quoted(p.pathText)} ${dst} ${tail}`;
    case 'localhost':
    case 'lan':
    case 'system-service':
    case 'dns':
      return `[AUTO] ${autoApp(p.appText)} - ${WHITELIST_WORDS[e.reason]} ${dst} ${tail} path=${quoted(p.pathText)}`;
    case 'default':
    case 'timeout': {
      const why = e.reason === 'timeout' ? 'no answer in time' : 'nobody to ask';
      if (!e.allow) return `[BLOCK] ${who} ${dst} ${tail} path=${quoted(p.pathText)} reason=${quote(why)}`;
      return `[AUTO] ${autoApp(p.appText)} - allowed by default (${why}) ${dst} ${tail} path=${quoted(p.pathText)}`;
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
    message: `[POPUP] ${p.commText} (${p.pathText}) -> ${p.dst} user=${p.user} protocol=${quote(p.protocol)}${host}`,
    priority: 6,
    fields,
  };
}
