// `bastion agent`'s core: one answering connection to the GUI socket as the desktop user, each
// prompt shown as a desktop notification with actions and kept for the panel, answers sent back
// as the Python tray sends them (cli/promptKeys.ts, replyFor). Reconnects when the service
// restarts (which sends the open prompts again). Without a notification server, prompts are
// answered in the panel.
import type { ClientMessage, DetailedConnectionRequest, ServiceMessage, DecisionMessage, Counters } from '../../common/guiProtocol.js';
import type { Logger } from '../../common/log.js';
import { AUTHORIZED_REPLY_MS, GuiConnection } from '../guiClient.js';
import { replyFor, type Duration } from '../promptKeys.js';
import type { DesktopEntries } from './desktopEntries.js';
import type { DesktopNotifier } from './notifier.js';
import type { PromptFacts } from '../../common/panelApi.js';
import { notificationText, promptFacts } from './promptText.js';

/** The notification's buttons: action key, label. */
export const NOTIFICATION_ACTIONS = [
  ['allow-once', 'Allow once'],
  ['allow-always', 'Allow always'],
  ['deny', 'Deny'],
  ['more', 'More…'],
  // A click on the notification itself (most servers show no button for it).
  ['default', 'Open the firewall panel'],
] as const;

export interface PendingPrompt {
  request: DetailedConnectionRequest;
  facts: PromptFacts;
  receivedAt: number;
  notificationId: number | null;
}

export interface PanelAnswer {
  requestId: string;
  allow: boolean;
  duration: Duration;
  allPorts: boolean;
}

/** What the panel pages are told as it happens (batched by the panel server). */
export type AgentEvent =
  | { kind: 'prompt'; prompt: PendingPrompt }
  | { kind: 'prompt-closed'; requestId: string }
  | { kind: 'stats'; stats: Counters & { learning_mode: boolean } }
  | { kind: 'decision'; decision: DecisionMessage }
  | { kind: 'notice'; title: string; message: string; level: string }
  | { kind: 'link'; connected: boolean };

export interface DesktopAgentDeps {
  socketPath: string;
  notifier: DesktopNotifier | null;
  entries: DesktopEntries;
  userName(uid: number): string | null;
  /**
   * Show the panel: `asked` when the user clicked for it ("More…"); otherwise a prompt found no
   * notification server, and the panel opens only if no page shows it already.
   */
  openPanel(asked: boolean): void;
  log: Logger;
  now(): number;
  reconnectMs?: number;
  /** The GUI socket refused this user (not in group bastion). */
  onNoAccess?(message: string): void;
}

export class DesktopAgent {
  readonly prompts = new Map<string, PendingPrompt>();
  private readonly byNotification = new Map<number, string>();
  /**
   * Buttons clicked before Notify's reply told us the id: the server sends ActionInvoked and the
   * reply on different paths, so a quick click can arrive first.
   */
  private readonly earlyActions = new Map<number, string>();
  private conn: GuiConnection | null = null;
  private stopped = false;
  private listeners = new Set<(e: AgentEvent) => void>();
  private feedWanted = false;
  /** Connection attempts that failed since the socket was last reachable. */
  private failures = 0;
  stats: (Counters & { learning_mode: boolean }) | null = null;
  connected = false;
  timeoutSeconds = 60;

  constructor(private readonly deps: DesktopAgentDeps) {}

  get notifications(): 'on' | 'unavailable' {
    return this.deps.notifier ? 'on' : 'unavailable';
  }

