// The policy service: wires config, rules, decisions, the helper link and the GUI socket.
import { dirname, join } from 'node:path';
// Construction only; the policy itself lives in policy.ts and decider.ts.
import type { Logger } from '../common/log.js';
import type { Counters, ServiceMessageOf, StatusReply } from '../common/guiProtocol.js';
import type { Authorizer } from './authorizer.js';
import { ConfigStore, type BastionConfig } from './config.js';
import { Decider } from './decider.js';
import { DecisionFeed } from './gui/decisionFeed.js';
import { dispatchGuiMessage, type GuiContext } from './gui/guiMessages.js';
import { isControlPanel } from './gui/clientRole.js';
import { GuiServer } from './gui/guiServer.js';
import { HelperLink } from './helperLink.js';
import { HistoryWriter } from './history/historyWriter.js';
import { DecisionJournal } from './journal/decisionJournal.js';
import { JournalWriter } from './journal/journald.js';
import { Policy } from './policy.js';
import { AnswerRecorder } from './prompts/answerRecorder.js';
import { GuiPromptBroker, type NotificationLevel } from './prompts/promptBroker.js';
import { RulesStore } from './rules/rulesStore.js';
import { LastGoodCopy } from './lastGoodCopy.js';
import { SessionDecisions } from './sessions.js';
import { Stats } from './stats.js';
import { Whitelist } from './whitelist.js';
import { Nameservers } from './nameservers.js';
import { resolvConfOwners } from '../common/resolvConf.js';
import { LiveFlows, SESSION_RECHECK_MS } from './liveFlows.js';
import { AccountWatch } from './accountWatch.js';
import { userId } from '../common/system.js';
import { kernelPathRules } from './kernelRules.js';
import { INBOUND_STATE_FILE_NAME, InboundStatus } from './inboundState.js';
import { bastionMetrics } from './metrics/bastionMetrics.js';
import { MetricsFile } from './metrics/metricsFile.js';
import { promText } from './metrics/promText.js';
import { ExtendedRulesStore } from './rules/extendedRulesStore.js';
import { ProcessFacts } from './rules/processFacts.js';
import { HostLists } from './lists/hostLists.js';
import type { ExtendedRule } from './rules/extendedRule.js';
import type { Connection } from './connection.js';
import { unknownLists } from './rules/extendedRulesStore.js';

export interface DaemonOptions {
  version: string;
  configPath: string;
  rulesPath: string;
  endpoint: string;
  guiSocketPath: string;
  socketGid: number | null;
  authorizer: Authorizer;
  /** Overrides config.json's mode for this run (the CLI's --mode). */
  modeOverride: BastionConfig['mode'] | null;
  statsIntervalMs: number;
  /** journald's native socket (service/journal/journald.ts); absent: the system's. */
  journalSocketPath?: string;
  /** The decision history file (service/history/historyWriter.ts); null: none. */
  historyPath?: string | null;
  /** Where the last good rules.json and config.json are kept (a start with a broken file uses them); null: nowhere. */
  stateDir?: string | null;
  /** node_exporter's textfile directory to write bastion.prom into, and how often; absent: no metrics file. */
  metrics?: { dir: string; intervalMs: number } | null;
  /** The old GUI's inbound state file; absent: inbound-active beside the GUI socket; null: none. */
  inboundStateFile?: string | null;
  /** rules.d: extended rules deployed by the administrator (docs/rules.md). */
  rulesDir: string;
  /** The service's own file of imported extended rules; null: none. */
  importedRulesPath: string | null;
  /** lists.d: host and IP lists that rules name (service/lists). */
  listsDir: string;
  /** The resolv.conf whose nameservers allow_dns opens to every program; default /etc/resolv.conf. */
  resolvConfPath?: string;
  /** The accounts file whose users the whitelist's system services run as; default /etc/passwd (watched). */
  passwdPath?: string;
}

/** A changed program's pinned-hash notice is repeated at most this often per rule and program. */
const PIN_NOTICE_MS = 60_000;

