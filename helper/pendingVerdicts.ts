// Every held packet gets exactly one verdict: from the service, or the fallback when the
// service is absent, late past the packet's deadline, or the helper is stopping.
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
  /** Sends the verdict to the kernel; returns 0 or a negative errno. */
  apply(packetId: number, accept: boolean, mark: number | undefined): number;
  onFallback(packetId: number, reason: FallbackReason): void;
  /** The service's verdict for a packet held with a cache key, and how long it may be reused. */
  onDecided?(cacheKey: string, accept: boolean, mark: number | undefined, cacheMs: number): void;
}

interface Entry {
  deadline: number;
  /** Latest a hold may extend to. */
  limit: number;
  /** Where the verdict may be cached (exe, protocol, port), or null. */
  cacheKey: string | null;
}

export class PendingVerdicts {
  private readonly entries = new Map<number, Entry>();
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
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

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.sweep(), this.options.sweepIntervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Starts the clock for a packet that was just sent to the service. */
  hold(packetId: number, cacheKey: string | null = null): void {
    const t = this.now();
    this.entries.set(packetId, { deadline: t + this.options.ackDeadlineMs, limit: t + this.options.maxHoldMs, cacheKey });
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
    this.callbacks.apply(packetId, action === 'accept', mark);
    if (entry.cacheKey !== null && cacheMs) this.callbacks.onDecided?.(entry.cacheKey, action === 'accept', mark, cacheMs);
  }

  /** Gives a packet the fallback verdict at once (no service to ask). */
  fallbackNow(packetId: number, reason: FallbackReason): void {
    this.entries.delete(packetId);
    this.applyFallback(packetId, reason);
  }

  /** Gives every held packet the fallback verdict: the service went away, or we stop. */
  fallbackAll(reason: FallbackReason): void {
    for (const id of [...this.entries.keys()]) this.fallbackNow(id, reason);
  }

  /** Applies the fallback to packets past their deadline. */
  sweep(): void {
    const t = this.now();
    for (const [id, entry] of this.entries) {
      if (entry.deadline <= t) this.fallbackNow(id, 'deadline');
    }
  }

  private applyFallback(packetId: number, reason: FallbackReason): void {
    this.fallbackCount++;
    this.callbacks.apply(packetId, this.options.fallbackAccept, undefined);
    this.callbacks.onFallback(packetId, reason);
  }
}
