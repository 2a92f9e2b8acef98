// Turns each packet record into a verdict. Final decisions are answered in the same batch;
// a connection that needs a person is held (ACTION_HOLD) and answered when the prompt is,
// so no decision ever waits on another.
import type { Logger } from '../common/log.js';
import type { Attribution, PacketRecord, Verdict } from '../common/types.js';
import { displayPath, toConnection, type Connection } from './connection.js';
import type { DecisionReason, FinalDecision, Policy } from './policy.js';
import type { Stats } from './stats.js';
import { ruleKeySubject } from './rules/ruleKey.js';

export interface DecisionEvent {
  at: number;
  pid: number;
  /** The connecting process's uid (else the socket's, from the kernel); -1 when neither is known. */
  uid: number;
  exe: string | null;
  comm: string | null;
  destIp: string;
  port: number;
  protocol: string;
  allow: boolean;
  reason: DecisionReason;
  ruleKey: string | null;
  attribution: Attribution;
  lookupMicros: number;
  /** Connections this decision stands for (the helper groups its cached allows). */
  connections: number;
  /** The destination's host name from snooped DNS answers, when known (Connection.host). */
  host?: string;
  /** When host is absent: a name from a resolver that is not the system's (Connection.unverifiedHost). */
  unverifiedHost?: string;
}

/** Asks people (prompts/promptBroker.ts). `ask` calls `answer` exactly once, possibly much later. */
export interface PromptBroker {
  /** An answer already given for this very connection (a retried SYN), or null. */
  recall(conn: Connection): FinalDecision | null;
  /** False when nobody can answer, or a prompt limit is reached: the default applies at once. */
  canAsk(conn: Connection): boolean;
  /** `retry`: this packet retransmits a connection already waiting, so it is not counted again. */
  ask(conn: Connection, answer: (decision: FinalDecision, retry: boolean) => void): void;
}

export interface DeciderDeps {
  policy: Policy;
  stats: Stats;
  log: Logger;
  /** Sends verdicts decided outside a batch (prompt answers) for records of helper `epoch`. */
  sendVerdicts: (verdicts: Verdict[], epoch: number) => void;
  /** How long the helper should keep a packet that waits for a prompt. */
  holdMs: () => number;
  logDecisions: () => boolean;
  /** How long the helper may reuse a verdict that a path rule gave (absent or 0: never). */
  helperCacheMs?: () => number;
  /** The helper applied a cached verdict that the policy no longer gives: it must forget them. */
  staleHelperCache?: () => void;
}

export class Decider {
  private prompts: PromptBroker | null = null;
  private readonly listeners: ((event: DecisionEvent, conn: Connection) => void)[] = [];

  constructor(private readonly deps: DeciderDeps) {}

  setPromptBroker(broker: PromptBroker | null): void {
    this.prompts = broker;
  }

  onDecision(listener: (event: DecisionEvent, conn: Connection) => void): void {
    this.listeners.push(listener);
  }

  /** Decides a batch; returns the verdicts to send now (accept/drop, or hold for prompts). */
  decideBatch(records: readonly PacketRecord[], epoch: number): Verdict[] {
    const verdicts: Verdict[] = [];
    for (const record of records) {
      if (record.helperVerdict !== undefined) {
        this.recordHelperDecision(record);
        continue;
      }
      let verdict: Verdict;
      try {
        verdict = this.decideOne(record, epoch);
      } catch (err) {
        // A bug here must not leave the packet to the helper's deadline alone: decide by default.
        this.deps.log.error({ err, packetId: record.packetId }, 'decision failed; applying the default action');
        verdict = this.finish(toConnection(record), this.deps.policy.defaultDecision('default'));
      }
      verdicts.push(verdict);
    }
    return verdicts;
  }

