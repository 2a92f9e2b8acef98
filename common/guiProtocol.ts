// The GUI socket protocol as one typed module (docs/gui-protocol.md, docs/gui-extensions.md):
// a discriminated union per direction and one validating parser, shared by the CLI, the desktop
// agent and its browser panel, and the daemon, which reads every client line through it. Field
// names and JSON types are the Python tray's; a field this module does not know is dropped, so
// nothing unchecked crosses a process boundary. A client's error wording is the daemon's `error`
// reply, which tests and scripts match word for word.
import type { ConnectionRequestMessage } from './connectionRequestMessage.js';
import type { DecisionMessage } from './decisionMessage.js';
import type { HelperCounters } from './wire.js';

export type { ConnectionRequestMessage, DecisionMessage };

export type Mode = 'learning' | 'enforcement';

export interface Counters {
  total_connections: number;
  allowed_connections: number;
  blocked_connections: number;
}

/** What the service says about the process behind a prompt, to clients that said hello with `details: true`. */
export interface PromptDetails {
  pid: number;
  uid: number;
  /** The first words of its argv (for an interpreter, the script), each cut to a bounded length. */
  args: string[];
  /** The destination's host name, when the system resolver gave one. */
  host?: string;
}

export type DetailedConnectionRequest = ConnectionRequestMessage & { details?: PromptDetails };

export interface StatusReply {
  type: 'status';
  mode: Mode;
  default_action: string;
  timeout_seconds: number;
  uptime_seconds: number;
  stats: Counters;
  rules: number;
  clients: number;
  prompts: { open: number; limited: number; answering: number };
  monitors: number;
  helper: {
    connected: boolean;
    pid: number | null;
    capabilities: string[];
    queue?: number | null;
    counters?: HelperCounters | null;
    /** When the service received those counters (ms since the epoch): they come with the helper's heartbeat. */
    counters_at_ms?: number | null;
    bad_frames?: number;
  };
  // What `bastion status` shows besides; optional, so a client reads an older service's status.
  extended_rules?: number;
  dns?: { allowed: boolean; nameservers: string[] };
  inbound?: { wanted: boolean; helper_applies: boolean; state: string | null; firewall: string | null; detail: string | null };
  forwarded?: string;
  metrics?: { file: string; writes: number; error: string | null } | null;
}

/** Every message the service sends. */
export type ServiceMessage =
  | DetailedConnectionRequest
  | { type: 'stats_update'; stats: Counters & { learning_mode: boolean } }
  | { type: 'cancel_popup'; request_id: string }
  | { type: 'rule_deleted'; key: string; success: boolean }
  | { type: 'rules_list'; rules: Record<string, unknown> }
  | { type: 'notification'; title: string; message: string; level: string }
  | { type: 'error'; error: string; request: string | null }
  | StatusReply
  | { type: 'mode_changed'; mode: Mode }
  | { type: 'config'; config: Record<string, unknown> }
  | { type: 'config_changed'; key: string; value: unknown; warnings: string[] }
  | DecisionMessage
  | { type: 'subscribed'; feed: string }
  | { type: 'unsubscribed'; feed: string }
  | { type: 'extended_rules'; rules: Record<string, unknown>[]; errors: string[] }
  | { type: 'rules_export'; rules: Record<string, unknown>[] }
  | { type: 'rules_imported'; added: number; replaced: number; unchanged: number; refused: string[] };

/** Every message a client sends. */
export type ClientMessage =
  | { type: 'gui_response'; request_id: string; allow: boolean; permanent?: boolean; all_ports?: boolean; duration?: string }
  /** `port`: 0..65535, 0 = every port. */
  | { type: 'add_rule'; app_path?: string; app_name?: string; port?: number; allow: boolean; all_ports?: boolean; dest_ip?: string }
  | { type: 'delete_rule'; key: string }
  | { type: 'list_rules' }
  | { type: 'clear_cache'; cache_key: string }
  | { type: 'cancel_popup'; request_id: string }
  | { type: 'hello'; answers_prompts?: boolean; client?: string; details?: boolean }
  | { type: 'status' }
  | { type: 'set_mode'; mode: Mode }
  | { type: 'get_config'; key?: string }
  | { type: 'set_config'; key: string; value: unknown }
  /** The service knows the feed `decisions` (its handler names the feeds for another). */
  | { type: 'subscribe'; feed: string }
  | { type: 'unsubscribe'; feed: string }
  | { type: 'list_extended_rules' }
  | { type: 'export_rules' }
  /** Each rule is checked by the rules.d parser (service/rules/extendedRule.ts), with its words. */
  | { type: 'import_rules'; rules: unknown[] };

