// Extended rules (rules.d, docs/rules.md): a rule is a set of criteria that must all hold, and
// an action. They live beside rules.json, whose format the Python GUI edits and must not change.
// One JSON object per rule; this module parses and validates one, and says how specific it is.
import { normalizeHostPattern } from '../../common/hostName.js';
import { parseCidr, type Cidr } from '../../common/cidr.js';

export type RuleAction = 'allow' | 'deny';
export type RuleProto = 'tcp' | 'udp' | 'icmp';

/** A validated extended rule. Every criterion present must match; absent ones match anything. */
export interface ExtendedRule {
  readonly action: RuleAction;
  /** The executable's absolute path (as a rules.json path rule: only a believed path matches). */
  readonly exe?: string;
  /** The process name (comm, at most 15 bytes). */
  readonly comm?: string;
  /** The uid; `userName` keeps the name it was written with, for export. */
  readonly user?: number;
  readonly userName?: string;
  readonly dest?: Cidr;
  /** `name` or `*.suffix`, lower case. */
  readonly host?: string;
  /** A host/IP list of lists.d by name (service/lists). */
  readonly list?: string;
  readonly port?: number;
  readonly proto?: RuleProto;
  /** The parent process's executable path. */
  readonly parent?: string;
  /** The script an interpreter runs (service/rules/scriptOf.ts), absolute and normalized. */
  readonly script?: string;
  /** A Flatpak or Snap application id (helper/identify/appId.ts). */
  readonly appId?: string;
  /** SHA-256 of the executable, lower-case hex: pins exe to one build. */
  readonly sha256?: string;
  readonly comment?: string;
  /** Where it came from, for messages and decisions: `<file>#<index>` (1-based). */
  readonly source: string;
}

export type ParseRuleResult = { ok: true; rule: ExtendedRule } | { ok: false; error: string };

/** Names (from /etc/passwd or getent) to uids; null when there is no such user. */
export type UserLookup = (name: string) => number | null;

/** The JSON keys of a rule in the rules.d format, in the order export writes them. */
export const RULE_KEYS = ['action', 'exe', 'comm', 'user', 'dest', 'host', 'list', 'port', 'proto', 'parent', 'script', 'app_id', 'sha256', 'comment'] as const;

const CRITERIA = RULE_KEYS.filter((k) => k !== 'action' && k !== 'comment');
const MAX_TEXT = 4096;
const COMM_MAX = 15;
const SHA256 = /^[0-9a-f]{64}$/;
const LIST_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Flatpak ids are reverse-DNS (org.mozilla.firefox); snap names are lower case with '-'. */
const APP_ID = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$/;
const USER_NAME = /^[a-z_][a-z0-9_.-]{0,31}\$?$/i;

/** Parses one rule object of a rules.d file. Errors name the field and what was expected. */
export function parseExtendedRule(value: unknown, source: string, lookupUser: UserLookup): ParseRuleResult {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail(`a rule must be a JSON object`);
  const obj = value as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (!(RULE_KEYS as readonly string[]).includes(key)) return fail(`unknown field ${JSON.stringify(key)}; fields: ${RULE_KEYS.join(', ')}`);
  }
  if (obj['action'] !== 'allow' && obj['action'] !== 'deny') return fail(`"action" must be "allow" or "deny"`);
  const rule: { -readonly [K in keyof ExtendedRule]: ExtendedRule[K] } = { action: obj['action'], source };
  if (!CRITERIA.some((k) => obj[k] !== undefined)) return fail('a rule needs at least one criterion (' + CRITERIA.join(', ') + ')');

  for (const key of ['exe', 'parent', 'script'] as const) {
    if (obj[key] === undefined) continue;
    const path = text(obj[key]);
    if (path === null || !isCleanAbsolutePath(path)) return fail(`"${key}" must be an absolute path without "." or ".." parts`);
    rule[key] = path;
  }
  if (obj['comm'] !== undefined) {
    const comm = text(obj['comm']);
    if (comm === null || comm === '' || Buffer.byteLength(comm) > COMM_MAX) return fail(`"comm" must be a process name of 1 to ${COMM_MAX} bytes`);
    rule.comm = comm;
  }
  if (obj['user'] !== undefined) {
    const user = obj['user'];
    if (typeof user === 'number' && Number.isInteger(user) && user >= 0 && user < 2 ** 32 - 1) rule.user = user;
    else if (typeof user === 'string' && USER_NAME.test(user)) {
      const uid = lookupUser(user);
      if (uid === null) return fail(`"user": no user named ${JSON.stringify(user)}`);
      rule.user = uid;
      rule.userName = user;
    } else return fail(`"user" must be a uid or a user name`);
  }
  if (obj['dest'] !== undefined) {
    const cidr = typeof obj['dest'] === 'string' ? parseCidr(obj['dest']) : null;
    if (cidr === null) return fail(`"dest" must be an IP address or a CIDR block (192.0.2.0/24, 2001:db8::/32)`);
    rule.dest = cidr;
  }
  if (obj['host'] !== undefined) {
    const host = typeof obj['host'] === 'string' ? normalizeHostPattern(obj['host']) : null;
    if (host === null) return fail(`"host" must be a host name or *.suffix`);
    rule.host = host;
  }
  if (obj['list'] !== undefined) {
    if (typeof obj['list'] !== 'string' || !LIST_NAME.test(obj['list'])) return fail(`"list" must be a list name (letters, digits, '.', '_', '-')`);
    rule.list = obj['list'];
  }
  const destinations = ['dest', 'host', 'list'].filter((k) => obj[k] !== undefined);
  if (destinations.length > 1) return fail(`a rule names one destination: ${destinations.join(' and ')} given`);
  if (obj['port'] !== undefined) {
    const port = obj['port'];
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return fail(`"port" must be 1-65535 (leave it out for every port)`);
    rule.port = port;
  }
  if (obj['proto'] !== undefined) {
    if (obj['proto'] !== 'tcp' && obj['proto'] !== 'udp' && obj['proto'] !== 'icmp') return fail(`"proto" must be "tcp", "udp" or "icmp"`);
    rule.proto = obj['proto'];
    if (rule.proto === 'icmp' && rule.port !== undefined) return fail(`"proto": "icmp" has no ports; leave "port" out`);
  }
  if (obj['app_id'] !== undefined) {
    if (typeof obj['app_id'] !== 'string' || !APP_ID.test(obj['app_id'])) return fail(`"app_id" must be a Flatpak or Snap application id`);
    rule.appId = obj['app_id'];
  }
  if (obj['sha256'] !== undefined) {
    if (typeof obj['sha256'] !== 'string' || !SHA256.test(obj['sha256'].toLowerCase())) return fail(`"sha256" must be 64 hex digits`);
    if (rule.exe === undefined) return fail(`"sha256" pins an executable: "exe" is needed with it`);
    rule.sha256 = obj['sha256'].toLowerCase();
  }
  if (obj['comment'] !== undefined) {
    const comment = text(obj['comment']);
    if (comment === null) return fail(`"comment" must be a string`);
    rule.comment = comment;
  }
  return { ok: true, rule };

  function fail(error: string): ParseRuleResult {
    return { ok: false, error: `${source}: ${error}` };
  }
}

