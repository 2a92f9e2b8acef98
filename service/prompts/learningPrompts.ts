// Learning mode's informational prompts (gui-protocol.md, "learning mode"): the connection was
// allowed already, every tray shows a popup, and a tray that chose "Always" answers with an
// add_rule, not a gui_response. Without bookkeeping the other trays kept that popup open. This
// remembers each one until a saved rule answers it or timeout_seconds pass; either way every
// other client is told `cancel_popup` for it, as for an answered enforcement prompt.
import { connectionSubject, type Connection } from '../connection.js';
import type { RulePort } from '../rules/ruleKey.js';
import type { PromptClock } from './promptBroker.js';

interface InformedPrompt {
  requestId: string;
  subject: string;
  port: number;
  timer: unknown;
}

export interface LearningPromptsDeps {
  clock: PromptClock;
  timeoutMs: () => number;
  /** Closes the popup on every client but `except` (the one that answered). */
  close: (requestId: string, except: unknown) => void;
  /** Informational prompts remembered at most; the oldest is forgotten (not closed) beyond. */
  maxOpen: number;
}

export class LearningPrompts {
  private readonly open = new Map<string, InformedPrompt>();

  constructor(private readonly deps: LearningPromptsDeps) {}

  get size(): number {
    return this.open.size;
  }

  add(requestId: string, conn: Connection): void {
    const prompt: InformedPrompt = { requestId, subject: connectionSubject(conn), port: conn.port, timer: null };
    prompt.timer = this.deps.clock.setTimeout(() => this.settle(prompt, null), this.deps.timeoutMs());
    this.open.set(requestId, prompt);
    if (this.open.size > this.deps.maxOpen) {
      const oldest = this.open.values().next().value!;
      this.deps.clock.clearTimeout(oldest.timer);
      this.open.delete(oldest.requestId);
    }
  }

  /**
   * A rule `subject:port` was saved (by `answeredBy`, e.g. the tray's add_rule for "Always"):
   * the popups it answers close everywhere else. A `@dest:ip:port` subject carries its port.
   */
  ruleSaved(subject: string, port: RulePort, answeredBy: unknown): void {
    for (const prompt of [...this.open.values()]) {
      if (prompt.subject === subject && (port === '*' || port === prompt.port)) this.settle(prompt, answeredBy);
    }
  }

  /** Stopping: forget them all (the clients are about to be disconnected). */
  clear(): void {
    for (const prompt of this.open.values()) this.deps.clock.clearTimeout(prompt.timer);
    this.open.clear();
  }

  private settle(prompt: InformedPrompt, answeredBy: unknown): void {
    if (this.open.get(prompt.requestId) !== prompt) return;
    this.open.delete(prompt.requestId);
    this.deps.clock.clearTimeout(prompt.timer);
    this.deps.close(prompt.requestId, answeredBy);
  }
}