export type ServiceMessageType = ServiceMessage['type'];
export type ClientMessageType = ClientMessage['type'];
export type ServiceMessageOf<T extends ServiceMessageType> = Extract<ServiceMessage, { type: T }>;
export type ClientMessageOf<T extends ClientMessageType> = Extract<ClientMessage, { type: T }>;

// ---- the schema: one table per direction, read by one parser ----

type Kind = 'string' | 'number' | 'integer' | 'port' | 'boolean' | 'object' | 'array' | 'strings' | 'rules' | 'any' | 'string|null' | 'mode';
/** A field: its kind, and `?` when it may be absent. */
type FieldSpec = Kind | `${Kind}?`;
type Schema = Readonly<Record<string, FieldSpec>>;

const SERVICE: Readonly<Record<ServiceMessageType, Schema>> = {
  connection_request: {
    request_id: 'string',
    app_name: 'string',
    app_path: 'string',
    app_category: 'string',
    dest_ip: 'string',
    dest_port: 'integer',
    protocol: 'string',
    learning_mode: 'boolean',
    details: 'object?',
  },
  stats_update: { stats: 'object' },
  cancel_popup: { request_id: 'string' },
  rule_deleted: { key: 'string', success: 'boolean' },
  rules_list: { rules: 'object' },
  notification: { title: 'string', message: 'string', level: 'string' },
  error: { error: 'string', request: 'string|null?' },
  status: {
    mode: 'mode',
    default_action: 'string',
    timeout_seconds: 'number',
    uptime_seconds: 'number',
    stats: 'object',
    rules: 'number',
    clients: 'number',
    prompts: 'object',
    monitors: 'number',
    helper: 'object',
  },
  mode_changed: { mode: 'mode' },
  config: { config: 'object' },
  config_changed: { key: 'string', value: 'any', warnings: 'strings' },
  decision: {
    time: 'string',
    pid: 'integer',
    app_name: 'string',
    app_path: 'string',
    dest_ip: 'string',
    dest_port: 'integer',
    protocol: 'string',
    allow: 'boolean',
    reason: 'string',
    rule_key: 'string|null',
    host: 'string?',
    unverified_host: 'string?',
    connections: 'integer',
    missed: 'integer',
  },
  subscribed: { feed: 'string' },
  unsubscribed: { feed: 'string' },
  extended_rules: { rules: 'array', errors: 'strings' },
  rules_export: { rules: 'array' },
  rules_imported: { added: 'integer', replaced: 'integer', unchanged: 'integer', refused: 'strings' },
};

const CLIENT: Readonly<Record<ClientMessageType, Schema>> = {
  gui_response: { request_id: 'string', allow: 'boolean', permanent: 'boolean?', all_ports: 'boolean?', duration: 'string?' },
  add_rule: { app_path: 'string?', app_name: 'string?', port: 'port?', allow: 'boolean', all_ports: 'boolean?', dest_ip: 'string?' },
  delete_rule: { key: 'string' },
  list_rules: {},
  clear_cache: { cache_key: 'string' },
  cancel_popup: { request_id: 'string' },
  hello: { answers_prompts: 'boolean?', client: 'string?', details: 'boolean?' },
  status: {},
  set_mode: { mode: 'mode' },
  get_config: { key: 'string?' },
  set_config: { key: 'string', value: 'any' },
  subscribe: { feed: 'string' },
  unsubscribe: { feed: 'string' },
  list_extended_rules: {},
  export_rules: {},
  import_rules: { rules: 'rules' },
};

export type Parsed<T> = { ok: true; message: T } | { ok: false; error: string };

/** Why the service refuses a client's message: the `error` and `request` fields of its `error` reply. */
export interface Refusal {
  error: string;
  /** The message's type, null when it has none. */
  request: string | null;
}

type Checked<T> = { ok: true; message: T } | { ok: false; refusal: Refusal; field: boolean };

