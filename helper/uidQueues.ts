// Packets waiting to be identified, one queue per uid (the packet's socket owner, NFQA_UID),
// served in turn: a uid that floods waits behind its own packets, never in front of another
// uid's. A uid with too many packets in flight (waiting here or held for the service) gets
// no more until some are answered: the caller drops its new ones.

export class UidQueues<T> {
  /** uid -> its waiting packets, oldest first; the map's order is the order uids are served in. */
  private readonly queues = new Map<number, T[]>();
  /** uid -> packets accepted by push() and not yet released. */
  private readonly inFlight = new Map<number, number>();
  private waiting = 0;

  constructor(private readonly maxInFlightPerUid: number) {}

  /** Packets waiting in all. */
  get size(): number {
    return this.waiting;
  }

  /** Queues item for uid; false (and nothing queued) when uid has its maximum in flight. */
  push(uid: number, item: T): boolean {
    const inFlight = this.inFlight.get(uid) ?? 0;
    if (inFlight >= this.maxInFlightPerUid) return false;
    this.inFlight.set(uid, inFlight + 1);
    const queue = this.queues.get(uid);
    if (queue === undefined) this.queues.set(uid, [item]);
    else queue.push(item);
    this.waiting++;
    return true;
  }

  /**
   * The oldest packet of the next uid in turn (that uid then goes to the back), or null. A uid
   * that prefer() names goes before the others (the first in turn of them): a uid that costs
   * little is served before one whose lookups are slow.
   */
  next(prefer?: (uid: number) => boolean): { uid: number; item: T } | null {
    let chosen: [number, T[]] | null = null;
    for (const entry of this.queues) {
      if (chosen === null) chosen = entry;
      if (prefer === undefined) break;
      if (prefer(entry[0])) {
        chosen = entry;
        break;
      }
    }
    if (chosen === null) return null;
    const [uid, queue] = chosen;
    const item = queue.shift()!;
    this.queues.delete(uid);
    if (queue.length > 0) this.queues.set(uid, queue);
    this.waiting--;
    return { uid, item };
  }

  /**
   * Puts item, which next() just gave out, back behind uid's other packets, and uid at the back
   * of the turn: everything else waiting goes first. It is still in flight (not counted again).
   */
  retry(uid: number, item: T): void {
    const queue = this.queues.get(uid) ?? [];
    queue.push(item);
    this.queues.delete(uid);
    this.queues.set(uid, queue);
    this.waiting++;
  }

  /** A packet of uid got its verdict: it no longer counts against uid. */
  release(uid: number): void {
    const inFlight = this.inFlight.get(uid) ?? 0;
    if (inFlight <= 1) this.inFlight.delete(uid);
    else this.inFlight.set(uid, inFlight - 1);
  }

  /** Empties the queues, oldest first per uid (at shutdown, to give each packet a verdict). */
  drain(each: (uid: number, item: T) => void): void {
    for (let next = this.next(); next !== null; next = this.next()) {
      this.release(next.uid);
      each(next.uid, next.item);
    }
  }
}
