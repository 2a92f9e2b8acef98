// The permanent rules, compiled once into maps so that matching a connection costs a few
// Map lookups and allocates nothing (the returned match objects are built when a rule is set).
// Semantics: gui-protocol.md, "rules.json".
import { wildcardsFor } from '../../common/hostName.js';
import {
  canonicalDestRule,
  canonicalSubject,
  formatRuleKey,
  hostOfSubject,
  isMetaKey,
  META_KEYS,
  nameOfSubject,
  parseDestSubject,
  parseRuleKey,
  SUBJECT_FORMS,
  subjectKind,
} from './ruleKey.js';
import type { RulePort } from './ruleKey.js';

/** The rule that decided a connection; `key` is its canonical rules.json key. */
export interface RuleMatch {
  readonly allow: boolean;
  readonly key: string;
}

/** What a connection is matched on. `exe`/`comm` are null when no process was found. */
export interface RuleQuery {
  exe: string | null;
  comm: string | null;
  destIp: string;
  destPort: number;
  /** The destination's host name as DNS answers told it (lower case, no final dot), if known. */
  host?: string | null;
}

export interface RuleEntry {
  key: string;
  subject: string;
  port: RulePort;
  allow: boolean;
}

export type FromJSONResult = { ok: true; rules: RuleSet; warnings: string[] } | { ok: false; error: string };

export type SetRuleResult = { ok: true; key: string } | { ok: false; error: string };

/** All rules of one subject: exact ports are looked up before the wildcard. */
interface PortRules {
  readonly exact: Map<number, RuleMatch>;
  any: RuleMatch | null;
}

const PREVIEW_CHARS = 60;

export class RuleSet {
  /** Every subject (paths are looked up here directly by exe). */
  private readonly bySubject = new Map<string, PortRules>();
  /** `@name:<comm>` subjects by comm, so matching needs no string building. */
  private readonly byName = new Map<string, PortRules>();
  /** `@dest:<ip>:<port>` subjects by ip, then destination port ('*': every port). */
  private readonly byDest = new Map<string, Map<RulePort, PortRules>>();
  /** `@host:<name>` and `@host:*.<suffix>` subjects by pattern. */
  private readonly byHost = new Map<string, PortRules>();
  /** Legacy `applications`/`services` values, written back unchanged. */
  private readonly meta = new Map<string, unknown>();
  private count = 0;