/** What a value of this kind must be, as the end of `field "x" must be ...`, or null when it is one. */
function kindProblem(kind: Kind, v: unknown): string | null {
  switch (kind) {
    case 'string':
      return typeof v === 'string' ? null : 'a string';
    case 'number':
      return typeof v === 'number' && Number.isFinite(v) ? null : 'a number';
    case 'integer':
      return Number.isInteger(v) ? null : 'an integer';
    case 'port':
      if (typeof v !== 'number') return 'a number';
      return Number.isInteger(v) && v >= 0 && v <= 65535 ? null : '0..65535';
    case 'boolean':
      return typeof v === 'boolean' ? null : 'a boolean';
    case 'object':
      return typeof v === 'object' && v !== null && !Array.isArray(v) ? null : 'an object';
    case 'array':
      return Array.isArray(v) ? null : 'an array';
    case 'strings':
      return Array.isArray(v) && v.every((s) => typeof s === 'string') ? null : 'a list of strings';
    case 'rules':
      return Array.isArray(v) ? null : 'an array of rules';
    case 'any':
      return v !== undefined ? null : 'present';
    case 'string|null':
      return v === null || typeof v === 'string' ? null : 'a string or null';
    case 'mode':
      if (typeof v !== 'string') return 'a string';
      return v === 'learning' || v === 'enforcement' ? null : '"learning" or "enforcement"';
  }
}

/** Kinds for which null is a value; for the others a client's null means "not given" (the service always read it so). */
const NULL_IS_VALUE: ReadonlySet<Kind> = new Set(['any', 'string|null']);

function parseWith<T>(tables: Readonly<Record<string, Schema>>, value: unknown, nullIsAbsent: boolean): Checked<T> {
  const refuse = (error: string, request: string | null = null, field = false): Checked<T> => ({ ok: false, refusal: { error, request }, field });
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return refuse('a message must be a JSON object');
  const msg = value as Record<string, unknown>;
  const type = msg['type'];
  if (typeof type !== 'string') return refuse('missing field "type"');
  if (!Object.prototype.hasOwnProperty.call(tables, type)) return refuse(`unknown message type "${type}"`, type);
  const out: Record<string, unknown> = { type };
  for (const [name, spec] of Object.entries(tables[type]!)) {
    const optional = spec.endsWith('?');
    const kind = (optional ? spec.slice(0, -1) : spec) as Kind;
    let v = msg[name];
    if (v === null && nullIsAbsent && !NULL_IS_VALUE.has(kind)) v = undefined;
    if (v === undefined) {
      if (optional) continue;
      return refuse(`missing field "${name}"`, type, true);
    }
    const problem = kindProblem(kind, v);
    if (problem !== null) return refuse(`field "${name}" must be ${problem}`, type, true);
    out[name] = v;
  }
  if (type === 'connection_request' && out['details'] !== undefined) {
    const details = parseDetails(out['details']);
    if (details === null) delete out['details'];
    else out['details'] = details;
  }
  return { ok: true, message: out as T };
}

/** The one-line error of a failed parse: a field's problem is prefixed with the message type. */
function asParsed<T>(checked: Checked<T>): Parsed<T> {
  if (checked.ok) return checked;
  const { error, request } = checked.refusal;
  return { ok: false, error: checked.field ? `${request}: ${error}` : error };
}

function parseDetails(v: unknown): PromptDetails | null {
  const d = v as Record<string, unknown>;
  if (!Number.isInteger(d['pid']) || !Number.isInteger(d['uid'])) return null;
  const args = Array.isArray(d['args']) ? d['args'].filter((a): a is string => typeof a === 'string') : [];
  const details: PromptDetails = { pid: d['pid'] as number, uid: d['uid'] as number, args };
  if (typeof d['host'] === 'string') details.host = d['host'];
  return details;
}

/** A message from the service, checked against its type's fields; unknown fields are dropped. */
export function parseServiceMessage(value: unknown): Parsed<ServiceMessage> {
  return asParsed(parseWith<ServiceMessage>(SERVICE, value, false));
}

/** A message from a client (the agent checks what its browser panel asks it to send). */
export function parseClientMessage(value: unknown): Parsed<ClientMessage> {
  return asParsed(parseWith<ClientMessage>(CLIENT, value, true));
}

/**
 * A client's message as the service reads it: a refusal is the body of its `error` reply. Lenient
 * where the Python tray needs it: unknown fields are ignored, and null is an absent field.
 */
export function readClientMessage(value: unknown): { ok: true; message: ClientMessage } | { ok: false; refusal: Refusal } {
  const checked = parseWith<ClientMessage>(CLIENT, value, true);
  return checked.ok ? checked : { ok: false, refusal: checked.refusal };
}

/** The type a message claims, for an error reply about it (null when it has none). */
export function claimedType(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return null;
  const type = (value as { type?: unknown }).type;
  return typeof type === 'string' ? type : null;
}

/** One line of the socket, parsed and checked. */
export function parseServiceLine(line: string): Parsed<ServiceMessage> {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { ok: false, error: 'not valid JSON' };
  }
  return parseServiceMessage(value);
}
