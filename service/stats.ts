// Cumulative counters since start: what stats_update, `bastion status` and the metrics report.
import type { Attribution } from '../common/types.js';
import type { DecisionReason } from './policy.js';

export interface DecisionCounters {
  total: number;
  allowed: number;
  blocked: number;
}

/** One decision as counted: `connections` may be 0 (a retransmission already counted) or many (a grouped report). */
export interface CountedDecision {
  allow: boolean;
  reason: DecisionReason;
  attribution: Attribution;
  connections: number;
}

export class Stats {
  total = 0;
  allowed = 0;
  blocked = 0;
  /** Connections by `allow|deny` and reason, keyed `<verdict> <reason>`. */
  readonly byVerdictReason = new Map<string, number>();
  /** Connections by how their process was identified (or why not). */
  readonly byAttribution = new Map<Attribution, number>();

  count(allowed: boolean, connections = 1): void {
    this.total += connections;
    if (allowed) this.allowed += connections;
    else this.blocked += connections;
  }

  countDecision(d: CountedDecision): void {
    this.count(d.allow, d.connections);
    if (d.connections === 0) return;
    const key = `${d.allow ? 'allow' : 'deny'} ${d.reason}`;
    this.byVerdictReason.set(key, (this.byVerdictReason.get(key) ?? 0) + d.connections);
    this.byAttribution.set(d.attribution, (this.byAttribution.get(d.attribution) ?? 0) + d.connections);
  }

  snapshot(): DecisionCounters {
    return { total: this.total, allowed: this.allowed, blocked: this.blocked };
  }
}
