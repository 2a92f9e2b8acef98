// Verdicts the service allowed the helper to reuse (Verdict.cache_ms): the same executable's
// next new connections to the same protocol and port get the same answer at once, without a
// round trip. The helper adds no policy of its own: entries come only from the service, expire,
// and are all dropped when the service says the policy changed or when the service goes away.

export interface CachedVerdict {
  accept: boolean;
  mark: number | undefined;
  expiresAt: number;
}

export class VerdictCache {
  private readonly entries = new Map<string, CachedVerdict>();
  hits = 0;

  constructor(
    private readonly maxEntries: number,
    private readonly now: () => number = () => performance.now(),
    /** Called when an entry is stored or all are dropped: copies of them (the fast path) must go. */
    private readonly onChange: () => void = () => {},
  ) {}

  static key(exe: string, protocol: number, port: number): string {
    return `${protocol}:${port}:${exe}`;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Milliseconds entry stays valid from now (0 once expired). */
  remainingMs(entry: CachedVerdict): number {
    return Math.max(0, Math.floor(entry.expiresAt - this.now()));
  }

  lookup(key: string): CachedVerdict | null {
    const entry = this.entries.get(key);
    if (!entry) return null;
    if (entry.expiresAt <= this.now()) {
      this.entries.delete(key);
      return null;
    }
    this.hits++;
    return entry;
  }

  store(key: string, accept: boolean, mark: number | undefined, ttlMs: number): void {
    if (ttlMs <= 0) return;
    this.entries.delete(key); // re-insert: Map order is then oldest first, for eviction
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(key, { accept, mark, expiresAt: this.now() + ttlMs });
    this.onChange();
  }

  clear(): void {
    this.entries.clear();
    this.onChange();
  }
}