  private decideOne(record: PacketRecord, epoch: number): Verdict {
    const conn = toConnection(record);
    const decision = this.deps.policy.decide(conn);
    if (decision.kind === 'final') return this.finish(conn, decision);

    const prompts = this.prompts;
    if (prompts) {
      const recalled = prompts.recall(conn);
      if (recalled) return this.finish(conn, recalled, 0);
      if (prompts.canAsk(conn)) {
        // Held, not waited for: the rest of this batch and every later one go on at once.
        prompts.ask(conn, (answer, retry) => this.deps.sendVerdicts([this.finish(conn, answer, retry ? 0 : 1)], epoch));
        return { packetId: record.packetId, action: 'hold', holdMs: this.deps.holdMs() };
      }
    }
    return this.finish(conn, this.deps.policy.defaultDecision('default'));
  }

  /**
   * A connection the helper answered from its verdict cache: count and report it like any
   * other, by the decision that the policy gives now; if that differs, the cache is stale.
   */
  private recordHelperDecision(record: PacketRecord): void {
    const conn = toConnection(record);
    const applied = record.helperVerdict === 'accept';
    // Counted as what really happened to the packet when the policy now says otherwise.
    const asApplied: FinalDecision = { kind: 'final', allow: applied, reason: 'rule', ruleKey: null };
    let decision = asApplied;
    try {
      const now = this.deps.policy.decide(conn);
      if (now.kind === 'final' && now.allow === applied) {
        decision = now;
      } else {
        this.deps.log.warn({ exe: conn.exe, port: conn.port, applied: record.helperVerdict }, 'the helper applied a stale cached verdict; resetting its cache');
        this.deps.staleHelperCache?.();
      }
    } catch (err) {
      this.deps.log.error({ err }, 'could not re-check a cached verdict');
    }
    this.finish(conn, decision, record.repeats ?? 1);
  }

  /**
   * Whether the helper may reuse this verdict for the same exe, protocol and port: only an
   * allow by a rule on the executable's path (so no destination could change it: the whitelist
   * only ever allows, and @name/@dest rules rank below paths) and never a session decision
   * (those may expire) or a deny (loopback or LAN could be allowed for another destination).
   */
  private cacheable(conn: Connection, decision: FinalDecision): boolean {
    return (
      decision.allow &&
      decision.reason === 'rule' &&
      conn.exe !== null &&
      (conn.protocol === 'TCP' || conn.protocol === 'UDP') &&
      decision.ruleKey !== null &&
      ruleKeySubject(decision.ruleKey) === conn.exe &&
      this.deps.policy.pathRulesFinal(conn.exe)
    );
  }

  /**
   * connections: how many this decision stands for: 0 for a retransmission of a connection
   * already counted (stats count connections), more than 1 for a helper's grouped report.
   */
  private finish(conn: Connection, decision: FinalDecision, connections = 1): Verdict {
    const r = conn.record;
    this.deps.stats.countDecision({ allow: decision.allow, reason: decision.reason, attribution: r.attribution, connections });
    const event: DecisionEvent = {
      at: Date.now(),
      pid: r.process?.pid ?? 0,
      uid: r.process?.uid ?? (r.uid >= 0 ? r.uid : -1),
      exe: displayPath(conn),
      comm: conn.comm,
      destIp: conn.destIp,
      port: conn.port,
      protocol: conn.protocol,
      allow: decision.allow,
      reason: decision.reason,
      ruleKey: decision.ruleKey,
      attribution: r.attribution,
      lookupMicros: r.lookupMicros,
      connections: Math.max(connections, 1),
    };
    if (conn.host !== undefined) event.host = conn.host;
    else if (conn.unverifiedHost !== undefined) event.unverifiedHost = conn.unverifiedHost;
    if (this.deps.logDecisions()) this.deps.log.info(event, decision.allow ? 'allowed' : 'blocked');
    else this.deps.log.debug(event, decision.allow ? 'allowed' : 'blocked');
    for (const listener of this.listeners) {
      try {
        listener(event, conn);
      } catch (err) {
        this.deps.log.error({ err }, 'decision listener failed');
      }
    }
    const verdict: Verdict = { packetId: r.packetId, action: decision.allow ? 'accept' : 'drop' };
    const cacheMs = this.deps.helperCacheMs?.() ?? 0;
    if (cacheMs > 0 && this.cacheable(conn, decision)) verdict.cacheMs = cacheMs;
    return verdict;
  }
}
