// The extended rules in force (rules.d and imported ones), ordered once by precedence so that
// the first rule that matches a connection is the one that decides (docs/rules.md,
// "Precedence"). A connection is checked against the rules in that order; cheap criteria
// (numbers, strings, address bytes) before the ones that cost a syscall or a hash.
import { cidrContains } from '../../common/cidr.js';
import type { Connection } from '../connection.js';
import { specificity, type ExtendedRule } from './extendedRule.js';

/** What matching needs beyond the connection itself; each is asked only when a rule needs it. */
export interface ExtendedFacts {
  /** The script the connection's interpreter runs (service/rules/scriptOf.ts), or null. */
  script(conn: Connection): string | null;
  /** SHA-256 (hex) of the running executable, or why it is not known. */
  sha256(conn: Connection): { ok: true; hash: string } | { ok: false; why: string };
  /** Whether the destination (its address, or its host name) is on the named list. */
  inList(name: string, conn: Connection): boolean;
}

export type ExtendedMatch =
  | { kind: 'rule'; rule: ExtendedRule }
  /** Every criterion held but the pinned hash: the program changed, so it is asked about again. */
  | { kind: 'pin_mismatch'; rule: ExtendedRule; why: string };

export class ExtendedRuleSet {
  /** Most specific first; deny before allow at equal specificity; then in file order. */
  readonly ordered: readonly ExtendedRule[];
  /** Whether some rule could match a connection of any executable (it names none). */
  private readonly anyExe: boolean;
  private readonly exes: ReadonlySet<string>;

  constructor(rules: readonly ExtendedRule[]) {
    const ranked = rules.map((rule, index) => ({ rule, index, score: specificity(rule) }));
    ranked.sort((a, b) => b.score - a.score || actionRank(a.rule) - actionRank(b.rule) || a.index - b.index);
    this.ordered = ranked.map((r) => r.rule);
    this.anyExe = rules.some((r) => r.exe === undefined);
    this.exes = new Set(rules.flatMap((r) => (r.exe === undefined ? [] : [r.exe])));
  }

  get size(): number {
    return this.ordered.length;
  }

  /**
   * Whether some rule could decide a connection of this executable: then a rules.json path
   * rule for it is not the last word, so neither the kernel nor the helper's cache may apply it.
   */
  couldMatchExe(exe: string): boolean {
    return this.anyExe || this.exes.has(exe);
  }

  match(conn: Connection, facts: ExtendedFacts): ExtendedMatch | null {
    for (const rule of this.ordered) {
      if (!cheapCriteriaHold(rule, conn)) continue;
      if (rule.list !== undefined && !facts.inList(rule.list, conn)) continue;
      if (rule.script !== undefined && facts.script(conn) !== rule.script) continue;
      if (rule.sha256 !== undefined) {
        const hash = facts.sha256(conn);
        if (!hash.ok) return { kind: 'pin_mismatch', rule, why: hash.why };
        if (hash.hash !== rule.sha256)
          return { kind: 'pin_mismatch', rule, why: `${rule.exe ?? ''} now has SHA-256 ${hash.hash}, not the pinned ${rule.sha256}` };
      }
      return { kind: 'rule', rule };
    }
    return null;
  }
}

function actionRank(rule: ExtendedRule): number {
  return rule.action === 'deny' ? 0 : 1;
}

const PROTOCOLS = { TCP: 'tcp', UDP: 'udp', ICMP: 'icmp', OTHER: null } as const;

function cheapCriteriaHold(rule: ExtendedRule, conn: Connection): boolean {
  if (rule.port !== undefined && rule.port !== conn.port) return false;
  if (rule.proto !== undefined && rule.proto !== PROTOCOLS[conn.protocol]) return false;
  // Only a believed path (connection.ts) matches exe, and only its process's parent and app id count.
  if (rule.exe !== undefined && rule.exe !== conn.exe) return false;
  if (rule.user !== undefined && rule.user !== conn.uid) return false;
  if (rule.comm !== undefined && rule.comm !== conn.comm) return false;
  const p = conn.record.process;
  if (rule.parent !== undefined && (conn.exe === null || p?.parentExe !== rule.parent)) return false;
  if (rule.appId !== undefined && (p === null || p.appId !== rule.appId)) return false;
  if (rule.dest !== undefined && !cidrContains(rule.dest, conn.record.dstAddr)) return false;
  if (rule.host !== undefined && !hostMatches(rule.host, conn.host)) return false;
  return true;
}

/** `name` matches itself; `*.suffix` matches names below suffix, not suffix itself (hostName.ts). */
function hostMatches(pattern: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  if (!pattern.startsWith('*.')) return host === pattern;
  return host.length > pattern.length - 1 && host.endsWith(pattern.slice(1));
}
