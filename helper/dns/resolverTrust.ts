// Which DNS answers may name addresses for rules: those of the system's resolver. Any program
// may ask any resolver it can reach, and a resolver someone runs for himself can give any name
// to any address; so only an answer from a nameserver /etc/resolv.conf names (port 53, the
// only port glibc asks) or from the local resolver's loopback addresses (127.0.0.53, as
// systemd-resolved listens, and 127.0.0.1) is trusted. Any other answer's names are kept apart,
// shown as unverified and never matched (hostNames.ts, docs/host-names.md).
//
// Why a source address can be believed: the snoop chain reads only conntrack replies to flows
// this machine opened (dnsSnoop.ts), so an off-path sender must hit a query's exact ports in
// flight; a local user cannot send from another host's address without CAP_NET_RAW, nor bind
// port 53 on this machine's own addresses while it is a privileged port. Where
// net.ipv4.ip_unprivileged_port_start is 53 or lower any user may bind port 53 on a loopback
// address the resolver left free, so loopback answers are then not trusted (and a warning says so).
//
// resolv.conf is re-read when it changes (checked at most once a second, when an answer
// arrives: by its inode, size and mtime, following the symlink systemd-resolved or
// resolvconf put there), and believed only when root or systemd-resolved's account owns it and
// its directory and no one else may write them (common/resolvConf.ts); otherwise only the
// local resolver's addresses are trusted, with a warning.
import { readFileSync } from 'node:fs';
import { formatAddress } from '../../common/address.js';
import { ResolvConfFile, resolvConfOwners } from '../../common/resolvConf.js';

export interface ResolverTrustOptions {
  resolvConf: string;
  /** Where the kernel says from which port on users may bind (per network namespace). */
  unprivilegedPortStart: string;
  recheckMs: number;
  now: () => number;
  /** The owners whose resolv.conf (and its directory) is believed (resolvConfOwners). */
  trustedOwners: () => readonly number[];
  /** Told once per reading that changed what is trusted. */
  onChange?: (trusted: readonly string[], warning: string | null) => void;
}

export const DEFAULT_RESOLVER_TRUST: ResolverTrustOptions = {
  resolvConf: '/etc/resolv.conf',
  unprivilegedPortStart: '/proc/sys/net/ipv4/ip_unprivileged_port_start',
  recheckMs: 1000,
  now: () => performance.now(),
  trustedOwners: () => resolvConfOwners(),
};

/** The local resolver's stub addresses, trusted whatever resolv.conf says (port 53 only). */
export const LOCAL_RESOLVERS: readonly string[] = ['127.0.0.53', '127.0.0.1'];
const DNS_PORT = 53;

export class ResolverTrust {
  private readonly options: ResolverTrustOptions;
  private trusted = new Set<string>();
  private checkedAt = -Infinity;
  private readonly file: ResolvConfFile;
  /** The last ip_unprivileged_port_start read (undefined: none yet). */
  private portStart: number | null | undefined = undefined;
  /** Times what is trusted was worked out again (resolv.conf or the port start changed). */
  reads = 0;

  constructor(options: Partial<ResolverTrustOptions> = {}) {
    this.options = { ...DEFAULT_RESOLVER_TRUST, ...options };
    this.file = new ResolvConfFile(this.options.resolvConf, this.options.trustedOwners);
  }

  /** Whether an answer from this address and port comes from the system's resolver. */
  isTrusted(address: Uint8Array, port: number): boolean {
    if (port !== DNS_PORT) return false;
    this.refresh();
    return this.trusted.size > 0 && this.trusted.has(formatAddress(address));
  }

  /** The addresses trusted now (for logs and tests). */
  get addresses(): string[] {
    this.refresh();
    return [...this.trusted];
  }

  private refresh(): void {
    const now = this.options.now();
    if (now - this.checkedAt < this.options.recheckMs) return;
    this.checkedAt = now;
    const portStart = readPortStart(this.options.unprivilegedPortStart);
    const { reading, changed } = this.file.look();
    if (!changed && portStart === this.portStart) return;
    this.portStart = portStart;
    this.reads++;
    const loopbackBindable = portStart !== null && portStart <= DNS_PORT;
    // No resolv.conf: glibc then asks the local resolver, which LOCAL_RESOLVERS covers.
    const all = [...LOCAL_RESOLVERS, ...(reading.state === 'read' ? reading.nameservers : [])];
    const trusted = new Set(all.filter((a) => !(loopbackBindable && isLoopback(a))));
    const warnings = [
      ...(loopbackBindable
        ? [`ip_unprivileged_port_start is ${portStart}: any user may bind port 53, so answers from loopback nameservers are not trusted`]
        : []),
      ...(reading.state === 'untrusted' ? [reading.problem] : []),
    ];
    this.trusted = trusted;
    this.options.onChange?.([...trusted], warnings.length > 0 ? warnings.join('; ') : null);
  }
}

function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1';
}

function readPortStart(path: string): number | null {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(n) ? n : null;
  } catch {
    return null;
  }
}
