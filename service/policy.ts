// The decide stage: one synchronous function from a connection to a decision. Order:
// whitelist (system services, loopback, LAN, DNS to the nameservers) -> session decisions -> rules -> mode.
// Nothing here waits: a connection that needs a person comes back as 'ask'.
import type { BastionConfig } from './config.js';
import { connectionSubject, type Connection } from './connection.js';
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

    const rule = this.deps.rules().match({ exe: conn.exe, comm: conn.comm, destIp: conn.destIp, destPort: conn.port, host: conn.host ?? null });
    if (rule) return { kind: 'final', allow: rule.allow, reason: 'rule', ruleKey: rule.key };

    // Learning mode never waits: allow now, the GUI is only told.
    if (config.mode === 'learning') return { kind: 'final', allow: true, reason: 'learning', ruleKey: null };
    return { kind: 'ask' };
  }

  /** What enforcement applies when nobody answers (no client, timeout, prompts disabled). */
  defaultDecision(reason: 'default' | 'timeout'): FinalDecision {
    return { kind: 'final', allow: this.deps.config().defaultAction === 'allow', reason, ruleKey: null };
  }
}
