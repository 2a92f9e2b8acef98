// `bastion helper`: the root helper in the foreground. Only wiring: options -> Helper.
import type { Command } from 'commander';
import { createLogger } from '../common/log.js';
import { groupId, packageVersion } from '../common/system.js';
import { DEFAULT_FIREWALL_RULES } from '../helper/firewallRules.js';
import { Helper } from '../helper/helper.js';
import { DEFAULT_QUEUE_OPTIONS } from '../helper/queue.js';
import { DEFAULTS } from './defaults.js';
import { intOption, runUntilSignal } from './run.js';
import { systemdNotifierFromEnv } from './systemdNotify.js';

export function registerHelperCommand(program: Command): void {
  program
    .command('helper')
    .description('run the root helper: NFQUEUE, iptables rules, process identification')
    .option('--queue <n>', 'NFQUEUE number', intOption(0, 65535), DEFAULTS.queueNum)
    .option('--endpoint <ipc>', 'ZeroMQ endpoint to bind', DEFAULTS.endpoint)
    .option('--socket-group <name>', 'group allowed to reach the endpoint', DEFAULTS.socketGroup)
    .option('--fail-closed', 'drop (not accept) when the service is absent or late, or the queue is full')
    .option('--malformed <verdict>', 'verdict for packets that cannot be parsed: accept|drop', 'drop')
    .option('--ack-deadline-ms <ms>', 'how long a packet waits for the service', intOption(1, 60000), 1000)
    .option('--max-hold-ms <ms>', 'longest a prompt may hold a packet', intOption(1000, 600000), 310000)
    .option('--chain <name>', 'iptables chain of our own', DEFAULT_FIREWALL_RULES.chain)
    .option('--strict', 'no --queue-bypass: while no helper runs (crash, restart), new connections are dropped')
    .option('--no-rules', 'do not install iptables rules (they are managed elsewhere)')
    .option('--no-ipv6', 'leave IPv6 alone')
    .option('--no-fast-path', 'answer every packet from JS (by default the addon answers cached verdicts of known processes)')
    .option('--no-caller-bpf', 'do not ask the kernel which process connected a socket (eBPF); credit a holder found in /proc')
    .action(async (opts: {
      queue: number; endpoint: string; socketGroup: string; failClosed?: boolean; malformed: string;
      ackDeadlineMs: number; maxHoldMs: number; chain: string; rules: boolean; ipv6: boolean; strict?: boolean; fastPath: boolean;
      callerBpf: boolean;
    }) => {
      process.title = 'bastion-helper';
      const log = createLogger({ name: 'bastion-helper' });
      const notifier = systemdNotifierFromEnv(log);
      const failOpen = !opts.failClosed;
      const helper = new Helper(
        {
          version: packageVersion(),
          queue: { ...DEFAULT_QUEUE_OPTIONS, queueNum: opts.queue, failOpen, exceptionVerdict: failOpen ? 1 : 0 },
          rules: {
            ...DEFAULT_FIREWALL_RULES,
            queueNum: opts.queue,
            chain: opts.chain,
            families: opts.ipv6 ? [4, 6] : [4],
            queueBypass: !opts.strict,
          },
          manageRules: opts.rules,
          endpoint: opts.endpoint,
          socketGid: groupId(opts.socketGroup),
          ackDeadlineMs: opts.ackDeadlineMs,
          maxHoldMs: opts.maxHoldMs,
          fallbackAccept: failOpen,
          malformedAccept: opts.malformed === 'accept',
          heartbeatMs: 500,
          silenceMs: 3000,
          fastPath: opts.fastPath,
          callerBpf: opts.callerBpf,
        },
        log,
      );
      // READY=1 only once the queue is bound and our iptables rules are in place.
      await runUntilSignal(
        log,
        async () => {
          await helper.start();
          notifier.ready(`queue ${opts.queue} bound${opts.rules ? ', iptables rules installed' : ''}; serving ${opts.endpoint}`);
        },
        () => {
          notifier.stopping();
          return helper.stop();
        },
      );
    });
}
