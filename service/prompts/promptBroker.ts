// Asks people about connections no rule decides (gui-protocol.md, "Prompts, learning mode,
// timeouts"). Every answering client gets each `connection_request`; the first answer decides and
// the others get `cancel_popup`; connections with the same key wait for that same answer;
// nothing else waits. Unanswered prompts fall to the default at `timeout_seconds`, or at once
// when the last answering client leaves, so no held packet is ever forgotten.
import type { Logger } from '../../common/log.js';
import type { PromptDetails } from '../../common/guiProtocol.js';
import type { BastionConfig } from '../config.js';
import { connectionKey, connectionSubject, displayPath, isVerifiedSubject, programOf, type Connection } from '../connection.js';
import type { PromptBroker } from '../decider.js';
import type { GuiClient } from '../gui/guiServer.js';
import type { FinalDecision } from '../policy.js';
import type { RulePort } from '../rules/ruleKey.js';
import { parseAnswerScope, type PromptAnswer } from './answerScope.js';
import type { AnswerRecorder } from './answerRecorder.js';
import { connectionRequest, promptDetails, RequestIds, type ConnectionRequestMessage } from './connectionRequest.js';
import { FlowMemory, flowKey } from './flowMemory.js';
import { LearningPrompts } from './learningPrompts.js';

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
  /**
   * Open prompts in all; beyond, new questions get the default at once, except a user's first:
   * however many prompts other users keep open, each user can be asked about one program.
   */
  maxOpen: number;
  /**
   * Open prompts of one user (Connection.uid): a user renaming copies of a program, each opening
   * ports in a loop, must not bury other users' prompts (issue 11).
   */
  maxOpenPerUid: number;
  /** Open prompts of one program of one user: a program opening ports in a loop must not bury the user's others. */
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
  maxOpenPerUid: 16,
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
  /** Clients that only listen (the control panel's stats connection): never asked, never waited for. */
  listensOnly?: (client: GuiClient) => boolean;
  /** A new prompt was opened (the journal's [POPUP] line). */
  onPromptOpened?: (conn: Connection) => void;
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
  subject: string;
  program: string;
  /** The port an answer's session/rule is stored with (`*` for `@dest` subjects). */
  port: RulePort;
  /** Whose prompt it is (Connection.uid): limits, answers and sessions are per user. */
  uid: number;
  /** False for a program whose path is not believed: answers to it hold for its connections only. */
  verified: boolean;
  message: ConnectionRequestMessage;
  /** The same with `details`, for clients that asked for them. */
  detailed: ConnectionRequestMessage & { details: PromptDetails };
  waiters: Waiter[];
  timer: unknown;
}

export class GuiPromptBroker implements PromptBroker {
  private readonly byId = new Map<string, OpenPrompt>();
  /** The dedup entry: a new connection with this key joins the open prompt. */
  private readonly byKey = new Map<string, OpenPrompt>();
  /** Open prompts by `<uid> <program>`, and by uid. */
  private readonly perProgram = new Map<string, number>();
  private readonly perUid = new Map<number, number>();
  private readonly silent = new Set<number>();
  /** Clients that said hello with `details: true`. */
  private readonly wantsDetails = new Set<number>();
  private readonly informed = new Map<string, number>();
  private readonly limitNoticed = new Map<string, number>();
  private readonly clock: PromptClock;
  private readonly limits: PromptLimits;
  private readonly ids: RequestIds;
  private readonly flows: FlowMemory;
  private readonly learning: LearningPrompts;
  /** Questions decided by default because a limit was reached. */
  limited = 0;
  /** Prompts opened, answered by a person, and fallen to the default at timeout_seconds (the metrics). */
  readonly counts = { asked: 0, answered: 0, timedOut: 0 };

