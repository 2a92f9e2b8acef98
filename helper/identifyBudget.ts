// How much time identifying packets may take, per uid: a token bucket of milliseconds. A uid
// whose packets make the helper search (huge fd tables, sockets no one holds any more) spends
// its own share; when it is gone, its packets are looked up only where that is cheap (known
// sockets, a few guesses) and are otherwise credited to no one, which policy denies like any
// unknown program. Other uids keep their whole share.

interface Bucket {
  ms: number;
  at: number;
}

/** Buckets kept at most; full ones are forgotten first (a forgotten uid starts full again). */
const MAX_BUCKETS = 1024;

export class IdentifyBudget {
  private readonly buckets = new Map<number, Bucket>();

  constructor(
    /** Refill rate: ms of lookups each uid may spend per second. */
    private readonly msPerSecond: number,
    /** Most a uid can save up. */
    private readonly burstMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** ms uid may spend now (0 when spent). */
  available(uid: number): number {
    const bucket = this.buckets.get(uid);
    if (bucket === undefined) return this.burstMs;
    const t = this.now();
    bucket.ms = Math.min(this.burstMs, bucket.ms + ((t - bucket.at) / 1000) * this.msPerSecond);
    bucket.at = t;
    return Math.max(0, bucket.ms);
  }

  /** Charges uid for ms spent (it may go below zero: a lookup is stopped only at its own budget). */
  spend(uid: number, ms: number): void {
    let bucket = this.buckets.get(uid);
    if (bucket === undefined) {
      if (this.buckets.size >= MAX_BUCKETS) this.forgetFull();
      bucket = { ms: this.burstMs, at: this.now() };
      this.buckets.set(uid, bucket);
    }
    bucket.ms -= ms;
  }

  private forgetFull(): void {
    for (const uid of [...this.buckets.keys()]) if (this.available(uid) >= this.burstMs) this.buckets.delete(uid);
    if (this.buckets.size >= MAX_BUCKETS) this.buckets.delete(this.buckets.keys().next().value as number);
  }
}
