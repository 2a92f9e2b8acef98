// The open connections a lasting allowance let out, so that they end when it does (config
// end_connections): deleting or narrowing the rule, or a session or timed answer running out,
// would otherwise leave an already open connection (an SSH session, a download, a tunnel)
// running for as long as the program likes. Each TCP connection allowed by a rule, a session
// decision or a lasting prompt answer is remembered (bounded: the newest MAX_FLOWS); after a
// policy change each is decided again as a new one would be, and those the policy no longer
// allows are sent to the helper to end (helper/liveConnections.ts, which ends only flows it
// saw). Answers for one connection ("once"), learning mode, the whitelist and defaults are
// never revisited: nothing lasting allowed them.
import type { Flow } from '../common/wire.js';
import type { Connection } from './connection.js';
import type { DecisionEvent } from './decider.js';
import type { Policy } from './policy.js';

const MAX_FLOWS = 16384;
/** How often connections a session or timed answer allowed are checked for its expiry. */
export const SESSION_RECHECK_MS = 1000;

interface LiveFlow {
  conn: Connection;
  /** Allowed by a session or timed answer, which may run out without any change event. */
  bySession: boolean;
}

export class LiveFlows {
  private readonly flows = new Map<string, LiveFlow>();

  constructor(private readonly policy: Policy) {}

  /** A decision: remembered when a lasting allowance let a TCP connection out. */
  decided(event: DecisionEvent, conn: Connection): void {
    const r = conn.record;
    if (!event.allow || conn.protocol !== 'TCP' || r.malformed) return;
    const lasting = event.reason === 'rule' || event.reason === 'session' || (event.reason === 'prompt' && event.ruleKey !== null);
    if (!lasting) return;
    // Decided in the kernel: no source port; the helper finds the program's connections itself.
    const byProgram = r.attribution === 'kernel';
    if (r.srcPort === 0 && !(byProgram && conn.exe !== null)) return;
    const key = byProgram ? `${r.family}|${conn.destIp}|${r.dstPort}|${conn.exe}` : `${r.family}|${conn.destIp}|${r.dstPort}|${r.srcPort}`;
    this.flows.delete(key); // re-inserted as the newest
    this.flows.set(key, { conn, bySession: event.reason !== 'rule' });
    if (this.flows.size > MAX_FLOWS) this.flows.delete(this.flows.keys().next().value!);
  }

  get size(): number {
    return this.flows.size;
  }

  /** Whether some remembered connection rests on a session decision (worth a timer). */
  get anyBySession(): boolean {
    for (const f of this.flows.values()) if (f.bySession) return true;
    return false;
  }

  /**
   * The connections the policy no longer allows (forgotten here): each decided again as a new
   * connection would be. sessionsOnly: only those a session decision allowed (expiry checks).
   */
  noLongerAllowed(sessionsOnly = false): Flow[] {
    const out: Flow[] = [];
    for (const [key, f] of this.flows) {
      if (sessionsOnly && !f.bySession) continue;
      const now = this.policy.decide(f.conn);
      if (now.kind === 'final' && now.allow) {
        // A rule allows it now (an "always" answer became one): no expiry to check it for.
        if (now.reason === 'rule') f.bySession = false;
        continue;
      }
      this.flows.delete(key);
      const r = f.conn.record;
      if (r.attribution === 'kernel') {
        out.push({ family: r.family, protocol: r.protocol, srcAddr: new Uint8Array(0), srcPort: 0, dstAddr: r.dstAddr, dstPort: r.dstPort, exe: f.conn.exe! });
      } else {
        out.push({ family: r.family, protocol: r.protocol, srcAddr: r.srcAddr, srcPort: r.srcPort, dstAddr: r.dstAddr, dstPort: r.dstPort });
      }
    }
    return out;
  }
}
