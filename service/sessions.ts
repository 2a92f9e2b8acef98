// Decisions that last until the service restarts ("session") or for a set time ("30s", "5m"),
// keyed like the GUI's cache keys: `<path>:<port>` or `<path>:*`.
export interface SessionDecision {
  allow: boolean;
  /** Monotonic ms after which it no longer applies; null = until restart. */
  expiresAt: number | null;
}

export class SessionDecisions {
  private readonly decisions = new Map<string, SessionDecision>();

  /** onChange: called on every set and forget (expiry needs none: the helper never caches a session decision). */
  constructor(
    private readonly now: () => number = () => performance.now(),
    private readonly onChange: () => void = () => undefined,
  ) {}

  /** Port 0 (a protocol without ports, ICMP) is stored as '*', as rules store it. */
  set(subject: string, port: number | '*', allow: boolean, ttlMs: number | null): void {
    this.decisions.set(`${subject}:${port === 0 ? '*' : port}`, { allow, expiresAt: ttlMs === null ? null : this.now() + ttlMs });
    this.onChange();
  }

  /** The exact port first, then all ports, as for rules. */
  lookup(subject: string, port: number): { allow: boolean; key: string } | null {
    if (this.decisions.size === 0) return null; // the common case: no string building per packet
    for (const key of [`${subject}:${port}`, `${subject}:*`]) {
      const d = this.decisions.get(key);
      if (!d) continue;
      if (d.expiresAt !== null && d.expiresAt <= this.now()) {
        this.decisions.delete(key);
        continue;
      }
      return { allow: d.allow, key };
    }
    return null;
  }

  forget(key: string): boolean {
    this.onChange();
    return this.decisions.delete(key);
  }

  get size(): number {
    return this.decisions.size;
  }
}