  subscribe(listener: (e: AgentEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The live feed costs the service a message per decision: subscribed only while a page shows it. */
  setFeed(wanted: boolean): void {
    if (wanted === this.feedWanted) return;
    this.feedWanted = wanted;
    this.conn?.send({ type: wanted ? 'subscribe' : 'unsubscribe', feed: 'decisions' });
  }

  async start(): Promise<void> {
    await this.connectOnce();
  }

  stop(): void {
    this.stopped = true;
    this.conn?.close();
  }

  private async connectOnce(): Promise<void> {
    if (this.stopped) return;
    let conn: GuiConnection;
    try {
      conn = await GuiConnection.connect(this.deps.socketPath, { answersPrompts: true, details: true, client: 'bastion agent' });
    } catch (err) {
      const message = (err as Error).message;
      // Not in group bastion: nothing changes until the user logs in again.
      if (message.includes('permission denied')) this.deps.onNoAccess?.(message);
      // Said once per outage; the retries wait longer each time, up to 30 s.
      if (this.failures++ === 0) this.deps.log.warn({ reason: message }, 'GUI socket not reachable; trying again');
      this.retry();
      return;
    }
    this.conn = conn;
    if (this.failures > 0) this.deps.log.info({ after: this.failures }, 'GUI socket reachable again');
    this.failures = 0;
    conn.onServiceMessage((m) => this.onMessage(m));
    if (this.feedWanted) conn.send({ type: 'subscribe', feed: 'decisions' });
    this.setConnected(true);
    void conn.request({ type: 'status' }, 'status').then(
      (s) => {
        if (typeof s['timeout_seconds'] === 'number') this.timeoutSeconds = s['timeout_seconds'];
      },
      () => undefined,
    );
    void conn.closed.then(() => {
      this.conn = null;
      this.setConnected(false);
      for (const id of [...this.prompts.keys()]) this.closePrompt(id);
      this.retry();
    });
  }

  private retry(): void {
    if (this.stopped) return;
    const base = this.deps.reconnectMs ?? 1000;
    setTimeout(() => void this.connectOnce(), Math.min(30_000, base * 2 ** Math.min(this.failures, 5))).unref();
  }

  private setConnected(connected: boolean): void {
    this.connected = connected;
    this.emit({ kind: 'link', connected });
  }

  private emit(e: AgentEvent): void {
    for (const l of this.listeners) l(e);
  }

  private onMessage(m: ServiceMessage): void {
    switch (m.type) {
      case 'connection_request':
        void this.openPrompt(m);
        return;
      case 'cancel_popup':
        this.closePrompt(m.request_id);
        return;
      case 'stats_update':
        this.stats = m.stats;
        this.emit({ kind: 'stats', stats: m.stats });
        return;
      case 'decision':
        this.emit({ kind: 'decision', decision: m });
        return;
      case 'notification':
        this.emit({ kind: 'notice', title: m.title, message: m.message, level: m.level });
        return;
      case 'error':
        this.emit({ kind: 'notice', title: 'Bastion', message: m.error, level: 'error' });
        return;
      default:
        return;
    }
  }

  private async openPrompt(request: DetailedConnectionRequest): Promise<void> {
    if (this.prompts.has(request.request_id)) return;
    const entry = this.deps.entries.find(request.app_path);
    const prompt: PendingPrompt = {
      request,
      facts: promptFacts(request, entry, this.deps.userName),
      receivedAt: this.deps.now(),
      notificationId: null,
    };
    this.prompts.set(request.request_id, prompt);
    this.emit({ kind: 'prompt', prompt });
    const notifier = this.deps.notifier;
    if (!notifier) {
      this.deps.openPanel(false);
      return;
    }
    const text = notificationText(prompt.facts, request.learning_mode, notifier.markup);
    try {
      const id = await notifier.show({
        ...text,
        icon: prompt.facts.icon,
        actions: notifier.actions ? NOTIFICATION_ACTIONS : [],
        expireMs: request.learning_mode ? 10_000 : 0,
      });
      if (!this.prompts.has(request.request_id)) {
        await notifier.close(id); // answered elsewhere meanwhile
        return;
      }
      prompt.notificationId = id;
      this.byNotification.set(id, request.request_id);
      const early = this.earlyActions.get(id);
      this.earlyActions.clear();
      if (early !== undefined) this.onNotificationAction(id, early);
    } catch (err) {
      this.deps.log.warn({ reason: (err as Error).message }, 'the notification server refused a notification: the panel shows the prompt');
      this.deps.openPanel(false);
    }
  }

  private closePrompt(requestId: string): void {
    const prompt = this.prompts.get(requestId);
    if (!prompt) return;
    this.prompts.delete(requestId);
    if (prompt.notificationId !== null) {
      this.byNotification.delete(prompt.notificationId);
      void this.deps.notifier?.close(prompt.notificationId);
    }
    this.emit({ kind: 'prompt-closed', requestId });
  }

  /** A notification's button. */
  onNotificationAction(id: number, key: string): void {
    const requestId = this.byNotification.get(id);
    if (requestId === undefined) {
      if (this.earlyActions.size < 16) this.earlyActions.set(id, key);
      return;
    }
    switch (key) {
      case 'allow-once':
        return this.answer({ requestId, allow: true, duration: 'once', allPorts: false });
      case 'allow-always':
        return this.answer({ requestId, allow: true, duration: 'always', allPorts: false });
      case 'deny':
        return this.answer({ requestId, allow: false, duration: 'once', allPorts: false });
      case 'more':
      case 'default':
        this.deps.openPanel(true);
        return;
      default:
        return;
    }
  }

  onNotificationClosed(id: number): void {
    const requestId = this.byNotification.get(id);
    if (requestId === undefined) return;
    // Dismissed without an answer: it stays in the panel until answered or timed out.
    this.byNotification.delete(id);
    const prompt = this.prompts.get(requestId);
    if (prompt) prompt.notificationId = null;
  }

  /** Sends the tray's message for an answer; false when the prompt is not (or no longer) open. */
  answer(a: PanelAnswer): void {
    const prompt = this.prompts.get(a.requestId);
    if (!prompt || !this.conn) return;
    const reply = replyFor(prompt.request, a.allow, a.duration, a.allPorts);
    if (reply) this.conn.send(reply);
    this.closePrompt(a.requestId);
  }

  /**
   * One request on a connection of its own (rule edits, mode, config): the reply, or the
   * service's error. A change waits as long as polkit may ask for a password.
   */
  async request(message: ClientMessage, replyType: string, then?: ClientMessage): Promise<Record<string, unknown>> {
    const conn = await GuiConnection.connect(this.deps.socketPath, { client: 'bastion agent panel' });
    try {
      if (!then) return await conn.request(message, replyType, AUTHORIZED_REPLY_MS);
      conn.send(message);
      return await conn.request(then, replyType, AUTHORIZED_REPLY_MS);
    } finally {
      conn.close();
    }
  }
}
