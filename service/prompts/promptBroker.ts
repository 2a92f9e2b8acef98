// Asks people about connections no rule decides (gui-protocol.md, "Prompts, learning mode,
// timeouts"). Every answering client gets each `connection_request`; the first answer decides and
// the others get `cancel_popup`; connections with the same key wait for that same answer;
// nothing else waits. Unanswered prompts fall to the default at `timeout_seconds`, or at once
// when the last answering client leaves, so no held packet is ever forgotten.
import type { Logger } from '../../common/log.js';
import type { BastionConfig } from '../config.js';
import { connectionKey, connectionSubject, programOf, type Connection } from '../connection.js';
import type { PromptBroker } from '../decider.js';
import type { GuiClient } from '../gui/guiServer.js';
import type { FinalDecision } from '../policy.js';
import type { RulePort } from '../rules/ruleKey.js';
import { parseAnswerScope, type PromptAnswer } from './answerScope.js';
import type { AnswerRecorder } from './answerRecorder.js';
import { connectionRequest, RequestIds, type ConnectionRequestMessage } from './connectionRequest.js';
import { FlowMemory, flowKey } from './flowMemory.js';

/** Injected so timeouts are tested without sleeping. */
export interface PromptClock {
  /** Monotonic milliseconds. */
  now(): number;
  /** Wall-clock milliseconds, for request ids. */
  wallMs(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const REAL_CLOCK: PromptClock = {
  now: () => performance.now(),
  wallMs: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface PromptLimits {
  /** Open prompts in all; beyond, new questions get the default at once. */
  maxOpen: number;
  /** Open prompts of one program: a program opening ports in a loop must not bury the others. */
  maxOpenPerProgram: number;
  /** Connections waiting on one prompt. */
  maxWaitersPerPrompt: number;
  /** Learning mode tells about a key again only after this long (the old daemon: 30 s). */
  learningRepeatMs: number;
  /** A program hitting a limit is reported at most this often. */
  limitNoticeMs: number;
  /** Keys remembered for that. */
  maxLearningKeys: number;
}

export const DEFAULT_PROMPT_LIMITS: PromptLimits = {
  maxOpen: 64,
  maxOpenPerProgram: 4,
  maxWaitersPerPrompt: 256,
  learningRepeatMs: 30_000,
  maxLearningKeys: 4096,
  limitNoticeMs: 60_000,
};

export type NotificationLevel = 'info' | 'warning' | 'error';

export interface PromptBrokerDeps {
  config: () => Readonly<BastionConfig>;
  /** A balloon on the tray (`notification`); the daemon sends it when notifications_enabled. */
  notify?: (level: NotificationLevel, title: string, message: string) => void;
  /** Every connected GUI client; the broker skips those that said they do not answer. */
  clients: () => Iterable<GuiClient>;
  recorder: AnswerRecorder;
  log: Logger;
  clock?: PromptClock;
  limits?: Partial<PromptLimits>;
}

export type AnswerOutcome = { applied: false } | { applied: true; saved: Promise<void> };

interface Waiter {
  conn: Connection;
  answer: (decision: FinalDecision, retry: boolean) => void;
  flow: string | null;
  /** A retransmission of a connection already waiting here (same 5-tuple). */
  retry: boolean;
}

interface OpenPrompt {
  requestId: string;
  key: string;
  /** Whose process is asking (socket owner): connections of another uid never share its answer. */
  uid: number;
  subject: string;
  program: string;
  /** The port an answer's session/rule is stored with (`*` for `@dest` subjects). */
  port: RulePort;
  message: ConnectionRequestMessage;
  waiters: Waiter[];
  timer: unknown;
}

export class GuiPromptBroker implements PromptBroker {
  private readonly byId = new Map<string, OpenPrompt>();
  /** The dedup entry: a new connection with this key joins the open prompt. */
  private readonly byKey = new Map<string, OpenPrompt>();
  private readonly perProgram = new Map<string, number>();
  private readonly silent = new Set<number>();
  private readonly informed = new Map<string, number>();
  private readonly limitNoticed = new Map<string, number>();
  private readonly clock: PromptClock;
  private readonly limits: PromptLimits;
  private readonly ids: RequestIds;
  private readonly flows: FlowMemory;
  /** Questions decided by default because a limit was reached. */
  limited = 0;

  constructor(private readonly deps: PromptBrokerDeps) {
    this.clock = deps.clock ?? REAL_CLOCK;
    this.limits = { ...DEFAULT_PROMPT_LIMITS, ...deps.limits };
    this.ids = new RequestIds(() => this.clock.wallMs());
    this.flows = new FlowMemory({ ttlMs: 130_000, maxEntries: 4096, now: () => this.clock.now() });
  }

  get openCount(): number {
    return this.byId.size;
  }

  // ---- the Decider's side ----

  recall(conn: Connection): FinalDecision | null {
    return this.flows.recall(conn);
  }

  canAsk(conn: Connection): boolean {
    // popup_enabled false: enforcement applies default_action without asking anyone.
    if (!this.deps.config().popupEnabled || !this.hasAnsweringClient()) return false;
    const open = this.byKey.get(promptKey(conn));
    let ok: boolean;
    if (open) ok = open.waiters.length < this.limits.maxWaitersPerPrompt;
    else ok = this.byId.size < this.limits.maxOpen && (this.perProgram.get(programOf(conn)) ?? 0) < this.limits.maxOpenPerProgram;
    if (!ok) this.limitReached(conn);
    return ok;
  }

  ask(conn: Connection, answer: (decision: FinalDecision, retry: boolean) => void): void {
    const key = promptKey(conn);
    const open = this.byKey.get(key);
    if (open) {
      const flow = flowKey(conn);
      const retry = flow !== null && open.waiters.some((w) => w.flow === flow);
      open.waiters.push({ conn, answer, flow, retry });
      return;
    }
    const requestId = this.ids.next(conn.comm);
    const prompt: OpenPrompt = {
      requestId,
      key,
      uid: conn.record.uid,
      subject: connectionSubject(conn),
      program: programOf(conn),
      port: conn.exe || conn.comm ? conn.port : '*',
      message: connectionRequest(requestId, conn, false),
      waiters: [{ conn, answer, flow: flowKey(conn), retry: false }],
      timer: null,
    };
    const timeoutMs = this.deps.config().timeoutSeconds * 1000;
    prompt.timer = this.clock.setTimeout(() => this.expire(prompt), timeoutMs);
    this.byId.set(requestId, prompt);
    this.byKey.set(key, prompt);
    this.perProgram.set(prompt.program, (this.perProgram.get(prompt.program) ?? 0) + 1);
    this.deps.log.info({ requestId, exe: conn.exe, dest: conn.destIp, port: conn.port, protocol: conn.protocol }, 'prompt opened');
    for (const client of this.answeringClients()) client.send(prompt.message);
  }

  /** Learning mode: tell the clients, never wait (an answer comes back as add_rule, if at all). */
  inform(conn: Connection): void {
    if (!this.deps.config().popupEnabled || !this.hasAnsweringClient()) return;
    if (!this.dueAgain(this.informed, connectionKey(conn), this.limits.learningRepeatMs)) return;
    const message = connectionRequest(this.ids.next(conn.comm), conn, true);
    for (const client of this.answeringClients()) client.send(message);
  }

  // ---- the GUI's side ----

  /** Applies a `gui_response`; an unknown or already decided id changes nothing. */
  answer(client: GuiClient, a: PromptAnswer): AnswerOutcome {
    const prompt = this.byId.get(a.requestId);
    if (!prompt) {
      this.deps.log.info({ requestId: a.requestId, client: client.id }, 'answer for no open prompt (unknown, or already decided): ignored');
      return { applied: false };
    }
    const parsed = parseAnswerScope(a.duration, a.permanent);
    if (!parsed.ok) {
      client.send({ type: 'error', error: parsed.error, request: 'gui_response' });
      return { applied: false };
    }
    const port: RulePort = a.allPorts ? '*' : prompt.port;
    const recorded = this.deps.recorder.record(client, prompt.uid, prompt.subject, port, a.allow, parsed.scope);
    const decision: FinalDecision = { kind: 'final', allow: a.allow, reason: 'prompt', ruleKey: recorded.key };
    this.deps.log.info({ requestId: a.requestId, client: client.id, allow: a.allow, duration: parsed.scope.kind, key: recorded.key }, 'prompt answered');
    this.settle(prompt, decision, client);
    // An answer for all ports also answers this program's other open prompts.
    if (port === '*' && recorded.key !== null) {
      for (const other of [...this.byId.values()]) if (other.subject === prompt.subject && other.uid === prompt.uid) this.settle(other, decision, null);
    }
    return { applied: true, saved: recorded.saved };
  }

  /** A client connected: it sees the prompts already open (a restarted tray gets its popups back). */
  clientConnected(client: GuiClient): void {
    for (const prompt of this.byId.values()) client.send(prompt.message);
  }

  /** `answers_prompts: false` (the CLI's own connections): no prompts, and not counted as someone to ask. */
  setAnswering(client: GuiClient, answers: boolean): void {
    if (answers) this.silent.delete(client.id);
    else this.silent.add(client.id);
    if (!answers) this.settleIfNobodyAnswers();
  }

  clientGone(client: GuiClient): void {
    this.silent.delete(client.id);
    this.settleIfNobodyAnswers();
  }

  /** clear_cache: a new connection with this key opens a new prompt; learning mode tells again. */
  forgetKey(key: string): void {
    for (const k of [...this.byKey.keys()]) if (k.endsWith(`\0${key}`)) this.byKey.delete(k);
    this.informed.delete(key);
  }

  /** Switching to learning mode: nothing may wait any more. */
  configChanged(config: Readonly<BastionConfig>): void {
    if (config.mode !== 'learning') return;
    for (const prompt of [...this.byId.values()]) this.settle(prompt, { kind: 'final', allow: true, reason: 'learning', ruleKey: null }, null);
  }

  /** Service stopping: every waiting connection gets the default now rather than the helper's fallback later. */
  stop(): void {
    for (const prompt of [...this.byId.values()]) this.settle(prompt, this.fallback('default'), null);
  }

  // ---- internals ----

  private expire(prompt: OpenPrompt): void {
    if (this.byId.get(prompt.requestId) !== prompt) return;
    this.deps.log.info({ requestId: prompt.requestId, waiting: prompt.waiters.length }, 'prompt timed out: default applies');
    const decision = this.fallback('timeout');
    this.settle(prompt, decision, null);
    const m = prompt.message;
    this.deps.notify?.('warning', 'No answer in time', `${m.app_name} → ${m.dest_ip}:${m.dest_port} (${m.protocol}) was ${decision.allow ? 'allowed' : 'blocked'} by default`);
  }

  /**
   * Whether key was last seen at least intervalMs ago (or never); if so it is noted as seen
   * now. The map keeps the maxLearningKeys most recent keys.
   */
  private dueAgain(lastSeen: Map<string, number>, key: string, intervalMs: number): boolean {
    const t = this.clock.now();
    const last = lastSeen.get(key);
    if (last !== undefined && t - last < intervalMs) return false;
    lastSeen.delete(key);
    lastSeen.set(key, t);
    if (lastSeen.size > this.limits.maxLearningKeys) lastSeen.delete(lastSeen.keys().next().value!);
    return true;
  }

  private limitReached(conn: Connection): void {
    this.limited++;
    const program = programOf(conn);
    this.deps.log.debug({ program, port: conn.port, open: this.byId.size }, 'prompt limit reached: default applies');
    if (!this.dueAgain(this.limitNoticed, program, this.limits.limitNoticeMs)) return;
    this.deps.log.warn({ program, open: this.byId.size }, 'too many open prompts: new questions get the default');
    const action = this.fallback('default').allow ? 'allowed' : 'blocked';
    this.deps.notify?.('warning', 'Too many questions at once', `${conn.comm ?? program} asks about many connections at once; until you answer, new ones are ${action} by default`);
  }

  private settleIfNobodyAnswers(): void {
    if (this.byId.size === 0 || this.hasAnsweringClient()) return;
    this.deps.log.info({ open: this.byId.size }, 'no client left to answer: open prompts get the default');
    for (const prompt of [...this.byId.values()]) this.settle(prompt, this.fallback('default'), null);
  }

  /** Closes a prompt with `decision`, tells every client but `answeredBy` to close its popup. */
  private settle(prompt: OpenPrompt, decision: FinalDecision, answeredBy: GuiClient | null): void {
    if (this.byId.get(prompt.requestId) !== prompt) return;
    this.byId.delete(prompt.requestId);
    if (this.byKey.get(prompt.key) === prompt) this.byKey.delete(prompt.key);
    const left = (this.perProgram.get(prompt.program) ?? 1) - 1;
    if (left > 0) this.perProgram.set(prompt.program, left);
    else this.perProgram.delete(prompt.program);
    this.clock.clearTimeout(prompt.timer);
    for (const w of prompt.waiters) {
      this.flows.remember(w.conn, decision);
      try {
        w.answer(decision, w.retry);
      } catch (err) {
        this.deps.log.error({ err, requestId: prompt.requestId }, 'sending a prompt verdict failed');
      }
    }
    const cancel = { type: 'cancel_popup', request_id: prompt.requestId };
    for (const client of this.answeringClients()) if (client !== answeredBy) client.send(cancel);
  }

  /** No answer: learning mode allows, enforcement applies default_action. */
  private fallback(reason: 'timeout' | 'default'): FinalDecision {
    const config = this.deps.config();
    return { kind: 'final', allow: config.mode === 'learning' || config.defaultAction === 'allow', reason, ruleKey: null };
  }

  private *answeringClients(): Iterable<GuiClient> {
    for (const client of this.deps.clients()) if (!this.silent.has(client.id)) yield client;
  }

  private hasAnsweringClient(): boolean {
    for (const _ of this.answeringClients()) return true;
    return false;
  }
}

/** Connections wait for the same answer when the key and the asking uid are the same. */
function promptKey(conn: Connection): string {
  return `${conn.record.uid}\0${connectionKey(conn)}`;
}
