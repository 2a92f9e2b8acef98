// `bastion helper`: the root helper in the foreground. Only wiring: options -> Helper.
import type { Command } from 'commander';
import { createLogger } from '../common/log.js';
import { groupId, packageVersion, userId } from '../common/system.js';
import { DEFAULT_DNS_SNOOP } from '../helper/dns/dnsSnoop.js';
import { DEFAULT_FIREWALL_RULES, REJECT_MARK } from '../helper/firewallRules.js';
import { Helper } from '../helper/helper.js';
import { DEFAULT_INBOUND_CHAIN } from '../helper/inbound/inboundRules.js';
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
    .option('--fail-closed', 'drop (not accept) when the service is absent or late; implies --strict')
    .option('--queue-full <verdict>', 'verdict the kernel gives new connections while the queue is full (a flood): drop|accept', 'drop')
    .option('--malformed <verdict>', 'verdict for packets that cannot be parsed: accept|drop', 'drop')
    .option(
      '--deny-with <how>',
      'what a denied connection gets: reject (a TCP reset or ICMP unreachable: the program fails at once) or drop (it waits for its own timeout)',
      'reject',
    )
    .option('--ack-deadline-ms <ms>', 'how long a packet waits for the service', intOption(1, 60000), 1000)
    .option('--max-hold-ms <ms>', 'longest a prompt may hold a packet', intOption(1000, 600000), 310000)
    .option('--chain <name>', 'iptables chain of our own', DEFAULT_FIREWALL_RULES.chain)
    .option(
      '--strict',
      'no --queue-bypass, and the queue rules stay when the helper stops: while no helper runs (crash, restart, stop), new connections are dropped',
    )
    .option('--no-rules', 'do not install iptables rules (they are managed elsewhere)')
    .option(
      '--inbound-chain <name>',
      "iptables chain of our own (filter, end of INPUT) for inbound protection when config.json's inbound_protection asks for it",
      DEFAULT_INBOUND_CHAIN,
    )
    .option(
      '--inbound-recheck <seconds>',
      'how often inbound protection is re-checked while wanted (another firewall enabled later takes over)',
      intOption(1, 3600),
      30,
    )
    .option('--no-inbound', "never touch inbound traffic, whatever config.json's inbound_protection says")
    .option('--no-ipv6', 'leave IPv6 alone')
    .option(
      '--dns-queue <n>',
      `NFQUEUE number for the DNS answers read for host names (default ${DEFAULT_DNS_SNOOP.queueNum}, or ${DEFAULT_DNS_SNOOP.queueNum + 1} when --queue is ${DEFAULT_DNS_SNOOP.queueNum})`,
      intOption(0, 65535),
    )
    .option('--dns-chain <name>', 'iptables chain of our own (mangle table, INPUT) for DNS answers', DEFAULT_DNS_SNOOP.chain)
    .option(
      '--resolv-conf <path>',
      "the system resolver's configuration: only answers from its nameservers (and 127.0.0.53, 127.0.0.1) name addresses for @host rules",
      '/etc/resolv.conf',
    )
    .option('--no-host-names', 'do not read DNS answers (no host names in prompts, no @host rules)')
    .option('--no-fast-path', 'answer every packet from JS (by default the addon answers cached verdicts of known processes)')
    .option('--system-uids <first-last|none>', "socket owners whose new connections get a queue of their own, so a user's flood never delays them", '0-999')
    .option('--system-queue <n>', 'NFQUEUE number for the --system-uids queue (default: the first of 3, 4, ... not otherwise used)', intOption(0, 65535))
    .option(
      '--no-caller-bpf',
      'do not ask the kernel which process connected a socket (eBPF); a holder found in /proc is shown but matches no rule, unless --weak-identity',
    )
    .option(
      '--no-kernel-verdicts',
      "send every new connection to the queue: by default the kernel applies the service's path rules itself (allowed connections pass at once, denied TCP connects fail with EPERM)",
    )
    .option(
      '--bpf-fs <dir>',
      'a bpf file system where the in-kernel UDP allow filter is pinned for our chain (without one, UDP allows go to the queue)',
      '/sys/fs/bpf',
    )
    .option(
      '--weak-identity',
      'where the kernel cannot say who connected a socket (no eBPF), believe a process found holding it (a program may then borrow the rule of another it handed its socket to)',
    )
    .action(
      async (opts: {
        queue: number;
        endpoint: string;
        socketGroup: string;
        serviceUser: string;
        failClosed?: boolean;
        queueFull: string;
        malformed: string;
        denyWith: string;
        ackDeadlineMs: number;
        maxHoldMs: number;
        chain: string;
        rules: boolean;
        ipv6: boolean;
        strict?: boolean;
        fastPath: boolean;
        dnsQueue?: number;
        dnsChain: string;
        resolvConf: string;
        hostNames: boolean;
        callerBpf: boolean;
        kernelVerdicts: boolean;
        bpfFs: string;
        weakIdentity?: boolean;
        inbound: boolean;
        inboundChain: string;
        inboundRecheck: number;
        systemUids: string;
        systemQueue?: number;
      }) => {
        const dnsQueue = opts.dnsQueue ?? (opts.queue === DEFAULT_DNS_SNOOP.queueNum ? DEFAULT_DNS_SNOOP.queueNum + 1 : DEFAULT_DNS_SNOOP.queueNum);
        if (opts.hostNames && dnsQueue === opts.queue) {
          process.stderr.write(`bastion helper: --dns-queue must differ from --queue (${opts.queue})\n`);
          process.exitCode = 2;
          return;
        }
        const systemUids = parseUidRange(opts.systemUids);
        if (systemUids === undefined) {
          process.stderr.write(`bastion helper: --system-uids must be a range such as 0-999, or none, not "${opts.systemUids}"\n`);
          process.exitCode = 2;
          return;
        }
        const taken = [opts.queue, ...(opts.hostNames ? [dnsQueue] : [])];
        let systemQueue = opts.systemQueue ?? 3;
        if (opts.systemQueue === undefined) while (taken.includes(systemQueue)) systemQueue++;
        if (systemUids !== null && taken.includes(systemQueue)) {
          process.stderr.write(`bastion helper: --system-queue must differ from --queue and --dns-queue (${taken.join(', ')})\n`);
          process.exitCode = 2;
          return;
        }
        if (opts.denyWith !== 'reject' && opts.denyWith !== 'drop') {
          process.stderr.write(`bastion helper: --deny-with must be reject or drop, not "${opts.denyWith}"\n`);
          process.exitCode = 2;
          return;
        }
        if (opts.queueFull !== 'drop' && opts.queueFull !== 'accept') {
          process.stderr.write(`bastion helper: --queue-full must be drop or accept, not "${opts.queueFull}"\n`);
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
            queue: { ...DEFAULT_QUEUE_OPTIONS, queueNum: opts.queue, failOpen: opts.queueFull === 'accept', exceptionVerdict: failOpen ? 1 : 0 },
            rules: {
              ...DEFAULT_FIREWALL_RULES,
              queueNum: opts.queue,
              chain: opts.chain,
              families: opts.ipv6 ? [4, 6] : [4],
              queueBypass: !(opts.strict === true || opts.failClosed === true),
              systemQueue: systemUids === null ? null : { queueNum: systemQueue, uids: systemUids },
              rejectMark: opts.denyWith === 'reject' ? REJECT_MARK : null,
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
                  trust: { resolvConf: opts.resolvConf },
                }
              : null,
            callerBpf: opts.callerBpf,
            kernelVerdicts: opts.kernelVerdicts,
            bpfFs: opts.bpfFs,
            weakIdentity: opts.weakIdentity === true,
            inbound: opts.inbound ? { chain: opts.inboundChain, nft: 'nft', recheckMs: opts.inboundRecheck * 1000 } : null,
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
      },
    );
}

/** "first-last" (or one uid) as iptables' --uid-owner takes it; null for "none"; undefined when invalid. */
function parseUidRange(text: string): string | null | undefined {
  if (text === 'none') return null;
  const m = /^(\d{1,10})(?:-(\d{1,10}))?$/.exec(text);
  if (m === null) return undefined;
  const first = Number(m[1]);
  const last = m[2] === undefined ? first : Number(m[2]);
  if (first > last || last > 0xfffffffe) return undefined;
  return first === last ? String(first) : `${first}-${last}`;
}
