// The policy service: wires config, rules, decisions, the helper link and the GUI socket.
// Construction only; the policy itself lives in policy.ts and decider.ts.
import type { Logger } from '../common/log.js';
import type { Authorizer } from './authorizer.js';
import { ConfigStore, type BastionConfig } from './config.js';
import { Decider } from './decider.js';
import { dispatchGuiMessage, type GuiContext } from './gui/guiMessages.js';
import { GuiServer } from './gui/guiServer.js';
import { HelperLink } from './helperLink.js';
import { Policy } from './policy.js';
import { RulesStore } from './rules/rulesStore.js';
import { SessionDecisions } from './sessions.js';
import { Stats } from './stats.js';
import { Whitelist } from './whitelist.js';

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
}

export class PolicyDaemon {
  readonly stats = new Stats();
  readonly config: ConfigStore;
  readonly rules: RulesStore;
  readonly sessions = new SessionDecisions();
  readonly decider: Decider;
  private readonly link: HelperLink;
  private readonly gui: GuiServer;
  private statsTimer: NodeJS.Timeout | null = null;
  private readonly startedAt = Date.now();
  private effectiveConfig: BastionConfig;

  constructor(
    private readonly options: DaemonOptions,
    private readonly log: Logger,
  ) {
    this.config = new ConfigStore({ path: options.configPath, logger: log });
    this.rules = new RulesStore({ path: options.rulesPath, logger: log });
    this.effectiveConfig = this.applyOverride(this.config.current);
    const policy = new Policy({
      config: () => this.effectiveConfig,
      rules: () => this.rules.rules,
      sessions: this.sessions,
      whitelist: new Whitelist(),
    });
    this.decider = new Decider({
      policy,
      stats: this.stats,
      log,
      sendVerdicts: (verdicts, epoch) => this.link.sendVerdicts(verdicts, epoch),
      holdMs: () => (this.effectiveConfig.timeoutSeconds + 5) * 1000,
      logDecisions: () => this.effectiveConfig.logDecisions,
    });
    this.link = new HelperLink(
      { endpoint: options.endpoint, version: options.version, heartbeatMs: 1000 },
      (records, epoch) => this.decider.decideBatch(records, epoch),
      log,
    );
    const ctx: GuiContext = {
      rules: this.rules,
      config: this.config,
      sessions: this.sessions,
      authorizer: options.authorizer,
      status: () => this.status(),
      onConfigChanged: (config) => {
        this.effectiveConfig = this.applyOverride(config);
      },
    };
    this.gui = new GuiServer(
      { path: options.guiSocketPath, socketGid: options.socketGid, maxLineBytes: 64 * 1024, maxPendingWriteBytes: 1 << 20, maxClients: 1024 },
      {
        onConnect: (client) => client.send(this.statsMessage()),
        onMessage: (client, message) => dispatchGuiMessage(ctx, client, message),
        onDisconnect: () => {},
      },
      log,
    );
  }

  async start(): Promise<void> {
    await this.reload();
    await this.gui.listen();
    this.link.start();
    this.statsTimer = setInterval(() => this.gui.broadcast(this.statsMessage()), this.options.statsIntervalMs);
    this.log.info({ mode: this.effectiveConfig.mode, rules: this.rules.rules.size }, 'policy service started');
  }

  /** SIGHUP: re-read both files; a broken file keeps the last good state. */
  async reload(): Promise<void> {
    const config = await this.config.load();
    if (!config.ok) this.log.error({ error: config.error }, 'config.json refused; keeping the last good config');
    this.effectiveConfig = this.applyOverride(this.config.current);
    const rules = await this.rules.load();
    if (!rules.ok) this.log.error({ error: rules.error }, 'rules.json refused; keeping the last good rules');
    else this.log.info({ rules: rules.count, path: this.options.rulesPath }, 'rules loaded');
  }

  async stop(): Promise<void> {
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.link.stop();
    await this.gui.close();
    this.log.info({ stats: this.stats.snapshot() }, 'policy service stopped');
  }

  status(): Record<string, unknown> {
    const helper = this.link.helperState();
    return {
      mode: this.effectiveConfig.mode,
      default_action: this.effectiveConfig.defaultAction,
      uptime_seconds: Math.round((Date.now() - this.startedAt) / 1000),
      stats: this.countersJson(),
      rules: this.rules.rules.size,
      clients: this.gui.clientCount,
      helper: {
        connected: helper.connected,
        pid: helper.hello?.pid ?? null,
        queue: helper.hello?.queueNum ?? null,
        capabilities: helper.hello?.capabilities ?? [],
        counters: helper.counters,
        bad_frames: helper.badFrames,
      },
    };
  }

  private countersJson(): Record<string, number> {
    const s = this.stats.snapshot();
    return { total_connections: s.total, allowed_connections: s.allowed, blocked_connections: s.blocked };
  }

  private statsMessage(): { type: string; stats: Record<string, unknown> } {
    return { type: 'stats_update', stats: { ...this.countersJson(), learning_mode: this.effectiveConfig.mode === 'learning' } };
  }

  private applyOverride(config: Readonly<BastionConfig>): BastionConfig {
    return this.options.modeOverride ? { ...config, mode: this.options.modeOverride } : { ...config };
  }
}
