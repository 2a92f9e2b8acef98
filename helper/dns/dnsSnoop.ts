// Learns host names from the DNS answers this machine receives, without ever sending a query:
// a chain of our own on INPUT queues UDP and TCP packets from port 53 that conntrack knows as
// replies to a flow this machine opened (so only answers to our own queries), to a queue of
// their own. The chain is in the mangle table, jumped to from the end of its INPUT: a queue's
// "accept" ends only the table it was queued from, so the filter table's INPUT rules (an
// inbound firewall such as ufw) still judge every answer afterwards, as they would without us. Each packet is accepted at once and then read; nothing waits on the parse (the
// program's next connect() is queued behind this batch in the same thread, so the name is
// known by then). NFQUEUE rather than NFLOG: it reuses the addon's reader, and --queue-bypass
// lets answers through while no helper runs. DNS over TLS (853) and over HTTPS cannot be read.
// Only answers from the system's resolver (resolverTrust.ts) name addresses for rules; the
// names any other resolver gives are kept apart, shown as unverified and never matched.
import type { Logger } from '../../common/log.js';
import { IPPROTO } from '../../common/types.js';
import { FirewallRules } from '../firewallRules.js';
import { newParsedPacket, parsePacket } from '../packet.js';
import { PacketQueue, type QueuedPacket } from '../queue.js';
import { addressesFromAnswer } from './dnsAnswers.js';
import { HostNames, type HostNamesOptions } from './hostNames.js';
import { ResolverTrust, type ResolverTrustOptions } from './resolverTrust.js';

export interface DnsSnoopOptions {
  queueNum: number;
  chain: string;
  families: ReadonlyArray<4 | 6>;
  manageRules: boolean;
  iptables: string;
  ip6tables: string;
  names?: Partial<HostNamesOptions>;
  /** Which resolvers' answers are trusted (default: /etc/resolv.conf's, and the local stub's). */
  trust?: Partial<ResolverTrustOptions>;
}

export const DEFAULT_DNS_SNOOP = { queueNum: 2, chain: 'BASTION-DNS' } as const;

/** Answers over UDP with EDNS may reach 4096 bytes; a longer copy is read as far as it goes. */
const COPY_RANGE = 4096;
const TCP_LENGTH_PREFIX = 2;

// Replies (conntrack's reply direction, established) from port 53: answers to our queries.
const ANSWER_MATCHES = (['udp', 'tcp'] as const).map((p) => ['-p', p, '--sport', '53', '-m', 'conntrack', '--ctstate', 'ESTABLISHED', '--ctdir', 'REPLY']);

export interface DnsSnoopCounters {
  packets: number;
  /** Answers that named at least one address. */
  answers: number;
  /** Of answers: from a resolver that is not the system's (their names are unverified). */
  unverifiedAnswers: number;
  names: number;
  unverifiedNames: number;
  evicted: number;
}

export class DnsSnoop {
  /** Names from the system's resolver: shown, and matched by @host rules. */
  readonly names: HostNames;
  /** Names from any other resolver: shown as unverified, never matched. */
  readonly unverified: HostNames;
  readonly trust: ResolverTrust;
  private readonly rules: FirewallRules;
  private queue: PacketQueue | null = null;
  private readonly parsed = newParsedPacket();
  private packets = 0;
  private answers = 0;
  private unverifiedAnswers = 0;

  constructor(
    private readonly options: DnsSnoopOptions,
    private readonly log: Logger,
  ) {
    this.names = new HostNames(options.names);
    this.unverified = new HostNames(options.names);
    this.trust = new ResolverTrust({
      ...options.trust,
      onChange: (trusted, warning) => {
        this.log.info({ resolvers: trusted }, 'DNS answers trusted for host names from these resolvers');
        if (warning !== null) this.log.warn(warning);
        options.trust?.onChange?.(trusted, warning);
      },
    });
    this.rules = new FirewallRules({
      queueNum: options.queueNum,
      chain: options.chain,
      queueBypass: true, // never hold DNS answers hostage to the helper
      families: options.families,
      iptables: options.iptables,
      ip6tables: options.ip6tables,
      hook: 'INPUT',
      table: 'mangle',
      appendJump: true,
      matches: ANSWER_MATCHES,
      comment: 'bastion: DNS answers, read for host names',
    });
  }

