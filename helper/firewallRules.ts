// The helper's iptables/ip6tables rules: one chain of our own per family, jumped to from
// OUTPUT, queuing only new connections. We touch nothing but our chain and our jump. The same
// class installs the DNS snooping chain (helper/dns/dnsSnoop.ts) on INPUT with its own matches.
import { OwnedChain } from './ownedChain.js';

export interface FirewallRulesOptions {
  queueNum: number;
  /** Chain name; tests use their own so parallel runs never meet. */
  chain: string;
  /** With --queue-bypass the kernel accepts packets while no program reads the queue. */
  queueBypass: boolean;
  families: ReadonlyArray<4 | 6>;
  /** Binary names, overridable for systems with only the -legacy or -nft variants. */
  iptables: string;
  ip6tables: string;
  /** The built-in chain that jumps to ours; default OUTPUT. */
  hook?: 'OUTPUT' | 'INPUT';
  /** Default filter. */
  table?: 'filter' | 'mangle';
  /** Jump from the end of the hook instead of its start (others' rules there come first). */
  appendJump?: boolean;
  /** One NFQUEUE rule per entry, with these matches; default: new connections only. */
  matches?: readonly (readonly string[])[];
  comment?: string;
  /**
   * Connections of these socket owners (system accounts, root among them) go to a queue of
   * their own, so that a user's flood filling the main queue never delays them. OUTPUT only.
   */
  systemQueue?: { queueNum: number; uids: string } | null;
  /**
   * Packets the helper denies come back through the hook with this whole mark (NF_REPEAT), and
   * a rule before the queue rejects them: a TCP reset or an ICMP port unreachable, so the
   * program fails at once. The packet is dying, so its mark is overwritten whole; matching the
   * whole value (not a bit) means no other tool's mark selects the rule. null: denied packets
   * are dropped.
   */
  rejectMark?: number | null;
  /**
   * New connections whose packets carry this mark bit were allowed in the kernel by a path rule
   * (native/bpf/caller.bpf.c sets it on the socket): accepted before the queue rules. Matched
   * as a bit (mark/mask): the kernel sets it only on sockets without a mark of their own, and
   * only a process with CAP_NET_ADMIN can set it itself. null: no such rule.
   */
  kernelAcceptMark?: number | null;
  /**
   * New UDP datagrams that this pinned socket filter matches were allowed in the kernel by a
   * path rule (native/bpf/caller.bpf.c bastion_udp_allow, per datagram): accepted before the
   * queue rules. null: UDP allows go to the queue.
   */
  kernelUdpAllowFilter?: string | null;
  /**
   * A pinned socket filter that notes each bare TCP SYN on its way to the queue, for the fast
   * path (native/bpf/caller.bpf.c bastion_flow_note): run by a rule without a target just before
   * the queue rules, so only the SYNs that get that far pay for it. null: no such rule.
   */
  flowNoteFilter?: string | null;
}

/** The mark a denied packet carries back to our chain (an arbitrary, unlikely value). */
export const REJECT_MARK = 0xb457_0de1;

const NEW_CONNECTIONS = [['-m', 'conntrack', '--ctstate', 'NEW']] as const;

export const DEFAULT_FIREWALL_RULES: FirewallRulesOptions = {
  queueNum: 1,
  chain: 'BASTION-OUT',
  queueBypass: true,
  families: [4, 6],
  iptables: 'iptables',
  ip6tables: 'ip6tables',
};

/** A pinned filter's path: one word in iptables-restore's input. */
const PINNED_PATH = /^\/[A-Za-z0-9_./-]{1,200}$/;

export class FirewallRules {
  private readonly chains: ReadonlyMap<4 | 6, OwnedChain>;

