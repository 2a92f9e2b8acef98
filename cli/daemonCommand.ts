// `bastion daemon`: the unprivileged policy service in the foreground.
import type { Command } from 'commander';
import { join } from 'node:path';
import { DEFAULT_STATE_DIR } from '../common/history.js';
import { existsSync } from 'node:fs';
import { createLogger } from '../common/log.js';
import { groupId, packageVersion } from '../common/system.js';
import { PolkitAuthorizer, RootOnlyAuthorizer, type Authorizer } from '../service/authorizer.js';
import { PolicyDaemon } from '../service/daemon.js';
import { DEFAULT_METRICS_INTERVAL_S } from '../service/metrics/metricsFile.js';
import { besideRules, DEFAULTS } from './defaults.js';
import { runUntilSignal } from './run.js';
import { systemdNotifierFromEnv } from './systemdNotify.js';

export function registerDaemonCommand(program: Command): void {
  program
    .command('daemon')
    .description('run the policy service: rules, verdicts, prompts, the GUI socket')
    .option('--config <path>', 'config.json', DEFAULTS.configPath)
    .option('--rules <path>', 'rules.json', DEFAULTS.rulesPath)
    .option('--rules-dir <dir>', 'extended rules deployed as files (default: rules.d beside rules.json)')
    .option('--imported-rules <path>', 'where `bastion rules import` keeps extended rules (default: rules.imported.json beside rules.json)')
    .option('--lists-dir <dir>', 'host and IP lists (default: lists.d beside rules.json)')
    .option('--endpoint <ipc>', 'ZeroMQ endpoint of the helper', DEFAULTS.endpoint)
    .option('--socket <path>', 'GUI socket path', DEFAULTS.guiSocketPath)
    .option('--socket-group <name>', 'group allowed to use the GUI socket', DEFAULTS.socketGroup)
    .option('--mode <mode>', 'override config.json: learning|enforcement')
    .option('--journal-socket <path>', "journald's native socket for decision lines", '/run/systemd/journal/socket')
    .option('--state-dir <dir>', `the service's own files (the history, the last good rules and config); default: $STATE_DIRECTORY, else ${DEFAULT_STATE_DIR}`)
    .option('--history <path>', 'the decision history (SQLite); default: history.sqlite in the state directory')
    .option('--no-history', 'keep no decision history')
    .option(
      '--metrics-dir <dir>',
      "write bastion.prom (Prometheus text format) into this directory, e.g. node_exporter's /var/lib/prometheus/node-exporter; default: no metrics file",
    )
    .option('--metrics-interval <seconds>', 'how often the metrics file is rewritten', String(DEFAULT_METRICS_INTERVAL_S))
    .option('--resolv-conf <path>', 'the resolv.conf whose nameservers every program may ask when allow_dns is on', '/etc/resolv.conf')
    .option('--passwd <path>', 'the accounts file naming the users system services run as (watched for changes)', '/etc/passwd')
    .option('--no-polkit', 'without polkit (minimal systems): only root may change rules or mode')
    .action(
      async (opts: {
        config: string;
        rules: string;
        rulesDir?: string;
        importedRules?: string;
        listsDir?: string;
        endpoint: string;
        socket: string;
        socketGroup: string;
        mode?: string;
        polkit: boolean;
        journalSocket: string;
        history?: string | false;
        stateDir?: string;
        metricsDir?: string;
        metricsInterval: string;
        resolvConf: string;
        passwd: string;
      }) => {
        // The GUI's helper scripts signal `pkill -HUP -x bastion-daemon`.
        process.title = 'bastion-daemon';
        const log = createLogger({ name: 'bastion-daemon' });
        if (opts.mode !== undefined && opts.mode !== 'learning' && opts.mode !== 'enforcement') {
          log.fatal(`--mode must be learning or enforcement, not "${opts.mode}"`);
          process.exit(2);
        }
        const metricsInterval = Number(opts.metricsInterval);
        if (!Number.isInteger(metricsInterval) || metricsInterval < 1 || metricsInterval > 3600) {
          log.fatal(`--metrics-interval must be a whole number of seconds from 1 to 3600, not "${opts.metricsInterval}"`);
          process.exit(2);
        }
        const notifier = systemdNotifierFromEnv(log);
        const stateDir = opts.stateDir ?? process.env['STATE_DIRECTORY']?.split(':')[0] ?? DEFAULT_STATE_DIR;
        if (!existsSync(stateDir)) log.warn({ stateDir }, 'no state directory: no last good copy of rules.json and config.json is kept');
        let authorizer: Authorizer = new RootOnlyAuthorizer();
        if (opts.polkit) {
          const polkit = new PolkitAuthorizer();
          if (!polkit.pkcheckAvailable()) {
            log.error('pkcheck not found: only root can change rules; install polkitd, or pass --no-polkit to say so');
          }
          authorizer = polkit;
        }
        const daemon = new PolicyDaemon(
          {
            version: packageVersion(),
            configPath: opts.config,
            rulesPath: opts.rules,
            endpoint: opts.endpoint,
            guiSocketPath: opts.socket,
            socketGid: groupId(opts.socketGroup),
            authorizer,
            modeOverride: (opts.mode as 'learning' | 'enforcement' | undefined) ?? null,
            statsIntervalMs: 2000,
            journalSocketPath: opts.journalSocket,
            historyPath: historyPath(opts.history, stateDir),
            stateDir: existsSync(stateDir) ? stateDir : null,
            metrics: opts.metricsDir === undefined ? null : { dir: opts.metricsDir, intervalMs: metricsInterval * 1000 },
            ...besideRules(opts),
            resolvConfPath: opts.resolvConf,
            passwdPath: opts.passwd,
          },
          log,
        );
        await runUntilSignal(
          log,
          async () => {
            await daemon.start();
            notifier.ready(`serving ${opts.socket}; rule edits authorized by ${opts.polkit ? 'polkit' : 'uid 0 only'}`);
          },
          () => {
            notifier.stopping();
            return daemon.stop();
          },
          () => {
            log.info('SIGHUP: reloading config.json and rules.json');
            notifier.reloading();
            void daemon.reload().finally(() => notifier.ready('reloaded config.json and rules.json'));
          },
        );
      },
    );
}

function historyPath(option: string | false | undefined, stateDir: string): string | null {
  if (option === false) return null;
  return option ?? join(stateDir, 'history.sqlite');
}
