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
  /**
   * Entries kept per user (Connection.uid); that user's oldest go first beyond this, so one
   * user's flood of connections cannot make the service forget another user's answers.
   */
  maxEntriesPerUid: number;
  now: () => number;
}

interface Remembered {
  decision: FinalDecision;
  expiresAt: number;
}

export class FlowMemory {
  /** uid -> flow key -> answer; a user's map is dropped when its last entry goes. */
  private readonly byUid = new Map<number, Map<string, Remembered>>();
  private count = 0;

  constructor(private readonly options: FlowMemoryOptions) {}

  remember(conn: Connection, decision: FinalDecision): void {
    const key = flowKey(conn);
    if (key === null) return;
    let flows = this.byUid.get(conn.uid);
    if (flows === undefined) this.byUid.set(conn.uid, (flows = new Map()));
    if (flows.delete(key)) this.count--; // re-insert: Map order is then oldest-first
    flows.set(key, { decision, expiresAt: this.options.now() + this.options.ttlMs });
    this.count++;
    if (flows.size > this.options.maxEntriesPerUid) {
      const oldest = flows.keys().next();
      if (!oldest.done && flows.delete(oldest.value)) this.count--;
    }
  }

  recall(conn: Connection): FinalDecision | null {
    if (this.count === 0) return null;
    const flows = this.byUid.get(conn.uid);
    const key = flowKey(conn);
    if (flows === undefined || key === null) return null;
    const r = flows.get(key);
    if (!r) return null;
    if (r.expiresAt <= this.options.now()) {
      flows.delete(key);
      this.count--;
      if (flows.size === 0) this.byUid.delete(conn.uid);
      return null;
    }
    return r.decision;
  }

  get size(): number {
    return this.count;
  }
}

/** TCP and UDP only: ICMP carries no ports here, so one echo would stand for every other. */
export function flowKey(conn: Connection): string | null {
  if (conn.protocol !== 'TCP' && conn.protocol !== 'UDP') return null;
  const r = conn.record;
  return `${conn.protocol} ${formatAddress(r.srcAddr)} ${r.srcPort} ${conn.destIp} ${r.dstPort}`;
}
