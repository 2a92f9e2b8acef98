// Cumulative counters since start: what stats_update and `bastion status` report.
export interface DecisionCounters {
  total: number;
  allowed: number;
  blocked: number;
}

export class Stats {
  total = 0;
  allowed = 0;
  blocked = 0;

  count(allowed: boolean, connections = 1): void {
    this.total += connections;
    if (allowed) this.allowed += connections;
    else this.blocked += connections;
  }

  snapshot(): DecisionCounters {
    return { total: this.total, allowed: this.allowed, blocked: this.blocked };
  }
}
