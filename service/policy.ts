// The decide stage: one synchronous function from a connection to a decision. Order:
// whitelist (system services, loopback, LAN, DNS to the nameservers) -> session decisions -> rules -> mode.
// Nothing here waits: a connection that needs a person comes back as 'ask'.
import type { BastionConfig } from './config.js';
import { connectionSubject, type Connection } from './connection.js';
import type { ExtendedRule } from './rules/extendedRule.js';
import type { ExtendedFacts, ExtendedRuleSet } from './rules/extendedRuleSet.js';
import type { RuleSet } from './rules/ruleSet.js';
import type { SessionDecisions } from './sessions.js';
import type { Whitelist } from './whitelist.js';

export type DecisionReason = 'localhost' | 'lan' | 'system-service' | 'dns' | 'session' | 'rule' | 'learning' | 'default' | 'prompt' | 'timeout';

export type FinalDecision = { kind: 'final'; allow: boolean; reason: DecisionReason; ruleKey: string | null };

export type Decision = FinalDecision | { kind: 'ask' };

export interface PolicyDeps {
  config: () => Readonly<BastionConfig>;
  rules: () => RuleSet;
  sessions: SessionDecisions;
  whitelist: Whitelist;
  /** rules.d and imported rules; they rank above rules.json (docs/rules.md, "Precedence"). */
  extended?: () => ExtendedRuleSet;
  facts?: ExtendedFacts;
  /** A rule's pinned SHA-256 no longer holds: the connection is asked about again, and people are told why. */
  onPinMismatch?: (rule: ExtendedRule, conn: Connection, why: string) => void;
}

export class Policy {
  constructor(private readonly deps: PolicyDeps) {}

  decide(conn: Connection): Decision {
    const config = this.deps.config();
    const passed = this.deps.whitelist.check(conn, config);
    if (passed) return { kind: 'final', allow: true, reason: passed, ruleKey: null };

    // Keyed like prompts, so an answer about a program without a path (@name, @dest) lasts too.
    if (this.deps.sessions.size > 0) {
      const session = this.deps.sessions.lookup(conn.record.uid, connectionSubject(conn), conn.port);
      if (session) return { kind: 'final', allow: session.allow, reason: 'session', ruleKey: session.key };
    }

    const extended = this.deps.facts && this.deps.extended?.();
    if (extended && extended.size > 0) {
      const hit = extended.match(conn, this.deps.facts!);
      if (hit?.kind === 'rule') return { kind: 'final', allow: hit.rule.action === 'allow', reason: 'rule', ruleKey: hit.rule.source };
      if (hit?.kind === 'pin_mismatch') {
        // Not rules.json's path rule either: the program is not the one that was pinned.
        this.deps.onPinMismatch?.(hit.rule, conn, hit.why);
        return config.mode === 'learning' ? { kind: 'final', allow: true, reason: 'learning', ruleKey: null } : { kind: 'ask' };
      }
    }

    const rule = this.deps.rules().match({ exe: conn.exe, comm: conn.comm, destIp: conn.destIp, destPort: conn.port, host: conn.host ?? null });
    if (rule) return { kind: 'final', allow: rule.allow, reason: 'rule', ruleKey: rule.key };

    // Learning mode never waits: allow now, the GUI is only told.
    if (config.mode === 'learning') return { kind: 'final', allow: true, reason: 'learning', ruleKey: null };
    return { kind: 'ask' };
  }

  /**
   * Whether a rules.json path rule for exe is the last word on its connections: not when an
   * extended rule could decide some of them (then the kernel and the helper's cache must ask).
   */
  pathRulesFinal(exe: string): boolean {
    const extended = this.deps.extended?.();
    return extended === undefined || !extended.couldMatchExe(exe);
  }

  /** What enforcement applies when nobody answers (no client, timeout, prompts disabled). */
  defaultDecision(reason: 'default' | 'timeout'): FinalDecision {
    return { kind: 'final', allow: this.deps.config().defaultAction === 'allow', reason, ruleKey: null };
  }
}
