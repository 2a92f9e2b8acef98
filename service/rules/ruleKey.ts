// The rules.json key grammar, shared with the Python GUI (gui-protocol.md, "rules.json"):
//   key     = subject ":" port
//   port    = 1..65535 | "*" | "0"          ("0" is read as "*" and written back as "*")
//   subject = absolute path | "@name:" comm | "@dest:" ip ":" (port | "*") | "@host:" host
//   host    = dns-name | "*." dns-name      (matched against the snooped name, docs/host-names.md)
// A key is split at its LAST ':' because comms (e.g. "IPC:CSteamEngin") and IPv6 addresses
// contain ':' themselves. A `@dest` subject's own port may be "*" (or "0", written back as
// "*"): every port of that address, and the only way to name ICMP, which has no port.
import { isIP } from 'node:net';
import { normalizeHostPattern } from '../../common/hostName.js';

/** A rule's port: one destination port, or '*' for all ports. */
export type RulePort = number | '*';

export type SubjectKind = 'path' | 'name' | 'dest' | 'host';

export type ParsedRuleKey = { ok: true; subject: string; port: RulePort } | { ok: false; error: string };

const NAME_PREFIX = '@name:';
const DEST_PREFIX = '@dest:';
const HOST_PREFIX = '@host:';
const PORT_DIGITS = /^[0-9]{1,5}$/;

/** What a valid subject looks like, for error messages. */
export const SUBJECT_FORMS = 'an absolute path, @name:<comm>, @dest:<ip>:<port or *> or @host:<name or *.suffix>';

/** Legacy top-level keys of rules.json: kept on save, never rules. */
export const META_KEYS: readonly string[] = ['applications', 'services'];

export function isMetaKey(key: string): boolean {
  return META_KEYS.includes(key);
}

/** Parses the part after the last ':'; null when it is not a port. */
export function parsePortPart(text: string): RulePort | null {
  if (text === '*') return '*';
  if (!PORT_DIGITS.test(text)) return null;
  const port = Number(text);
  if (port === 0) return '*';
  return port <= 65535 ? port : null;
}

/** Splits `@dest:<ip>:<port>` into its address and port ('*': every port); null when it is not one. */
export function parseDestSubject(subject: string): { ip: string; port: RulePort } | null {
  if (!subject.startsWith(DEST_PREFIX)) return null;
  const rest = subject.slice(DEST_PREFIX.length);
  const colon = rest.lastIndexOf(':');
  if (colon < 0) return null;
  const ip = rest.slice(0, colon);
  const port = parsePortPart(rest.slice(colon + 1));
  if (isIP(ip) === 0 || port === null) return null;
  return { ip, port };
}

/** The host pattern of an `@host:<name or *.suffix>` subject (lower case, no final dot), or null. */
export function hostOfSubject(subject: string): string | null {
  if (!subject.startsWith(HOST_PREFIX)) return null;
  return normalizeHostPattern(subject.slice(HOST_PREFIX.length));
}

/** What a subject names, or null when it is not a valid subject. */
export function subjectKind(subject: string): SubjectKind | null {
  if (subject.startsWith('/')) return 'path';
  if (subject.startsWith(NAME_PREFIX)) return subject.length > NAME_PREFIX.length ? 'name' : null;
  if (subject.startsWith(DEST_PREFIX)) return parseDestSubject(subject) === null ? null : 'dest';
  if (subject.startsWith(HOST_PREFIX)) return hostOfSubject(subject) === null ? null : 'host';
  return null;
}

/**
 * The one spelling of a valid subject, so that equal rules share a key: a `@dest` port 0 is
 * written "*", a host pattern in lower case without a final dot. Other subjects are as given.
 */
export function canonicalSubject(subject: string): string {
  const dest = parseDestSubject(subject);
  if (dest !== null) return destSubject(dest.ip, dest.port);
  const host = hostOfSubject(subject);
  if (host !== null) return HOST_PREFIX + host;
  return subject;
}

export function isPathSubject(subject: string): boolean {
  return subjectKind(subject) === 'path';
}

export function isNameSubject(subject: string): boolean {
  return subjectKind(subject) === 'name';
}

export function isDestSubject(subject: string): boolean {
  return subjectKind(subject) === 'dest';
}

export function isHostSubject(subject: string): boolean {
  return subjectKind(subject) === 'host';
}

/** The comm of an `@name:<comm>` subject, or null. */
export function nameOfSubject(subject: string): string | null {
  return isNameSubject(subject) ? subject.slice(NAME_PREFIX.length) : null;
}

export function nameSubject(comm: string): string {
  return NAME_PREFIX + comm;
}

/** `@dest:<ip>:<port>`; port 0 (a protocol without ports, such as ICMP) or '*' is written "*". */
export function destSubject(ip: string, port: RulePort): string {
  return `${DEST_PREFIX}${ip}:${port === 0 ? '*' : port}`;
}

export function hostSubject(pattern: string): string {
  return HOST_PREFIX + pattern;
}

/** The canonical key: port 0 is written as '*'. */
export function formatRuleKey(subject: string, port: RulePort): string {
  return `${subject}:${port === 0 ? '*' : port}`;
}

/** The subject of a key (what is left of its last ':'), or null when it has no port part. */
export function ruleKeySubject(key: string): string | null {
  const colon = key.lastIndexOf(':');
  return colon < 0 ? null : key.slice(0, colon);
}

/**
 * A `@dest` rule's one spelling: the destination port belongs to the subject and the key's own
 * port is '*' (`@dest:192.0.2.7:53:*`). `@dest:<ip>:53:53` and `@dest:<ip>:*:53` say the same
 * and are stored so; `@dest:<ip>:53:80` could match nothing and is an error. Other subjects are
 * returned as given.
 */
export function canonicalDestRule(subject: string, port: RulePort): { ok: true; subject: string; port: RulePort } | { ok: false; error: string } {
  const dest = parseDestSubject(subject);
  if (dest === null || port === '*' || port === 0) return { ok: true, subject, port: port === 0 ? '*' : port };
  if (dest.port === '*') return { ok: true, subject: destSubject(dest.ip, port), port: '*' };
  if (dest.port === port) return { ok: true, subject: destSubject(dest.ip, port), port: '*' };
  return {
    ok: false,
    error: `rule ${JSON.stringify(formatRuleKey(subject, port))} names port ${dest.port} in its subject and port ${port} after it; write ${JSON.stringify(formatRuleKey(subject, '*'))}`,
  };
}

export function parseRuleKey(key: string): ParsedRuleKey {
  const subject = ruleKeySubject(key);
  if (subject === null) return { ok: false, error: `rule key ${JSON.stringify(key)} has no ":<port>" part` };
  const portPart = key.slice(subject.length + 1);
  const port = parsePortPart(portPart);
  if (port === null) {
    return {
      ok: false,
      error: `rule key ${JSON.stringify(key)} has port part ${JSON.stringify(portPart)}; expected 1-65535, "*" or "0"`,
    };
  }
  if (subjectKind(subject) === null) {
    return {
      ok: false,
      error: `rule key ${JSON.stringify(key)} has subject ${JSON.stringify(subject)}; expected ${SUBJECT_FORMS}`,
    };
  }
  const dest = canonicalDestRule(canonicalSubject(subject), port);
  if (!dest.ok) return dest;
  return { ok: true, subject: dest.subject, port: dest.port };
}