/** useradd writes passwd, shadow, group and gshadow in turn: one re-read after they settle. */
const ACCOUNT_DEBOUNCE_MS = 300;

/**
 * How long the helper may reuse a path rule's allow without asking (Verdict.cache_ms). Any rule
 * or session change resets its cache at once; this bounds what a missed change could cost.
 */
const HELPER_CACHE_MS = 5000;

/** What becomes of containers' and VMs' forwarded traffic (README, "Forwarded traffic"). */
const FORWARDED_TRAFFIC = 'not decided: traffic forwarded for containers and VMs (FORWARD) passes without rules, prompts or log';

export class PolicyDaemon {
  readonly stats = new Stats();
  readonly config: ConfigStore;
  readonly rules: RulesStore;
  readonly extended: ExtendedRulesStore;
  readonly lists: HostLists;
  readonly facts: ProcessFacts;
  private readonly pinNotices = new Map<string, number>();
  /** A changed rule or session decision resets the helper's verdict cache at once. */
  readonly sessions = new SessionDecisions(undefined, () => this.policyChanged());
  readonly decider: Decider;
  readonly prompts: GuiPromptBroker;
  readonly feed = new DecisionFeed();
  private readonly journal: DecisionJournal;
  private readonly history: HistoryWriter | null;
  private readonly link: HelperLink;
  private readonly gui: GuiServer;
  private readonly metricsFile: MetricsFile | null;
  readonly inbound: InboundStatus;
  private readonly nameservers: Nameservers;
  private readonly whitelist: Whitelist;
  private readonly accounts: AccountWatch;
  /** Open connections a lasting allowance let out: ended when it is withdrawn (end_connections). */
  private readonly liveFlows: LiveFlows;
  private sessionTimer: NodeJS.Timeout | null = null;
  private statsTimer: NodeJS.Timeout | null = null;
  private readonly startedAt = Date.now();
  private effectiveConfig: BastionConfig;
  /** --mode of this run; a mode set over the socket replaces it. */
  private modeOverride: BastionConfig['mode'] | null;