  /** Builds a rule set from parsed rules.json; bad entries are skipped with a warning. */
  static fromJSON(value: unknown): FromJSONResult {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      return { ok: false, error: `rules must be a JSON object, got ${kindOf(value)}` };
    }
    const rules = new RuleSet();
    const warnings: string[] = [];
    for (const [key, allow] of Object.entries(value)) {
      if (isMetaKey(key)) {
        rules.meta.set(key, allow);
        continue;
      }
      const parsed = parseRuleKey(key);
      if (!parsed.ok) {
        warnings.push(`skipped: ${parsed.error}`);
        continue;
      }
      if (typeof allow !== 'boolean') {
        warnings.push(`skipped: rule ${JSON.stringify(key)} has value ${preview(allow)}; expected true or false`);
        continue;
      }
      if (rules.get(parsed.subject, parsed.port) !== undefined) {
        const canonical = formatRuleKey(parsed.subject, parsed.port);
        warnings.push(`rule ${JSON.stringify(key)} repeats ${JSON.stringify(canonical)}; the later entry wins`);
      }
      rules.put(parsed.subject, parsed.port, allow);
    }
    return { ok: true, rules, warnings };
  }

  /** Number of rules (meta keys not counted). */
  get size(): number {
    return this.count;
  }

  /**
   * The deciding rule, or null. Subjects are tried in the order path, `@name`, `@dest`,
   * `@host` (exact name, then the longest `*.suffix`); within a subject an exact port beats '*'
   * whichever way each one decides. A `@dest` subject for one port beats one for every port.
   */
  match(q: RuleQuery): RuleMatch | null {
    // Only absolute paths can name a path rule: "unknown" and "" never match one.
    if (q.exe !== null && q.exe.startsWith('/')) {
      const hit = pick(this.bySubject.get(q.exe), q.destPort);
      if (hit !== null) return hit;
    }
    if (q.comm !== null && q.comm !== '') {
      const hit = pick(this.byName.get(q.comm), q.destPort);
      if (hit !== null) return hit;
    }
    const ports = this.byDest.get(q.destIp);
    if (ports !== undefined) {
      const hit = pick(ports.get(q.destPort), q.destPort) ?? pick(ports.get('*'), q.destPort);
      if (hit !== null) return hit;
    }
    return q.host ? this.matchHost(q.host, q.destPort) : null;
  }

  private matchHost(host: string, port: number): RuleMatch | null {
    if (this.byHost.size === 0) return null; // the common case: no string building per packet
    const exact = pick(this.byHost.get(host), port);
    if (exact !== null) return exact;
    for (const pattern of wildcardsFor(host)) {
      const hit = pick(this.byHost.get(pattern), port);
      if (hit !== null) return hit;
    }
    return null;
  }

  /** The decision stored for exactly this subject and port (0 means '*'), if any. */
  get(subject: string, port: RulePort): boolean | undefined {
    const rules = this.bySubject.get(canonicalSubject(subject));
    if (rules === undefined) return undefined;
    const found = port === '*' || port === 0 ? rules.any : rules.exact.get(port);
    return found?.allow;
  }

  set(given: string, port: RulePort, allow: boolean): SetRuleResult {
    if (subjectKind(given) === null) {
      return { ok: false, error: `rule subject ${JSON.stringify(given)} is not ${SUBJECT_FORMS}` };
    }
    if (port !== '*' && !(Number.isInteger(port) && port >= 0 && port <= 65535)) {
      return { ok: false, error: `rule port ${port} is not 1-65535 or "*"` };
    }
    const rule = canonicalDestRule(canonicalSubject(given), port);
    if (!rule.ok) return rule;
    return { ok: true, key: this.put(rule.subject, rule.port, allow) };
  }

  /**
   * Deletes by key as the GUI's `delete_rule` sends it: `subject:port` / `subject:*` deletes
   * that entry; a key that is itself a subject (its last ':' part is not a port) deletes every
   * entry of that subject. Meta keys are never deleted. Returns whether anything was removed.
   */
  deleteKey(key: string): boolean {
    if (isMetaKey(key)) return false;
    const parsed = parseRuleKey(key);
    if (parsed.ok) return this.remove(parsed.subject, parsed.port);
    const rules = this.bySubject.get(key);
    if (rules === undefined) return false;
    this.count -= rules.exact.size + (rules.any === null ? 0 : 1);
    this.unregister(key);
    return true;
  }

  /** All rules, sorted by key. */
  entries(): RuleEntry[] {
    const out: RuleEntry[] = [];
    for (const [subject, rules] of this.bySubject) {
      for (const [port, m] of rules.exact) out.push({ key: m.key, subject, port, allow: m.allow });
      if (rules.any !== null) out.push({ key: rules.any.key, subject, port: '*', allow: rules.any.allow });
    }
    return out.sort((a, b) => compareKeys(a.key, b.key));
  }

  /** rules.json content: keys sorted, '*' for all ports, legacy meta keys kept. */
  toJSON(): Record<string, unknown> {
    const flat = new Map<string, unknown>();
    for (const e of this.entries()) flat.set(e.key, e.allow);
    for (const key of META_KEYS) flat.set(key, this.meta.has(key) ? this.meta.get(key) : {});
    const out: Record<string, unknown> = {};
    for (const key of [...flat.keys()].sort(compareKeys)) out[key] = flat.get(key);
    return out;
  }

  clone(): RuleSet {
    const copy = new RuleSet();
    for (const e of this.entries()) copy.put(e.subject, e.port, e.allow);
    for (const [key, value] of this.meta) copy.meta.set(key, value);
    return copy;
  }

  /** Stores a validated rule and returns its canonical key. */
  private put(subject: string, port: RulePort, allow: boolean): string {
    let rules = this.bySubject.get(subject);
    if (rules === undefined) {
      rules = { exact: new Map(), any: null };
      this.register(subject, rules);
    }
    const key = formatRuleKey(subject, port);
    const entry: RuleMatch = { allow, key };
    if (port === '*') {
      if (rules.any === null) this.count++;
      rules.any = entry;
    } else {
      if (!rules.exact.has(port)) this.count++;
      rules.exact.set(port, entry);
    }
    return key;
  }

  private remove(subject: string, port: RulePort): boolean {
    const rules = this.bySubject.get(subject);
    if (rules === undefined) return false;
    if (port === '*') {
      if (rules.any === null) return false;
      rules.any = null;
    } else if (!rules.exact.delete(port)) {
      return false;
    }
    this.count--;
    if (rules.any === null && rules.exact.size === 0) this.unregister(subject);
    return true;
  }

  private register(subject: string, rules: PortRules): void {
    this.bySubject.set(subject, rules);
    const comm = nameOfSubject(subject);
    if (comm !== null) this.byName.set(comm, rules);
    const dest = parseDestSubject(subject);
    if (dest !== null) {
      let ports = this.byDest.get(dest.ip);
      if (ports === undefined) this.byDest.set(dest.ip, (ports = new Map()));
      ports.set(dest.port, rules);
    }
    const host = hostOfSubject(subject);
    if (host !== null) this.byHost.set(host, rules);
  }

  private unregister(subject: string): void {
    this.bySubject.delete(subject);
    const comm = nameOfSubject(subject);
    if (comm !== null) this.byName.delete(comm);
    const dest = parseDestSubject(subject);
    if (dest !== null) {
      const ports = this.byDest.get(dest.ip);
      ports?.delete(dest.port);
      if (ports?.size === 0) this.byDest.delete(dest.ip);
    }
    const host = hostOfSubject(subject);
    if (host !== null) this.byHost.delete(host);
  }
}

function pick(rules: PortRules | undefined, port: number): RuleMatch | null {
  if (rules === undefined) return null;
  return rules.exact.get(port) ?? rules.any;
}

/** Code-unit order, as the old daemon's sorted maps wrote the file. */
function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  return Array.isArray(value) ? 'an array' : `a ${typeof value}`;
}

function preview(value: unknown): string {
  // undefined for undefined, functions and symbols, whatever its type says.
  const text = (JSON.stringify(value) as string | undefined) ?? String(value);
  return text.length > PREVIEW_CHARS ? `${text.slice(0, PREVIEW_CHARS)}…` : text;
}
