// Decisions that last until the service restarts ("session") or for a set time ("30s", "5m"),
// keyed like the GUI's cache keys (`<path>:<port>` or `<path>:*`) and bound to the uid whose
// process was asked about: one user's answer never lets another user's process out.
export interface SessionDecision {
  allow: boolean;
  /** Monotonic ms after which it no longer applies; null = until restart. */
  expiresAt: number | null;
}

export class SessionDecisions {
  /** GUI key -> uid -> decision. */
  private readonly decisions = new Map<string, Map<number, SessionDecision>>();

  /** onChange: called on every set and forget (expiry needs none: the helper never caches a session decision). */
  constructor(
    private readonly now: () => number = () => performance.now(),
    private readonly onChange: () => void = () => undefined,
  ) {}

  /** Port 0 (a protocol without ports, ICMP) is stored as '*', as rules store it. */
  set(uid: number, subject: string, port: number | '*', allow: boolean, ttlMs: number | null): void {
    const key = `${subject}:${port === 0 ? '*' : port}`;
    let byUid = this.decisions.get(key);
    if (!byUid) this.decisions.set(key, (byUid = new Map()));
    byUid.set(uid, { allow, expiresAt: ttlMs === null ? null : this.now() + ttlMs });
    this.onChange();
  }

  /** The exact port first, then all ports, as for rules; only decisions for this uid. */
  lookup(uid: number, subject: string, port: number): { allow: boolean; key: string } | null {
    if (this.decisions.size === 0) return null; // the common case: no string building per packet
    for (const key of [`${subject}:${port}`, `${subject}:*`]) {
      const byUid = this.decisions.get(key);
      const d = byUid?.get(uid);
      if (!byUid || !d) continue;
      if (d.expiresAt !== null && d.expiresAt <= this.now()) {
        byUid.delete(uid);
        if (byUid.size === 0) this.decisions.delete(key);
        continue;
      }
      return { allow: d.allow, key };
    }
    return null;
  }

  /** clear_cache: forgets the key for every uid, or for one. */
  forget(key: string, uid?: number): boolean {
    this.onChange();
    const byUid = this.decisions.get(key);
    if (!byUid) return false;
    if (uid === undefined) return this.decisions.delete(key);
    const had = byUid.delete(uid);
    if (byUid.size === 0) this.decisions.delete(key);
    return had;
  }

  get size(): number {
    return this.decisions.size;
  }

  /** Whether a decision (for any uid, expired or not) names this subject. */
  names(subject: string): boolean {
    for (const key of this.decisions.keys()) if (key.slice(0, key.lastIndexOf(':')) === subject) return true;
    return false;
  }
}