  constructor(
    private readonly options: DaemonOptions,
    private readonly log: Logger,
  ) {
    const lastGood = (name: string): { lastGood?: LastGoodCopy } => (options.stateDir ? { lastGood: new LastGoodCopy(join(options.stateDir, name), log) } : {});
    this.config = new ConfigStore({ path: options.configPath, logger: log, ...lastGood('config.last-good.json') });
    this.rules = new RulesStore({ path: options.rulesPath, logger: log, onChange: () => this.policyChanged(), ...lastGood('rules.last-good.json') });
    this.lists = new HostLists({ dir: options.listsDir, logger: log, onChange: () => this.policyChanged() });
    this.facts = new ProcessFacts(() => this.lists);
    this.extended = new ExtendedRulesStore({
      dir: options.rulesDir,
      importedPath: options.importedRulesPath,
      logger: log,
      onChange: () => this.policyChanged(),
    });
    this.modeOverride = options.modeOverride;
    this.effectiveConfig = this.applyOverride(this.config.current);
    this.journal = new DecisionJournal(
      new JournalWriter({ ...(options.journalSocketPath !== undefined && { socketPath: options.journalSocketPath }), log }),
      () => this.effectiveConfig.journalDecisions,
    );
    this.history = options.historyPath
      ? new HistoryWriter({
          path: options.historyPath,
          maxEntries: () => this.effectiveConfig.historyMaxEntries,
          retentionDays: () => this.effectiveConfig.historyRetentionDays,
          log,
        })
      : null;
    this.inbound = new InboundStatus(
      options.inboundStateFile === undefined ? join(dirname(options.guiSocketPath), INBOUND_STATE_FILE_NAME) : options.inboundStateFile,
      log,
    );
    const passwd = options.passwdPath ?? '/etc/passwd';
    this.nameservers = new Nameservers({
      ...(options.resolvConfPath !== undefined && { path: options.resolvConfPath }),
      trustedOwners: () => resolvConfOwners(passwd),
      onChange: (addresses, problem) => {
        if (problem !== null) log.warn({ problem }, 'no nameserver allowed for every program (allow_dns)');
        else log.info({ nameservers: addresses }, 'DNS to these nameservers passes for every program (allow_dns)');
      },
    });
    const whitelist = new Whitelist((user) => userId(user, passwd), this.nameservers);
    this.whitelist = whitelist;
    this.accounts = new AccountWatch({ path: passwd, debounceMs: ACCOUNT_DEBOUNCE_MS, onChange: () => this.accountsChanged(), log });
    const policy = new Policy({
      config: () => this.effectiveConfig,
      rules: () => this.rules.rules,
      sessions: this.sessions,
      whitelist,
      extended: () => this.extended.rules,
      facts: this.facts,
      onPinMismatch: (rule, conn, why) => this.pinMismatch(rule, conn, why),
    });
    this.liveFlows = new LiveFlows(policy);
    this.decider = new Decider({
      policy,
      stats: this.stats,
      log,
      sendVerdicts: (verdicts, epoch) => this.link.sendVerdicts(verdicts, epoch),
      holdMs: () => (this.effectiveConfig.timeoutSeconds + 5) * 1000,
      logDecisions: () => this.effectiveConfig.logDecisions,
      helperCacheMs: () => HELPER_CACHE_MS,
      staleHelperCache: () => this.link.resetHelperCache('stale entry seen'),
    });
    this.prompts = new GuiPromptBroker({
      config: () => this.effectiveConfig,
      clients: () => this.gui.allClients(),
      recorder: new AnswerRecorder({ sessions: this.sessions, rules: this.rules, authorizer: options.authorizer, log }),
      notify: (level, title, message) => this.notify(level, title, message),
      onPromptOpened: (conn) => this.journal.promptOpened(conn),
      listensOnly: (client) => isControlPanel(client.peer),
      log,
    });
    this.decider.setPromptBroker(this.prompts);
    this.decider.onDecision((event, conn) => {
      this.liveFlows.decided(event, conn);
      this.feed.publish(event);
      this.journal.decision(event);
      this.history?.add(event);
      if (event.reason === 'learning') this.prompts.inform(conn);
    });
    this.link = new HelperLink(
      {
        endpoint: options.endpoint,
        version: options.version,
        heartbeatMs: 1000,
        pathRules: () =>
          kernelPathRules({
            rules: this.rules.rules,
            sessionNames: (subject) => this.sessions.names(subject),
            whitelisted: (path) => whitelist.isSystemClient(path),
            pathRulesFinal: (path) => policy.pathRulesFinal(path),
          }),
        inboundWanted: () => this.effectiveConfig.inboundProtection,
        onInboundState: (state) => void this.inbound.update(state),
      },
      (records, epoch) => this.decider.decideBatch(records, epoch),
      log,
    );
    this.metricsFile = options.metrics ? new MetricsFile({ ...options.metrics, text: () => this.metricsText(), log }) : null;
    const ctx: GuiContext = {
      rules: this.rules,
      extended: this.extended,
      config: this.config,
      sessions: this.sessions,
      authorizer: options.authorizer,
      status: () => this.status(),
      prompts: this.prompts,
      feed: this.feed,
      log,
      inForce: () => this.effectiveConfig,
      onConfigChanged: (config, key) => {
        // `bastion mode` is the newer word than the start flag; another key leaves --mode in force.
        if (key === 'mode') this.modeOverride = null;
        this.configChanged(config);
      },
    };
    this.gui = new GuiServer(
      { path: options.guiSocketPath, socketGid: options.socketGid, maxLineBytes: 64 * 1024, maxPendingWriteBytes: 1 << 20, maxClients: 1024 },
      {
        onConnect: (client) => {
          client.send(this.statsMessage());
          this.prompts.clientConnected(client);
        },
        onMessage: async (client, message) => {
          await dispatchGuiMessage(ctx, client, message);
        },
        onDisconnect: (client) => {
          this.feed.unsubscribe(client);
          this.prompts.clientGone(client);
        },
      },
      log,
    );
  }

