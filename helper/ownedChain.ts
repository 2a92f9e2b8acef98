// A chain of ours and the jumps to it from a built-in chain (OUTPUT, INPUT), in one family and
// table: installed, found and removed the same way by the outbound rules (firewallRules.ts), the
// DNS snooping chain and the inbound policy (inbound/inboundRules.ts). Each change is one
// iptables-restore transaction; everyone else's rules are left alone.
import { xtables, xtablesRestore } from './xtables.js';

/** A chain name we accept: one word in iptables-restore's input, within xtables' 28 characters. */
const CHAIN_NAME = /^[A-Za-z0-9_-]{1,28}$/;

export interface OwnedChainOptions {
  /** iptables or ip6tables (the -restore variant is this with "-restore" appended). */
  bin: string;
  table: string;
  chain: string;
  /** The built-in chain that jumps to ours. */
  hook: string;
}

export class OwnedChain {
  constructor(private readonly options: OwnedChainOptions) {
    if (!CHAIN_NAME.test(options.chain)) throw new Error(`invalid chain name "${options.chain}"`);
  }

  /**
   * Replaces the chain's rules (each as written after `-A CHAIN`) and leaves exactly one jump: the
   * first one found where it is (a crashed run may have left several), else `jump` (as written
   * after `-A HOOK`) at the hook's start or end. At no moment is there no chain.
   */
  async install(rules: readonly string[], jump: string, at: 'start' | 'end'): Promise<void> {
    const { table, chain, hook } = this.options;
    const jumps = await this.jumpNumbers();
    const lines = [`*${table}`, `:${chain} - [0:0]`, ...rules.map((rule) => `-A ${chain} ${rule}`)];
    // Highest first: deleting a rule renumbers the ones after it.
    for (const n of jumps.slice(1).reverse()) lines.push(`-D ${hook} ${n}`);
    if (jumps.length === 0) lines.push(at === 'start' ? `-I ${hook} 1 ${jump}` : `-A ${hook} ${jump}`);
    lines.push('COMMIT', '');
    await this.restore(lines);
  }

  /** Removes every jump of ours and the chain; nothing of ours there: nothing done. */
  async remove(): Promise<void> {
    const { table, chain, hook } = this.options;
    const jumps = await this.jumpNumbers();
    const exists = await this.exists();
    if (jumps.length === 0 && !exists) return;
    const lines = [`*${table}`, ...jumps.reverse().map((n) => `-D ${hook} ${n}`), ...(exists ? [`-F ${chain}`, `-X ${chain}`] : []), 'COMMIT', ''];
    await this.restore(lines);
  }

  async exists(): Promise<boolean> {
    try {
      await xtables(this.options.bin, this.options.table, ['-S', this.options.chain]);
      return true;
    } catch {
      return false;
    }
  }

  /** How many jumps to our chain the hook holds (tests assert exactly one, or none). */
  async countJumps(): Promise<number> {
    return (await this.jumpNumbers()).length;
  }

  /** The hook's rule numbers (from 1) that jump to our chain, in order. */
  private async jumpNumbers(): Promise<number[]> {
    const { bin, table, chain, hook } = this.options;
    const { stdout } = await xtables(bin, table, ['-S', hook]);
    const rules = stdout.split('\n').filter((line) => line.startsWith(`-A ${hook} `));
    const numbers: number[] = [];
    rules.forEach((line, i) => {
      if (line.split(' ').some((word, j, words) => words[j - 1] === '-j' && word === chain)) numbers.push(i + 1);
    });
    return numbers;
  }

  private async restore(lines: string[]): Promise<void> {
    await xtablesRestore(`${this.options.bin}-restore`, lines.join('\n'));
  }
}
