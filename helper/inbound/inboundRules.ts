// Bastion's own minimal inbound policy, when no other inbound firewall drops: a chain per
// family, jumped to from the end of INPUT (so others' INPUT rules, our DNS snooping among them,
// come first), that accepts loopback, replies (established/related), ping, DHCP client replies
// and, for IPv6, neighbour discovery and router advertisements, and drops the rest. Each change
// is one iptables-restore transaction per family; both families or neither.
import { OwnedChain } from '../ownedChain.js';

export interface InboundRulesOptions {
  chain: string;
  families: ReadonlyArray<4 | 6>;
  iptables: string;
  ip6tables: string;
}

export const DEFAULT_INBOUND_CHAIN = 'BASTION-IN';
/**
 * On every rule of ours, as the old daemon tagged its rules: its GUI (run as root) counts
 * INPUT rules carrying it as Bastion's own protection, not as another firewall.
 */
export const INBOUND_COMMENT = 'BASTION_INBOUND';

/** The chain's rules for one family, in iptables-restore's words (after `-A CHAIN`). */
export function inboundRuleSpecs(family: 4 | 6): string[] {
  const common = ['-i lo -j ACCEPT', '-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'];
  if (family === 4) {
    return [
      ...common,
      '-p icmp --icmp-type echo-request -j ACCEPT',
      // A DHCP offer or ack may come before the client has an address (a broadcast conntrack cannot tie to the request).
      '-p udp --sport 67 --dport 68 -j ACCEPT',
      '-j DROP',
    ];
  }
  // RFC 4890 4.4.1: neighbour discovery and router advertisements only from the link itself (hop limit 255).
  const linkOnly = (type: string): string => `-p ipv6-icmp --icmpv6-type ${type} -m hl --hl-eq 255 -j ACCEPT`;
  return [
    ...common,
    '-p ipv6-icmp --icmpv6-type echo-request -j ACCEPT',
    linkOnly('router-advertisement'),
    linkOnly('neighbour-solicitation'),
    linkOnly('neighbour-advertisement'),
    '-s fe80::/10 -p udp --sport 547 --dport 546 -j ACCEPT',
    '-j DROP',
  ];
}

export class InboundRules {
  private readonly chains: ReadonlyMap<4 | 6, OwnedChain>;

  constructor(private readonly options: InboundRulesOptions) {
    this.chains = OwnedChain.perFamily(options.families, options, { table: 'filter', chain: options.chain, hook: 'INPUT' });
  }

  get chain(): string {
    return this.options.chain;
  }

  /** Installs (or replaces) the chain and one jump in every family; on a failure none stays. */
  async install(): Promise<void> {
    const comment = `-m comment --comment ${INBOUND_COMMENT}`;
    const done: OwnedChain[] = [];
    try {
      for (const [family, chain] of this.chains) {
        const rules = inboundRuleSpecs(family).map((spec) => spec.replace(' -j ', ` ${comment} -j `));
        await chain.install(rules, `${comment} -j ${this.options.chain}`, 'end');
        done.push(chain);
      }
    } catch (err) {
      for (const chain of done) await chain.remove().catch(() => undefined);
      throw err;
    }
  }

  async remove(): Promise<void> {
    for (const chain of this.chains.values()) await chain.remove();
  }

  /** Whether the chain exists in every family (false: missing somewhere, e.g. flushed by someone). */
  async allInstalled(): Promise<boolean> {
    for (const chain of this.chains.values()) if (!(await chain.exists())) return false;
    return true;
  }

  async anyInstalled(): Promise<boolean> {
    for (const chain of this.chains.values()) if (await chain.exists()) return true;
    return false;
  }
}