  constructor(private readonly options: FirewallRulesOptions) {
    if (!Number.isInteger(options.queueNum) || options.queueNum < 0 || options.queueNum > 65535) {
      throw new Error(`invalid queue number ${options.queueNum}`);
    }
    for (const filter of [options.kernelUdpAllowFilter, options.flowNoteFilter]) {
      if (filter !== undefined && filter !== null && !PINNED_PATH.test(filter)) throw new Error(`invalid pinned filter path ${JSON.stringify(filter)}`);
    }
    this.chains = OwnedChain.perFamily(options.families, options, { table: options.table ?? 'filter', chain: options.chain, hook: options.hook ?? 'OUTPUT' });
  }

  /**
   * Installs our rules, replacing any left by an earlier run, in one iptables-restore
   * transaction per family: afterwards exactly one set exists, and at no moment was there
   * none (a fail-closed chain left in place at stop keeps holding traffic until this returns).
   */
  async install(): Promise<void> {
    for (const [family, chain] of this.chains) {
      await chain.install(this.chainRules(family), `-j ${this.options.chain}`, this.options.appendJump ? 'end' : 'start');
    }
  }

  /** Our chain's rules for one family, as written after `-A CHAIN`. */
  private chainRules(family: 4 | 6): string[] {
    const { queueNum, queueBypass } = this.options;
    const rules: string[] = [];
    // The system accounts' rule first: their connections never reach the main queue.
    const system = this.options.systemQueue;
    const targets = [
      ...(system
        ? [
            {
              owner: ['-m', 'owner', '--uid-owner', system.uids],
              comment: "bastion: system accounts' new connections to the helper",
              queueNum: system.queueNum,
            },
          ]
        : []),
      { owner: [], comment: this.options.comment ?? 'bastion: new connections to the helper', queueNum },
    ];
    const reject = this.options.rejectMark;
    if (reject !== undefined && reject !== null) {
      const mark = `0x${reject.toString(16)}`;
      const unreachable = family === 4 ? 'icmp-port-unreachable' : 'icmp6-port-unreachable';
      rules.push(`-p tcp -m mark --mark ${mark} -m comment --comment "bastion: denied, reset" -j REJECT --reject-with tcp-reset`);
      rules.push(`-m mark --mark ${mark} -m comment --comment "bastion: denied, unreachable" -j REJECT --reject-with ${unreachable}`);
    }
    // After the reject rules: REJECT_MARK, set whole on a denied packet, has this bit among its own.
    const accept = this.options.kernelAcceptMark;
    if (accept !== undefined && accept !== null) {
      const bit = `0x${accept.toString(16)}`;
      rules.push(`-m mark --mark ${bit}/${bit} -m conntrack --ctstate NEW -m comment --comment "bastion: allowed in the kernel" -j ACCEPT`);
    }
    const udpAllow = this.options.kernelUdpAllowFilter;
    if (udpAllow !== undefined && udpAllow !== null) {
      rules.push(`-p udp -m conntrack --ctstate NEW -m bpf --object-pinned ${udpAllow} -m comment --comment "bastion: UDP allowed in the kernel" -j ACCEPT`);
    }
    const flowNote = this.options.flowNoteFilter;
    if (flowNote !== undefined && flowNote !== null) {
      // No target: the filter never matches, it only notes (the same bare SYNs the fast path reads).
      rules.push(
        `-p tcp --tcp-flags SYN,ACK SYN -m bpf --object-pinned ${flowNote} -m comment --comment "bastion: a queued SYN's caller, noted for the fast path"`,
      );
    }
    for (const matches of this.options.matches ?? NEW_CONNECTIONS) {
      for (const target of targets) {
        rules.push(
          [
            ...matches,
            ...target.owner,
            '-m',
            'comment',
            '--comment',
            JSON.stringify(target.comment),
            '-j',
            'NFQUEUE',
            '--queue-num',
            String(target.queueNum),
            ...(queueBypass ? ['--queue-bypass'] : []),
          ].join(' '),
        );
      }
    }
    return rules;
  }

  /** Removes exactly our jump(s) and chain; leaves everyone else's rules alone. */
  async remove(): Promise<void> {
    for (const chain of this.chains.values()) await chain.remove();
  }
}