  constructor(private readonly deps: PromptBrokerDeps) {
    this.clock = deps.clock ?? REAL_CLOCK;
    this.limits = { ...DEFAULT_PROMPT_LIMITS, ...deps.limits };
    this.ids = new RequestIds(() => this.clock.wallMs());
    this.flows = new FlowMemory({ ttlMs: 130_000, maxEntriesPerUid: 4096, now: () => this.clock.now() });
    this.learning = new LearningPrompts({
      clock: this.clock,
      timeoutMs: () => this.deps.config().timeoutSeconds * 1000,
      close: (requestId, except) => this.cancelPopup(requestId, except as GuiClient | null),
      maxOpen: this.limits.maxLearningKeys,
    });
  }

  get openCount(): number {
    return this.byId.size;
  }

  /** Connected clients that are asked about connections (not the control panel, not the CLI's). */
  get answeringCount(): number {
    let n = 0;
    for (const _ of this.answeringClients()) n++;
    return n;
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
    else {
      const ofUid = this.perUid.get(conn.uid) ?? 0;
      ok =
        (this.byId.size < this.limits.maxOpen || ofUid === 0) &&
        ofUid < this.limits.maxOpenPerUid &&
        (this.perProgram.get(programKey(conn.uid, programOf(conn))) ?? 0) < this.limits.maxOpenPerProgram;
    }
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
      subject: connectionSubject(conn),
      program: programOf(conn),
      port: conn.exe || conn.claimedExe || conn.comm ? conn.port : '*',
      uid: conn.uid,
      verified: isVerifiedSubject(conn),
      message: connectionRequest(requestId, conn, false),
      detailed: { ...connectionRequest(requestId, conn, false), details: promptDetails(conn) },
      waiters: [{ conn, answer, flow: flowKey(conn), retry: false }],
      timer: null,
    };
    const timeoutMs = this.deps.config().timeoutSeconds * 1000;
    prompt.timer = this.clock.setTimeout(() => this.expire(prompt), timeoutMs);
    this.byId.set(requestId, prompt);
    this.byKey.set(key, prompt);
    count(this.perProgram, programKey(prompt.uid, prompt.program), 1);
    count(this.perUid, prompt.uid, 1);
    this.counts.asked++;
    this.deps.log.info({ requestId, exe: displayPath(conn), uid: conn.uid, dest: conn.destIp, port: conn.port, protocol: conn.protocol }, 'prompt opened');
    for (const client of this.answeringClients()) this.sendPrompt(client, prompt);
    this.deps.onPromptOpened?.(conn);
  }

  /** Learning mode: tell the clients, never wait (an answer comes back as add_rule, if at all). */
  inform(conn: Connection): void {
    if (!this.deps.config().popupEnabled || !this.hasAnsweringClient()) return;
    if (!this.dueAgain(this.informed, connectionKey(conn), this.limits.learningRepeatMs)) return;
    const message = connectionRequest(this.ids.next(conn.comm), conn, true);
    const detailed = { ...message, details: promptDetails(conn) };
    for (const client of this.answeringClients()) client.send(this.wantsDetails.has(client.id) ? detailed : message);
    this.learning.add(message.request_id, conn);
  }

  /** A rule was saved (add_rule): learning-mode popups it answers close on the other clients. */
  ruleSaved(client: GuiClient | null, subject: string, port: RulePort): void {
    this.learning.ruleSaved(subject, port, client);
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
    // A path that is not believed names no program a rule or session could keep to: once only.
    const scope = prompt.verified ? parsed.scope : ({ kind: 'once' } as const);
    const recorded = this.deps.recorder.record(client, prompt.uid, prompt.subject, port, a.allow, scope);
    const decision: FinalDecision = { kind: 'final', allow: a.allow, reason: 'prompt', ruleKey: recorded.key };
    this.deps.log.info({ requestId: a.requestId, client: client.id, allow: a.allow, duration: parsed.scope.kind, key: recorded.key }, 'prompt answered');
    this.counts.answered++;
    this.settle(prompt, decision, client);
    // An answer for all ports also answers this program's other open prompts.
    if (port === '*' && recorded.key !== null) {
      for (const other of [...this.byId.values()]) if (other.subject === prompt.subject && other.uid === prompt.uid) this.settle(other, decision, null);
    }
    return { applied: true, saved: recorded.saved };
  }

  /** A client connected: it sees the prompts already open (a restarted tray gets its popups back). */
  clientConnected(client: GuiClient): void {
    if (this.deps.listensOnly?.(client)) {
      this.silent.add(client.id);
      this.deps.log.info({ client: client.id }, 'GUI client only listens (the control panel): not asked about connections');
      return;
    }
    for (const prompt of this.byId.values()) this.sendPrompt(client, prompt);
  }

  /** hello with `details`: this client's prompts carry pid, uid, argv and host (docs/gui-extensions.md). */
  setDetails(client: GuiClient, details: boolean): void {
    if (details) this.wantsDetails.add(client.id);
    else this.wantsDetails.delete(client.id);
  }

  private sendPrompt(client: GuiClient, prompt: OpenPrompt): void {
    client.send(this.wantsDetails.has(client.id) ? prompt.detailed : prompt.message);
  }

  /** `answers_prompts: false` (the CLI's own connections): no prompts, and not counted as someone to ask. */
  setAnswering(client: GuiClient, answers: boolean): void {
    if (answers) this.silent.delete(client.id);
    else this.silent.add(client.id);
    if (!answers) this.settleIfNobodyAnswers();
  }

  clientGone(client: GuiClient): void {
    this.silent.delete(client.id);
    this.wantsDetails.delete(client.id);
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
    this.learning.clear();
    for (const prompt of [...this.byId.values()]) this.settle(prompt, this.fallback('default'), null);
  }

  // ---- internals ----

  private expire(prompt: OpenPrompt): void {
    if (this.byId.get(prompt.requestId) !== prompt) return;
    this.deps.log.info({ requestId: prompt.requestId, waiting: prompt.waiters.length }, 'prompt timed out: default applies');
    const decision = this.fallback('timeout');
    this.counts.timedOut++;
    this.settle(prompt, decision, null);
    const m = prompt.message;
    this.deps.notify?.(
      'warning',
      'No answer in time',
      `${m.app_name} → ${m.dest_ip}:${m.dest_port} (${m.protocol}) was ${decision.allow ? 'allowed' : 'blocked'} by default`,
    );
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
    const uid = conn.uid;
    this.deps.log.debug({ program, uid, port: conn.port, open: this.byId.size }, 'prompt limit reached: default applies');
    if (!this.dueAgain(this.limitNoticed, programKey(uid, program), this.limits.limitNoticeMs)) return;
    this.deps.log.warn({ program, uid, open: this.byId.size, openOfUid: this.perUid.get(uid) ?? 0 }, 'too many open prompts: new questions get the default');
    const action = this.fallback('default').allow ? 'allowed' : 'blocked';
    this.deps.notify?.(
      'warning',
      'Too many questions at once',
      `${conn.comm ?? program} asks about many connections at once; until you answer, new ones are ${action} by default`,
    );
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
    count(this.perProgram, programKey(prompt.uid, prompt.program), -1);
    count(this.perUid, prompt.uid, -1);
    this.clock.clearTimeout(prompt.timer);
    for (const w of prompt.waiters) {
      this.flows.remember(w.conn, decision);
      try {
        w.answer(decision, w.retry);
      } catch (err) {
        this.deps.log.error({ err, requestId: prompt.requestId }, 'sending a prompt verdict failed');
      }
    }
    this.cancelPopup(prompt.requestId, answeredBy);
  }

  /** `cancel_popup` (what closes a popup on the tray) to every client that was asked, but `except`. */
  private cancelPopup(requestId: string, except: GuiClient | null): void {
    const cancel = { type: 'cancel_popup', request_id: requestId } as const;
    for (const client of this.answeringClients()) if (client !== except) client.send(cancel);
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

function programKey(uid: number, program: string): string {
  return `${uid} ${program}`;
}

/** Adds delta to a count, dropping it at 0. */
function count<K>(counts: Map<K, number>, key: K, delta: number): void {
  const n = (counts.get(key) ?? 0) + delta;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}

/** Connections wait for the same answer when the key and the asking uid are the same. */
function promptKey(conn: Connection): string {
  return `${conn.uid}\0${connectionKey(conn)}`;
}
