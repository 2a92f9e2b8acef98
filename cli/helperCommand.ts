// `bastion helper`: the root helper in the foreground. Only wiring: options -> Helper.
import type { Command } from 'commander';
import { createLogger } from '../common/log.js';
import { groupId, packageVersion, userId } from '../common/system.js';
import { DEFAULT_DNS_SNOOP } from '../helper/dns/dnsSnoop.js';
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
    .option('--socket-group <name>', 'group allowed to reach the endpoint (the service user alone)', DEFAULTS.busGroup)
    .option('--service-user <name>', 'the only user whose processes may connect as the service (name or uid)', DEFAULTS.serviceUser)
    .option('--fail-closed', 'drop (not accept) when the service is absent or late, or the queue is full')
    .option('--malformed <verdict>', 'verdict for packets that cannot be parsed: accept|drop', 'drop')
    .option('--ack-deadline-ms <ms>', 'how long a packet waits for the service', intOption(1, 60000), 1000)
    .option('--max-hold-ms <ms>', 'longest a prompt may hold a packet', intOption(1000, 600000), 310000)
    .option('--chain <name>', 'iptables chain of our own', DEFAULT_FIREWALL_RULES.chain)
    .option('--strict', 'no --queue-bypass: while no helper runs (crash, restart), new connections are dropped')
    .option('--no-rules', 'do not install iptables rules (they are managed elsewhere)')
    .option('--no-ipv6', 'leave IPv6 alone')
    .option('--dns-queue <n>', `NFQUEUE number for the DNS answers read for host names (default ${DEFAULT_DNS_SNOOP.queueNum}, or ${DEFAULT_DNS_SNOOP.queueNum + 1} when --queue is ${DEFAULT_DNS_SNOOP.queueNum})`, intOption(0, 65535))
    .option('--dns-chain <name>', 'iptables chain of our own (mangle table, INPUT) for DNS answers', DEFAULT_DNS_SNOOP.chain)
    .option('--no-host-names', 'do not read DNS answers (no host names in prompts, no @host rules)')
    .option('--no-fast-path', 'answer every packet from JS (by default the addon answers cached verdicts of known processes)')
    .option('--no-caller-bpf', 'do not ask the kernel which process connected a socket (eBPF); credit a holder found in /proc')
    .action(async (opts: {
      queue: number; endpoint: string; socketGroup: string; serviceUser: string; failClosed?: boolean; malformed: string;
      ackDeadlineMs: number; maxHoldMs: number; chain: string; rules: boolean; ipv6: boolean; strict?: boolean; fastPath: boolean;
      dnsQueue?: number; dnsChain: string; hostNames: boolean; callerBpf: boolean;
    }) => {
      const dnsQueue = opts.dnsQueue ?? (opts.queue === DEFAULT_DNS_SNOOP.queueNum ? DEFAULT_DNS_SNOOP.queueNum + 1 : DEFAULT_DNS_SNOOP.queueNum);
      if (opts.hostNames && dnsQueue === opts.queue) {
        process.stderr.write(`bastion helper: --dns-queue must differ from --queue (${opts.queue})\n`);
        process.exitCode = 2;
        return;
      }
      process.title = 'bastion-helper';
      const log = createLogger({ name: 'bastion-helper' });
      const notifier = systemdNotifierFromEnv(log);
      const failOpen = !opts.failClosed;
      const serviceUid = userId(opts.serviceUser);
      if (serviceUid === null) {
        log.fatal({ user: opts.serviceUser }, `no user "${opts.serviceUser}": create it (the package does) or name the service's user with --service-user`);
        process.exitCode = 1;
        return;
      }
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
          serviceUid,
          ackDeadlineMs: opts.ackDeadlineMs,
          maxHoldMs: opts.maxHoldMs,
          fallbackAccept: failOpen,
          malformedAccept: opts.malformed === 'accept',
          heartbeatMs: 500,
          silenceMs: 3000,
          fastPath: opts.fastPath,
          dnsSnoop: opts.hostNames
            ? {
                queueNum: dnsQueue,
                chain: opts.dnsChain,
                families: opts.ipv6 ? [4, 6] : [4],
                manageRules: opts.rules,
                iptables: DEFAULT_FIREWALL_RULES.iptables,
                ip6tables: DEFAULT_FIREWALL_RULES.ip6tables,
              }
            : null,
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
