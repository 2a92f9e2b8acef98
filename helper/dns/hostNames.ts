// Address -> host name, learned from snooped DNS answers (dnsSnoop.ts). Bounded: at most
// maxEntries names are kept (the least recently learned go first), each for its record's TTL
// clamped to [minTtlMs, maxTtlMs]: programs keep using an address well past a short TTL
// (browsers cache for a minute or more, pools reconnect), and a day-long TTL must not pin a
// name to an address that may since serve someone else.
import { formatAddress } from '../../common/address.js';

export interface HostNamesOptions {
  maxEntries: number;
  minTtlMs: number;
  maxTtlMs: number;
  now: () => number;
}

export const DEFAULT_HOST_NAMES: HostNamesOptions = {
  // ~10,000 names of at most 253 characters: a few MB at worst, whatever a flood of answers says.
  maxEntries: 10_000,
  minTtlMs: 5 * 60_000,
  maxTtlMs: 6 * 3_600_000,
  now: () => performance.now(),
};

interface Entry {
  name: string;
  expiresAt: number;
}

export class HostNames {
  private readonly options: HostNamesOptions;
  /** IPv4 keyed by the address as a number (no string per packet), IPv6 by its text. */
  private readonly v4 = new Map<number, Entry>();
  private readonly v6 = new Map<string, Entry>();
  /** Names learned since start (an answer's repeat counts again). */
  learned = 0;
  /** Entries dropped to stay within maxEntries. */
  evicted = 0;

  constructor(options: Partial<HostNamesOptions> = {}) {
    this.options = { ...DEFAULT_HOST_NAMES, ...options };
  }

  get size(): number {
    return this.v4.size + this.v6.size;
  }

  learn(address: Uint8Array, name: string, ttlSeconds: number): void {
    const { minTtlMs, maxTtlMs, now } = this.options;
    const ttlMs = Math.min(maxTtlMs, Math.max(minTtlMs, ttlSeconds * 1000));
    const entry: Entry = { name, expiresAt: now() + ttlMs };
    if (address.length === 4) put(this.v4, v4Key(address), entry);
    else if (address.length === 16) put(this.v6, formatAddress(address), entry);
    else return;
    this.learned++;
    while (this.size > this.options.maxEntries) this.evictOldest();
  }

  /** The name last learned for this address, unless it expired. */
  lookup(address: Uint8Array): string | undefined {
    if (this.size === 0) return undefined; // no DNS seen: no work per packet
    let entry: Entry | undefined;
    if (address.length === 4) entry = this.v4.get(v4Key(address));
    else if (address.length === 16 && this.v6.size > 0) entry = this.v6.get(formatAddress(address));
    if (entry === undefined || entry.expiresAt <= this.options.now()) return undefined;
    return entry.name;
  }

  private evictOldest(): void {
    // Each map is in learning order: of their two oldest entries, drop the one that expires first.
    const a = this.v4.entries().next();
    const b = this.v6.entries().next();
    const takeV4 = a.done !== true && (b.done === true || a.value[1].expiresAt <= b.value[1].expiresAt);
    if (takeV4) this.v4.delete(a.value[0]);
    else if (b.done !== true) this.v6.delete(b.value[0]);
    this.evicted++;
  }
}

/** Re-inserted at the back, so each map stays in learning order. */
function put<K>(map: Map<K, Entry>, key: K, entry: Entry): void {
  map.delete(key);
  map.set(key, entry);
}

function v4Key(a: Uint8Array): number {
  return ((a[0]! << 24) | (a[1]! << 16) | (a[2]! << 8) | a[3]!) >>> 0;
}
