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

  /** The same chain in each family: iptables' for 4, ip6tables' for 6. */
  static perFamily(
    families: ReadonlyArray<4 | 6>,
    bins: { iptables: string; ip6tables: string },
    where: Omit<OwnedChainOptions, 'bin'>,
  ): ReadonlyMap<4 | 6, OwnedChain> {
    return new Map(families.map((family) => [family, new OwnedChain({ ...where, bin: family === 4 ? bins.iptables : bins.ip6tables })]));
  }

  /**
   * Replaces the chain's rules (each as written after `-A CHAIN`) and its jumps (a crashed run
   * may have left several, a person may have added one) with exactly one: `jump`, as written
   * after `-A HOOK`, at the hook's start or end. One transaction: at no moment is there none.
   */
  async install(rules: readonly string[], jump: string, at: 'start' | 'end'): Promise<void> {
    const { table, chain, hook } = this.options;
    const lines = [`*${table}`, `:${chain} - [0:0]`, ...rules.map((rule) => `-A ${chain} ${rule}`)];
    lines.push(...this.deleteJumps(await this.jumps()));
    lines.push(at === 'start' ? `-I ${hook} 1 ${jump}` : `-A ${hook} ${jump}`, 'COMMIT', '');
    await this.restore(lines);
  }

  /** Removes every jump to our chain and the chain; nothing of ours there: nothing done. */
  async remove(): Promise<void> {
    const { table, chain } = this.options;
    const jumps = await this.jumps();
    const exists = await this.exists();
    if (jumps.length === 0 && !exists) return;
    await this.restore([`*${table}`, ...this.deleteJumps(jumps), ...(exists ? [`-F ${chain}`, `-X ${chain}`] : []), 'COMMIT', '']);
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
    return (await this.jumps()).length;
  }

  /** The hook's rules that jump to our chain, each as listed after `-A HOOK`. */
  private async jumps(): Promise<string[]> {
    const { bin, table, chain, hook } = this.options;
    const { stdout } = await xtables(bin, table, ['-S', hook]);
    return stdout
      .split('\n')
      .filter((line) => line.startsWith(`-A ${hook} `) && line.split(' ').some((word, i, words) => words[i - 1] === '-j' && word === chain))
      .map((line) => line.slice(`-A ${hook} `.length));
  }

  /**
   * Each jump deleted by its rule as listed, never by its number: a rule another program adds
   * or removes meanwhile would shift the numbers onto its own rules. A jump gone meanwhile
   * fails the whole transaction instead.
   */
  private deleteJumps(jumps: readonly string[]): string[] {
    return jumps.map((spec) => `-D ${this.options.hook} ${spec}`);
  }

  private async restore(lines: string[]): Promise<void> {
    await xtablesRestore(`${this.options.bin}-restore`, lines.join('\n'));
  }
}
