// Bastion's own minimal inbound policy, when no other inbound firewall drops: a chain per
// family, jumped to from the end of INPUT (so others' INPUT rules, our DNS snooping among them,
// come first), that accepts loopback, replies (established/related), ping, DHCP client replies
// and, for IPv6, neighbour discovery and router advertisements, and drops the rest. Each change
// is one iptables-restore transaction per family; both families or neither.
import { xtables, xtablesRestore } from '../xtables.js';

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

const CHAIN_NAME = /^[A-Za-z0-9_-]{1,28}$/;

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
  constructor(private readonly options: InboundRulesOptions) {
    if (!CHAIN_NAME.test(options.chain)) throw new Error(`invalid chain name "${options.chain}"`);
  }

  get chain(): string {
    return this.options.chain;
  }

  /** Installs (or replaces) the chain and one jump in every family; on a failure none stays. */
  async install(): Promise<void> {
    const done: (4 | 6)[] = [];
    try {
      for (const family of this.options.families) {
        const jumps = await this.jumps(family);
        await xtablesRestore(this.restoreBin(family), this.installScript(family, jumps.length));
        done.push(family);
      }
    } catch (err) {
      for (const family of done) await this.removeFamily(family).catch(() => undefined);
      throw err;
    }
  }

  async remove(): Promise<void> {
    for (const family of this.options.families) await this.removeFamily(family);
  }

  /** Whether the chain exists in every family (false: missing somewhere, e.g. flushed by someone). */
  async allInstalled(): Promise<boolean> {
    for (const family of this.options.families) if (!(await this.installed(family))) return false;
    return true;
  }

  async anyInstalled(): Promise<boolean> {
    for (const family of this.options.families) if (await this.installed(family)) return true;
    return false;
  }

  /** Whether the chain exists in `family` (tests, and the re-check). */
  async installed(family: 4 | 6): Promise<boolean> {
    try {
      await xtables(this.bin(family), 'filter', ['-S', this.options.chain]);
      return true;
    } catch {
      return false;
    }
  }

  private installScript(family: 4 | 6, existingJumps: number): string {
    const { chain } = this.options;
    const comment = `-m comment --comment ${INBOUND_COMMENT}`;
    const lines = ['*filter', `:${chain} - [0:0]`, ...inboundRuleSpecs(family).map((spec) => `-A ${chain} ${spec}`.replace(' -j ', ` ${comment} -j `))];
    // Keep one jump where it is; a crashed run may have left several.
    for (let extra = 1; extra < existingJumps; extra++) lines.push(`-D INPUT ${comment} -j ${chain}`);
    if (existingJumps === 0) lines.push(`-A INPUT ${comment} -j ${chain}`);
    lines.push('COMMIT', '');
    return lines.join('\n');
  }

  private async removeFamily(family: 4 | 6): Promise<void> {
    const jumps = await this.jumps(family);
    const exists = await this.installed(family);
    if (jumps.length === 0 && !exists) return;
    const { chain } = this.options;
    const lines = ['*filter', ...jumps.map((rule) => `-D INPUT ${rule}`), ...(exists ? [`-F ${chain}`, `-X ${chain}`] : []), 'COMMIT', ''];
    await xtablesRestore(this.restoreBin(family), lines.join('\n'));
  }

  /** Our jumps in INPUT, each as listed after `-A INPUT`. */
  private async jumps(family: 4 | 6): Promise<string[]> {
    const { stdout } = await xtables(this.bin(family), 'filter', ['-S', 'INPUT']);
    return stdout
      .split('\n')
      .filter((line) => line.startsWith('-A INPUT ') && line.split(' ').some((w, i, a) => a[i - 1] === '-j' && w === this.options.chain))
      .map((line) => line.slice('-A INPUT '.length));
  }

  private bin(family: 4 | 6): string {
    return family === 4 ? this.options.iptables : this.options.ip6tables;
  }

  private restoreBin(family: 4 | 6): string {
    return `${this.bin(family)}-restore`;
  }
}