  async start(): Promise<void> {
    await this.reload();
    this.lists.watch();
    if (this.history && (await this.history.open())) this.log.info({ path: this.options.historyPath }, 'decision history open');
    await this.gui.listen();
    this.link.start();
    this.accounts.start();
    // A session or timed answer runs out without an event: the connections it allowed are checked.
    this.sessionTimer = setInterval(() => {
      if (this.effectiveConfig.endConnections && this.liveFlows.anyBySession) this.endWithdrawn(true);
    }, SESSION_RECHECK_MS);
    this.statsTimer = setInterval(() => this.gui.broadcast(this.statsMessage()), this.options.statsIntervalMs);
    this.metricsFile?.start();
    this.log.info({ mode: this.effectiveConfig.mode, rules: this.rules.rules.size }, 'policy service started');
  }

  /** SIGHUP: re-read both files; a broken file keeps the last good state. */
  async reload(): Promise<void> {
    const config = await this.config.load();
    if (!config.ok) {
      this.log.error({ error: config.error }, 'config.json refused; keeping the last good config');
      this.notify('error', 'config.json not loaded', `${config.error}; the previous settings stay in force`);
    }
    this.configChanged(this.config.current);
    this.whitelist.refresh();
    const rules = await this.rules.load();
    if (!rules.ok) this.notify('error', 'rules.json not loaded', `${rules.error}; ${rules.inForce}`);
    else this.log.info({ rules: rules.count, path: this.options.rulesPath }, 'rules loaded');
    const lists = await this.lists.load();
    if (lists.errors.length > 0)
      this.notify('warning', 'lists: lines skipped', `${lists.errors.length} files with skipped lines or files; bastion check-config names them`);
    const extended = await this.extended.load();
    const missing = unknownLists(this.extended.rules.ordered, (name) => this.lists.has(name));
    if (missing.length > 0) this.log.warn({ missing }, 'rules name lists that lists.d does not have: they match nothing');
    this.log.info({ rules: extended.count, files: extended.files, skipped: extended.errors.length, dir: this.options.rulesDir }, 'extended rules loaded');
    if (extended.errors.length > 0) this.notify('error', 'extended rules skipped', `${extended.errors.length} skipped; bastion check-config names them`);
  }

  /** A pinned executable changed: asked about again, and people told why (not more than once a minute). */
  private pinMismatch(rule: ExtendedRule, conn: Connection, why: string): void {
    const key = `${rule.source}\0${conn.exe ?? ''}`;
    const now = Date.now();
    if ((this.pinNotices.get(key) ?? 0) > now - PIN_NOTICE_MS) return;
    if (this.pinNotices.size > 1024) this.pinNotices.clear();
    this.pinNotices.set(key, now);
    this.log.warn({ rule: rule.source, exe: conn.exe, why }, 'pinned SHA-256 does not hold; asking again');
    this.notify('warning', 'program changed since its rule was written', `${rule.source}: ${why}`);
  }

  /** An account was added or removed: the system services' users are looked up again. */
  private accountsChanged(): void {
    const users = this.whitelist.refresh();
    this.log.info({ users }, 'accounts changed: system services allowed for these users');
  }

  /** The helper's cached verdicts came from the old rules or session decisions: drop them. */
  private policyChanged(): void {
    this.link.resetHelperCache('rules or session decisions changed');
    this.endWithdrawn(false);
  }

  /** Ends the open connections whose allowance was withdrawn (config end_connections). */
  private endWithdrawn(sessionsOnly: boolean): void {
    if (!this.effectiveConfig.endConnections || this.liveFlows.size === 0) return;
    const flows = this.liveFlows.noLongerAllowed(sessionsOnly);
    if (flows.length === 0) return;
    this.log.info({ connections: flows.length }, 'ending open connections the policy no longer allows');
    this.link.endConnections(flows);
  }

  async stop(): Promise<void> {
    this.accounts.stop();
    if (this.sessionTimer) clearInterval(this.sessionTimer);
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.prompts.stop();
    this.link.stop();
    await this.metricsFile?.stop();
    await this.inbound.stop();
    this.lists.close();
    await this.gui.close();
    await this.history?.close();
    this.log.info({ stats: this.stats.snapshot() }, 'policy service stopped');
  }