  async start(): Promise<void> {
    void this.trust.addresses; // reads resolv.conf now, so the trusted resolvers are logged at start
    if (this.options.manageRules) await this.rules.install();
    this.queue = PacketQueue.open(
      { queueNum: this.options.queueNum, copyRange: COPY_RANGE, maxLen: 1024, rcvbufBytes: 1 << 20, failOpen: true, batchMax: 32, exceptionVerdict: 1 },
      (packets, count) => this.onBatch(packets, count),
      (err) => this.log.error({ err }, 'DNS queue error'),
    );
  }

  async stop(): Promise<void> {
    this.queue?.close();
    this.queue = null;
    if (this.options.manageRules) await this.rules.remove();
  }

  get counters(): DnsSnoopCounters {
    return {
      packets: this.packets,
      answers: this.answers,
      unverifiedAnswers: this.unverifiedAnswers,
      names: this.names.size,
      unverifiedNames: this.unverified.size,
      evicted: this.names.evicted + this.unverified.evicted,
    };
  }

  private onBatch(packets: readonly QueuedPacket[], count: number): void {
    for (let i = 0; i < count; i++) {
      const packet = packets[i]!;
      this.packets++;
      this.queue?.verdict(packet.packetId, true);
      try {
        this.read(packet);
      } catch (err) {
        this.log.error({ err }, 'reading a DNS answer failed');
      }
    }
  }

  /** Learns from one packet whose whole DNS message was copied; anything else is skipped. */
  private read(packet: QueuedPacket): void {
    this.learnFrom(packet.payload, packet.origLen);
  }

  /**
   * Learns from one answer as an IP packet (`origLen`: its length before the copy range cut
   * it): the system resolver's names into `names`, any other's into `unverified`. Returns
   * whether it named anything.
   */
  learnFrom(payload: Uint8Array, origLen: number): boolean {
    const p = this.parsed;
    if (parsePacket(payload, p) !== null || p.isFragment || p.l4Offset < 0) return false;
    if (payload.length < origLen) return false; // cut at the copy range: not all of it
    const message = dnsMessage(payload, p.protocol, p.l4Offset, p.l4End);
    if (message === null) return false;
    const learned = addressesFromAnswer(message);
    if (learned.length === 0) return false;
    this.answers++;
    const trusted = this.trust.isTrusted(p.srcAddr, p.srcPort);
    if (!trusted) this.unverifiedAnswers++;
    const names = trusted ? this.names : this.unverified;
    for (const a of learned) names.learn(a.address, a.name, a.ttlSeconds);
    if (this.log.isLevelEnabled('debug')) this.log.debug({ name: learned[0]!.name, addresses: learned.length, trusted }, 'host name learned');
    return true;
  }
}

/**
 * The DNS message in a UDP datagram, or in a TCP segment that carries one whole message
 * (its 2-byte length prefix and all it announces); null otherwise.
 */
export function dnsMessage(data: Uint8Array, protocol: number, l4Offset: number, l4End: number): Uint8Array | null {
  if (protocol === IPPROTO.UDP) {
    const start = l4Offset + 8;
    return start < l4End ? data.subarray(start, l4End) : null;
  }
  if (protocol !== IPPROTO.TCP) return null;
  const headerBytes = (data[l4Offset + 12]! >> 4) * 4;
  const start = l4Offset + headerBytes;
  if (headerBytes < 20 || start + TCP_LENGTH_PREFIX > l4End) return null;
  const length = (data[start]! << 8) | data[start + 1]!;
  if (start + TCP_LENGTH_PREFIX + length !== l4End) return null;
  return data.subarray(start + TCP_LENGTH_PREFIX, l4End);
}
