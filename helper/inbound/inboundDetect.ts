// Whether an inbound firewall of someone else's is in force (UFW, firewalld, an nftables input
// chain or an iptables INPUT that drops): then inbound protection leaves it alone, as the old
// daemon did (bastion-setup-inbound). Read from the rules themselves, not from services or
// config files: a firewall counts when it drops, in this network namespace, now.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type OtherFirewallKind = 'ufw' | 'firewalld' | 'nftables' | 'iptables';

export interface OtherFirewall {
  kind: OtherFirewallKind;
  /** What was seen, for the log and `bastion inbound status`. */
  detail: string;
}

/**
 * `iptables -S` of the filter table: whether INPUT drops (its policy, or a DROP/REJECT rule in
 * INPUT or a chain reached from it), leaving out `ownChain` and the chains only it reaches.
 */
export function iptablesDrops(save: string, ownChain: string): OtherFirewall | null {
  const policies = new Map<string, string>();
  const rules = new Map<string, string[][]>();
  for (const line of save.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words[0] === '-P' && words[1] && words[2]) policies.set(words[1], words[2]);
    if (words[0] === '-N' && words[1]) rules.set(words[1], []);
    if (words[0] === '-A' && words[1]) {
      const list = rules.get(words[1]) ?? [];
      list.push(words);
      rules.set(words[1], list);
    }
  }
  const ufw = [...rules.keys()].some((c) => c.startsWith('ufw-'));
  const firewalld = rules.has('INPUT_direct') || [...rules.keys()].some((c) => c.startsWith('IN_'));
  const name = ufw ? 'ufw' : firewalld ? 'firewalld' : 'iptables';
  const policy = policies.get('INPUT');
  if (policy === 'DROP' || policy === 'REJECT') return { kind: name, detail: `iptables INPUT policy ${policy}` };
  const seen = new Set<string>([ownChain]);
  const pending = ['INPUT'];
  while (pending.length > 0) {
    const chain = pending.pop()!;
    if (seen.has(chain)) continue;
    seen.add(chain);
    for (const words of rules.get(chain) ?? []) {
      const i = words.findIndex((w) => w === '-j' || w === '-g');
      const target = i >= 0 ? words[i + 1] : undefined;
      if (target === 'DROP' || target === 'REJECT') return { kind: name, detail: `iptables ${chain}: ${words.slice(2).join(' ')}` };
      if (target !== undefined && rules.has(target)) pending.push(target);
    }
  }
  return null;
}

interface NftChain {
  family?: string;
  table?: string;
  name?: string;
  hook?: string;
  policy?: string;
}

interface NftRule {
  family?: string;
  table?: string;
  chain?: string;
  expr?: unknown[];
}

/**
 * `nft -j list ruleset`: whether an input base chain (ip, ip6 or inet) drops: its policy, or a
 * drop or reject verdict of its own. Chains it jumps to are not followed (iptables-nft's
 * chains, ours among them, are judged by iptablesDrops).
 */
export function nftDrops(json: string): OtherFirewall | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return null;
  }
  const items = (parsed as { nftables?: unknown[] } | null)?.nftables;
  if (!Array.isArray(items)) return null;
  const chains: NftChain[] = [];
  const rules: NftRule[] = [];
  const tables = new Set<string>();
  for (const item of items) {
    if (typeof item !== 'object' || item === null) continue;
    const o = item as { chain?: NftChain; rule?: NftRule; table?: { name?: string } };
    if (o.chain) chains.push(o.chain);
    if (o.rule) rules.push(o.rule);
    if (o.table?.name) tables.add(o.table.name);
  }
  const kind: OtherFirewallKind = tables.has('firewalld') ? 'firewalld' : 'nftables';
  for (const chain of chains) {
    if (chain.hook !== 'input' || !['ip', 'ip6', 'inet'].includes(chain.family ?? '')) continue;
    const where = `nft ${chain.family} ${chain.table} ${chain.name}`;
    if (chain.policy === 'drop') return { kind, detail: `${where}: policy drop` };
    const own = rules.filter((r) => r.family === chain.family && r.table === chain.table && r.chain === chain.name);
    if (own.some((r) => JSON.stringify(r.expr ?? []).match(/"(drop|reject)"/))) return { kind, detail: `${where}: a drop or reject rule` };
  }
  return null;
}

export interface DetectOptions {
  iptables: string;
  ip6tables: string;
  /** nft(8); a system without it has no nftables rules to find beyond iptables-nft's. */
  nft: string;
  ownChain: string;
  families: ReadonlyArray<4 | 6>;
}

/** The first inbound firewall found that drops, or null. A tool that fails to run finds nothing. */
export async function detectOtherFirewall(options: DetectOptions): Promise<OtherFirewall | null> {
  for (const family of options.families) {
    const bin = family === 4 ? options.iptables : options.ip6tables;
    const save = await output(bin, ['-w', '5', '-t', 'filter', '-S']);
    const found = save === null ? null : iptablesDrops(save, options.ownChain);
    if (found) return found;
  }
  const json = await output(options.nft, ['-j', 'list', 'ruleset']);
  return json === null ? null : nftDrops(json);
}

async function output(file: string, args: string[]): Promise<string | null> {
  try {
    return (await run(file, args, { timeout: 15000, maxBuffer: 16 << 20 })).stdout;
  } catch {
    return null;
  }
}
