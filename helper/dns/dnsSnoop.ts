// Learns host names from the DNS answers this machine receives, without ever sending a query:
// a chain of our own on INPUT queues UDP and TCP packets from port 53 that conntrack knows as
// replies to a flow this machine opened (so only answers to our own queries), to a queue of
// their own. The chain is in the mangle table, jumped to from the end of its INPUT: a queue's
// "accept" ends only the table it was queued from, so the filter table's INPUT rules (an
// inbound firewall such as ufw) still judge every answer afterwards, as they would without us. Each packet is accepted at once and then read; nothing waits on the parse (the
// program's next connect() is queued behind this batch in the same thread, so the name is
// known by then). NFQUEUE rather than NFLOG: it reuses the addon's reader, and --queue-bypass
// lets answers through while no helper runs. DNS over TLS (853) and over HTTPS cannot be read.
import type { Logger } from '../../common/log.js';
import { IPPROTO } from '../../common/types.js';
import { FirewallRules } from '../firewallRules.js';
import { newParsedPacket, parsePacket } from '../packet.js';
import { PacketQueue, type QueuedPacket } from '../queue.js';
import { addressesFromAnswer } from './dnsAnswers.js';
import { HostNames, type HostNamesOptions } from './hostNames.js';

export interface DnsSnoopOptions {
  queueNum: number;
  chain: string;
  families: ReadonlyArray<4 | 6>;
  manageRules: boolean;
  iptables: string;
  ip6tables: string;
  names?: Partial<HostNamesOptions>;
}

export const DEFAULT_DNS_SNOOP = { queueNum: 2, chain: 'BASTION-DNS' } as const;

/** Answers over UDP with EDNS may reach 4096 bytes; a longer copy is read as far as it goes. */
const COPY_RANGE = 4096;
const TCP_LENGTH_PREFIX = 2;

// Replies (conntrack's reply direction, established) from port 53: answers to our queries.
const ANSWER_MATCHES = (['udp', 'tcp'] as const).map((p) => [
  '-p', p, '--sport', '53', '-m', 'conntrack', '--ctstate', 'ESTABLISHED', '--ctdir', 'REPLY',
]);

export interface DnsSnoopCounters {
  packets: number;
  /** Answers that named at least one address. */
  answers: number;
  names: number;
  evicted: number;
}

export class DnsSnoop {
  readonly names: HostNames;
  private readonly rules: FirewallRules;
  private queue: PacketQueue | null = null;
  private readonly parsed = newParsedPacket();
  private packets = 0;
  private answers = 0;

  constructor(
    private readonly options: DnsSnoopOptions,
    private readonly log: Logger,
  ) {
    this.names = new HostNames(options.names);
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
    return { packets: this.packets, answers: this.answers, names: this.names.size, evicted: this.names.evicted };
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
    const p = this.parsed;
    if (parsePacket(packet.payload, p) !== null || p.isFragment || p.l4Offset < 0) return;
    if (packet.payload.length < packet.origLen) return; // cut at the copy range: not all of it
    const message = dnsMessage(packet.payload, p.protocol, p.l4Offset, p.l4End);
    if (message === null) return;
    const learned = addressesFromAnswer(message);
    if (learned.length === 0) return;
    this.answers++;
    for (const a of learned) this.names.learn(a.address, a.name, a.ttlSeconds);
    if (this.log.isLevelEnabled('debug')) this.log.debug({ name: learned[0]!.name, addresses: learned.length }, 'host name learned');
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
