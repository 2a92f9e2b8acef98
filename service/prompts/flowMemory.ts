// What a prompt decided for one connection (its 5-tuple), remembered for as long as the kernel
// retries it. A TCP SYN held for a prompt is retransmitted after 1 s, 3 s, 7 s ...; each retry is
// a new NFQUEUE packet. Without this, a "deny once" answer would be followed by a fresh popup for
// the very same connection one second later, and a timeout would re-ask until the client gives up.
import { formatAddress } from '../../common/address.js';
import type { Connection } from '../connection.js';
import type { FinalDecision } from '../policy.js';

export interface FlowMemoryOptions {
  /** Linux retries a SYN for about 127 s (tcp_syn_retries = 6). */
  ttlMs: number;
  /** Oldest entries go first beyond this. */
  maxEntries: number;
  now: () => number;
}

interface Remembered {
  decision: FinalDecision;
  expiresAt: number;
}

export class FlowMemory {
  private readonly flows = new Map<string, Remembered>();

  constructor(private readonly options: FlowMemoryOptions) {}

  remember(conn: Connection, decision: FinalDecision): void {
    const key = flowKey(conn);
    if (key === null) return;
    this.flows.delete(key); // re-insert: Map order is then oldest-first
    this.flows.set(key, { decision, expiresAt: this.options.now() + this.options.ttlMs });
    if (this.flows.size > this.options.maxEntries) {
      const oldest = this.flows.keys().next();
      if (!oldest.done) this.flows.delete(oldest.value);
    }
  }

  recall(conn: Connection): FinalDecision | null {
    if (this.flows.size === 0) return null;
    const key = flowKey(conn);
    if (key === null) return null;
    const r = this.flows.get(key);
    if (!r) return null;
    if (r.expiresAt <= this.options.now()) {
      this.flows.delete(key);
      return null;
    }
    return r.decision;
  }

  get size(): number {
    return this.flows.size;
  }
}

/** TCP and UDP only: ICMP carries no ports here, so one echo would stand for every other. */
export function flowKey(conn: Connection): string | null {
  if (conn.protocol !== 'TCP' && conn.protocol !== 'UDP') return null;
  const r = conn.record;
  return `${conn.protocol} ${formatAddress(r.srcAddr)} ${r.srcPort} ${conn.destIp} ${r.dstPort}`;
}
