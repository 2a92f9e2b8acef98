// Every held packet gets exactly one verdict: from the service, or the fallback when the
// service is absent, late past the packet's deadline, or the helper is stopping.
// The deadline counts only time during which the helper could have read the service's answer:
// while its own event loop was blocked (a long lookup, a slow disk) the clock is stopped, so a
// packet is never given the fallback for a delay that was the helper's own.
import type { VerdictAction } from '../common/types.js';

export type FallbackReason = 'no_service' | 'deadline' | 'service_lost' | 'shutdown';

export interface PendingOptions {
  /** A packet must get a verdict or a hold within this many ms of being sent. */
  ackDeadlineMs: number;
  /** A hold may keep a packet at most this long in all (prompt timeout + margin). */
  maxHoldMs: number;
  /** How often deadlines are checked. */
  sweepIntervalMs: number;
  fallbackAccept: boolean;
  now?: () => number;
}

export interface PendingCallbacks {
  /**
   * Sends the verdict to the kernel. `final`: the service denied a program it knows (its path
   * proven), so a denial is rejected and the program fails at once. Otherwise a denial is a
   * drop, which the program retries: a fallback across a restart of the service, or a packet
   * whose process was not identified this time (a lookup past its budget) may get through then.
   */
  apply(packetId: number, accept: boolean, mark: number | undefined, final: boolean): void;
  onFallback(packetId: number, reason: FallbackReason): void;
  /** The service's verdict for a packet held with a cache key, and how long it may be reused. */
  onDecided?(cacheKey: string, accept: boolean, mark: number | undefined, cacheMs: number): void;
  /** A held packet of uid got its verdict (either way): it no longer counts as in flight. */
  onReleased?(uid: number): void;
}

interface Entry {
  deadline: number;
  /** Latest a hold may extend to. */
  limit: number;
  /** Where the verdict may be cached (exe, protocol, port), or null. */
  cacheKey: string | null;
  /** The packet's socket uid (NFQA_UID), -1 when none. */
  uid: number;
  /** The packet's program was identified, its path proven: a denial of it is final (rejected). */
  knownProgram: boolean;
}

/** A sweep this much later than planned means the event loop was blocked (ms). */
const STALL_TOLERANCE_MS = 20;

export class PendingVerdicts {
  private readonly entries = new Map<number, Entry>();
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
  /** When the last sweep ran, to see how long the event loop was blocked before this one. */
  private lastSweepAt = -1;
  /** Time the event loop was blocked, in all: not counted against any deadline. */
  stalledMs = 0;
  fallbackCount = 0;
  lateVerdicts = 0;

  constructor(
    private readonly options: PendingOptions,
    private readonly callbacks: PendingCallbacks,
  ) {
    this.now = options.now ?? (() => performance.now());
  }

  get size(): number {
    return this.entries.size;
  }

  has(packetId: number): boolean {
    return this.entries.has(packetId);
  }

  start(): void {
    if (this.timer) return;
    this.lastSweepAt = this.now();
    this.timer = setInterval(() => this.sweep(), this.options.sweepIntervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Starts the clock for a packet that was just sent to the service. */
  hold(packetId: number, cacheKey: string | null = null, uid = -1, knownProgram = false): void {
    const t = this.now();
    this.entries.set(packetId, { deadline: t + this.options.ackDeadlineMs, limit: t + this.options.maxHoldMs, cacheKey, uid, knownProgram });
  }

  /** Applies the service's answer. A verdict for a packet no longer held is counted and ignored. */
  resolve(packetId: number, action: VerdictAction, mark?: number, holdMs?: number, cacheMs?: number): void {
    const entry = this.entries.get(packetId);
    if (!entry) {
      this.lateVerdicts++;
      return;
    }
    if (action === 'hold') {
      entry.deadline = Math.min(this.now() + (holdMs ?? 0), entry.limit);
      return;
    }
    this.entries.delete(packetId);
    this.callbacks.onReleased?.(entry.uid);
    this.callbacks.apply(packetId, action === 'accept', mark, entry.knownProgram);
    if (entry.cacheKey !== null && cacheMs) this.callbacks.onDecided?.(entry.cacheKey, action === 'accept', mark, cacheMs);
  }

  /** Gives a packet the fallback verdict at once (no service to ask). */
  fallbackNow(packetId: number, reason: FallbackReason): void {
    const entry = this.entries.get(packetId);
    if (entry !== undefined) {
      this.entries.delete(packetId);
      this.callbacks.onReleased?.(entry.uid);
    }
    this.applyFallback(packetId, reason);
  }

  /** Gives every held packet the fallback verdict: the service went away, or we stop. */
  fallbackAll(reason: FallbackReason): void {
    for (const id of [...this.entries.keys()]) this.fallbackNow(id, reason);
  }

  /**
   * Applies the fallback to packets past their deadline. A sweep that comes late (the event
   * loop was blocked) first moves every deadline on by the time lost: answers that arrived
   * meanwhile are read right after this, in the same turn of the loop.
   */
  sweep(): void {
    const t = this.now();
    const lost = this.timer === null ? 0 : t - this.lastSweepAt - this.options.sweepIntervalMs;
    this.lastSweepAt = t;
    if (lost > STALL_TOLERANCE_MS) {
      this.stalledMs += lost;
      for (const entry of this.entries.values()) {
        entry.deadline += lost;
        entry.limit += lost;
      }
      return;
    }
    for (const [id, entry] of this.entries) {
      if (entry.deadline <= t) this.fallbackNow(id, 'deadline');
    }
  }

  private applyFallback(packetId: number, reason: FallbackReason): void {
    this.fallbackCount++;
    this.callbacks.apply(packetId, this.options.fallbackAccept, undefined, false);
    this.callbacks.onFallback(packetId, reason);
  }
}