function text(v: unknown): string | null {
  return typeof v === 'string' && v.length <= MAX_TEXT && !v.includes('\0') ? v : null;
}

function isCleanAbsolutePath(path: string): boolean {
  if (!path.startsWith('/') || path.length < 2) return false;
  return path
    .slice(1)
    .split('/')
    .every((part) => part !== '' && part !== '.' && part !== '..');
}

/** The rule in the rules.d format (what export prints and import reads). */
export function ruleToJson(rule: ExtendedRule): Record<string, unknown> {
  const out: Record<string, unknown> = { action: rule.action };
  if (rule.exe !== undefined) out['exe'] = rule.exe;
  if (rule.comm !== undefined) out['comm'] = rule.comm;
  if (rule.user !== undefined) out['user'] = rule.userName ?? rule.user;
  if (rule.dest !== undefined) out['dest'] = rule.dest.text;
  if (rule.host !== undefined) out['host'] = rule.host;
  if (rule.list !== undefined) out['list'] = rule.list;
  if (rule.port !== undefined) out['port'] = rule.port;
  if (rule.proto !== undefined) out['proto'] = rule.proto;
  if (rule.parent !== undefined) out['parent'] = rule.parent;
  if (rule.script !== undefined) out['script'] = rule.script;
  if (rule.appId !== undefined) out['app_id'] = rule.appId;
  if (rule.sha256 !== undefined) out['sha256'] = rule.sha256;
  if (rule.comment !== undefined) out['comment'] = rule.comment;
  return out;
}

/** What a rule matches, without its action or comment: two rules with one identity are one rule. */
export function ruleIdentity(rule: ExtendedRule): string {
  const json = ruleToJson(rule);
  delete json['action'];
  delete json['comment'];
  if (rule.user !== undefined) json['user'] = rule.user; // a name and its uid are one user
  return JSON.stringify(json);
}

/**
 * How specific a rule is (docs/rules.md, "Precedence"); the higher wins. First the number of
 * criteria (each of exe, comm, user, port, proto, parent, script, app_id, sha256 and the
 * destination counts one), then how narrow the destination is: an exact host name, then a
 * `*.suffix` (more labels narrower), then an address block (longer prefix narrower; IPv4
 * prefixes counted as IPv6 ones, +96), then a list, then no destination.
 */
export function specificity(rule: ExtendedRule): number {
  let criteria = 0;
  for (const v of [rule.exe, rule.comm, rule.user, rule.port, rule.proto, rule.parent, rule.script, rule.appId, rule.sha256]) if (v !== undefined) criteria++;
  let destination = 0;
  if (rule.host !== undefined) {
    destination = rule.host.startsWith('*.') ? 300 + Math.min(rule.host.split('.').length - 1, 127) : 500;
    criteria++;
  } else if (rule.dest !== undefined) {
    destination = 100 + rule.dest.prefix + (rule.dest.bytes.length === 4 ? 96 : 0);
    criteria++;
  } else if (rule.list !== undefined) {
    destination = 50;
    criteria++;
  }
  return criteria * 1000 + destination;
}
