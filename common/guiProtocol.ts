// The GUI socket protocol as one typed module (docs/gui-protocol.md, docs/gui-extensions.md):
// a discriminated union per direction and one validating parser, shared by the CLI, the desktop
// agent and its browser panel. Field names and JSON types are the Python tray's; a field this
// module does not know is dropped, so nothing unchecked crosses a process boundary.
import type { ConnectionRequestMessage } from './connectionRequestMessage.js';
import type { DecisionMessage } from './decisionMessage.js';

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
  helper: { connected: boolean; pid: number | null; capabilities: string[] };
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
  | { type: 'unsubscribed'; feed: string };

/** Every message a client sends. */
export type ClientMessage =
  | { type: 'gui_response'; request_id: string; allow: boolean; permanent?: boolean; all_ports?: boolean; duration?: string }
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
  | { type: 'subscribe'; feed: 'decisions' }
  | { type: 'unsubscribe'; feed: 'decisions' };

export type ServiceMessageType = ServiceMessage['type'];
export type ClientMessageType = ClientMessage['type'];
export type ServiceMessageOf<T extends ServiceMessageType> = Extract<ServiceMessage, { type: T }>;

// ---- the schema: one table per direction, read by one parser ----

type Kind = 'string' | 'number' | 'integer' | 'boolean' | 'object' | 'strings' | 'any' | 'string|null' | 'mode';
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
};

const CLIENT: Readonly<Record<ClientMessageType, Schema>> = {
  gui_response: { request_id: 'string', allow: 'boolean', permanent: 'boolean?', all_ports: 'boolean?', duration: 'string?' },
  add_rule: { app_path: 'string?', app_name: 'string?', port: 'integer?', allow: 'boolean', all_ports: 'boolean?', dest_ip: 'string?' },
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
};

export type Parsed<T> = { ok: true; message: T } | { ok: false; error: string };

function kindOk(kind: Kind, v: unknown): boolean {
  switch (kind) {
    case 'string':
      return typeof v === 'string';
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'integer':
      return Number.isInteger(v);
    case 'boolean':
      return typeof v === 'boolean';
    case 'object':
      return typeof v === 'object' && v !== null && !Array.isArray(v);
    case 'strings':
      return Array.isArray(v) && v.every((s) => typeof s === 'string');
    case 'any':
      return v !== undefined;
    case 'string|null':
      return v === null || typeof v === 'string';
    case 'mode':
      return v === 'learning' || v === 'enforcement';
  }
}

const KIND_WORDS: Record<Kind, string> = {
  string: 'a string',
  number: 'a number',
  integer: 'an integer',
  boolean: 'a boolean',
  object: 'an object',
  strings: 'a list of strings',
  any: 'present',
  'string|null': 'a string or null',
  mode: '"learning" or "enforcement"',
};

function parseWith<T>(tables: Readonly<Record<string, Schema>>, value: unknown): Parsed<T> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, error: 'a message must be a JSON object' };
  const msg = value as Record<string, unknown>;
  const type = msg['type'];
  if (typeof type !== 'string') return { ok: false, error: 'missing field "type"' };
  if (!Object.prototype.hasOwnProperty.call(tables, type)) return { ok: false, error: `unknown message type "${type}"` };
  const out: Record<string, unknown> = { type };
  for (const [name, spec] of Object.entries(tables[type]!)) {
    const optional = spec.endsWith('?');
    const kind = (optional ? spec.slice(0, -1) : spec) as Kind;
    const v = msg[name];
    if (v === undefined) {
      if (optional) continue;
      return { ok: false, error: `${type}: missing field "${name}"` };
    }
    if (!kindOk(kind, v)) return { ok: false, error: `${type}: field "${name}" must be ${KIND_WORDS[kind]}` };
    out[name] = v;
  }
  if (type === 'connection_request' && out['details'] !== undefined) {
    const details = parseDetails(out['details']);
    if (details === null) delete out['details'];
    else out['details'] = details;
  }
  return { ok: true, message: out as T };
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
  return parseWith<ServiceMessage>(SERVICE, value);
}

/** A message from a client (the agent checks what its browser panel asks it to send). */
export function parseClientMessage(value: unknown): Parsed<ClientMessage> {
  return parseWith<ClientMessage>(CLIENT, value);
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