  status(): Omit<StatusReply, 'type'> {
    const helper = this.link.helperState();
    return {
      mode: this.effectiveConfig.mode,
      default_action: this.effectiveConfig.defaultAction,
      timeout_seconds: this.effectiveConfig.timeoutSeconds,
      uptime_seconds: Math.round((Date.now() - this.startedAt) / 1000),
      stats: this.countersJson(),
      rules: this.rules.rules.size,
      extended_rules: this.extended.rules.size,
      clients: this.gui.clientCount,
      prompts: { open: this.prompts.openCount, limited: this.prompts.limited, answering: this.prompts.answeringCount },
      monitors: this.feed.size,
      dns: { allowed: this.effectiveConfig.allowDns, nameservers: this.effectiveConfig.allowDns ? this.nameservers.list : [] },
      helper: {
        connected: helper.connected,
        pid: helper.hello?.pid ?? null,
        queue: helper.hello?.queueNum ?? null,
        capabilities: helper.hello?.capabilities ?? [],
        counters: helper.counters,
        counters_at_ms: helper.countersAtMs,
        bad_frames: helper.badFrames,
      },
      inbound: this.inboundJson(),
      forwarded: FORWARDED_TRAFFIC,
      metrics: this.metricsFile ? { file: this.metricsFile.path, writes: this.metricsFile.writes, error: this.metricsFile.lastError } : null,
    };
  }

  /** `bastion inbound status`: the policy asked for, and what the helper made of it. */
  private inboundJson(): NonNullable<StatusReply['inbound']> {
    const s = this.inbound.state;
    return {
      wanted: this.effectiveConfig.inboundProtection,
      helper_applies: this.link.helperDoesInbound,
      state: s?.state ?? null,
      firewall: s?.firewall || null,
      detail: s?.detail ?? null,
    };
  }

  /** The counters in Prometheus' text format (service/metrics). */
  metricsText(): string {
    const helper = this.link.helperState();
    return promText(
      bastionMetrics({
        decisionsByVerdictReason: this.stats.byVerdictReason,
        decisionsByAttribution: this.stats.byAttribution,
        prompts: { ...this.prompts.counts, limited: this.prompts.limited, open: this.prompts.openCount },
        helperConnected: helper.connected,
        helper: helper.connected ? helper.counters : null,
        inbound: this.inbound.state?.state ?? null,
        startedAtMs: this.startedAt,
      }),
    );
  }

  /** `notification` to every client (the tray shows a balloon), unless notifications_enabled is false. */
  private notify(level: NotificationLevel, title: string, message: string): void {
    if (!this.effectiveConfig.notificationsEnabled) return;
    this.gui.broadcast({ type: 'notification', title, message, level });
  }

  private countersJson(): Counters {
    const s = this.stats.snapshot();
    return { total_connections: s.total, allowed_connections: s.allowed, blocked_connections: s.blocked };
  }

  private statsMessage(): ServiceMessageOf<'stats_update'> {
    return { type: 'stats_update', stats: { ...this.countersJson(), learning_mode: this.effectiveConfig.mode === 'learning' } };
  }

  /** A new config (reload or set_mode): prompts follow a switch to learning, clients see the mode. */
  private configChanged(config: Readonly<BastionConfig>): void {
    const before = this.effectiveConfig.mode;
    const inboundBefore = this.effectiveConfig.inboundProtection;
    this.effectiveConfig = this.applyOverride(config);
    if (inboundBefore !== this.effectiveConfig.inboundProtection) this.link.sendInboundPolicy();
    this.prompts.configChanged(this.effectiveConfig);
    if (before !== this.effectiveConfig.mode) this.gui.broadcast(this.statsMessage());
  }

  private applyOverride(config: Readonly<BastionConfig>): BastionConfig {
    return this.modeOverride ? { ...config, mode: this.modeOverride } : { ...config };
  }
}
