// The nameservers every program may ask (config allow_dns, service/whitelist.ts): those
// /etc/resolv.conf names, port 53. glibc resolves inside each program, so without this every
// program's own query waits for a rule or a prompt (getent 20 s, git 135 s in enforcement).
//
// Why this cannot carry a user's data to a host of his choosing: the addresses come from the
// service's own reading of the system's resolv.conf (a user's mount namespace changes what his
// programs read, not what the service reads), and only a file owned by root (or by the account
// systemd-resolved writes its stub file as) that no one else may write, in a directory of the
// same kind, is believed (common/resolvConf.ts); a user cannot edit it. The queries
// themselves still reach whatever the nameserver forwards them to (DNS tunnelling through the
// resolver): docs/SECURITY.md says so.
//
// With systemd-resolved's stub, resolv.conf names 127.0.0.53: programs may ask the stub, and the
// stub's own upstream queries pass as a system service's (whitelist.ts, systemd-resolved by path
// and user). The upstreams (/run/systemd/resolve/resolv.conf) are not added for every program:
// a program that sends there bypasses the system's resolver, which is no DNS it needs.
//
// resolv.conf is re-read when it changes (checked at most once a second, on a query: its
// inode, size and mtime, following the link systemd-resolved or resolvconf put there).
import { ResolvConfFile, resolvConfOwners } from '../common/resolvConf.js';

export interface NameserversOptions {
  path: string;
  recheckMs: number;
  now: () => number;
  /** The owners whose file (and directory) is believed (resolvConfOwners). */
  trustedOwners: () => readonly number[];
  /** Told once per reading that changed the addresses (or why none are believed). */
  onChange?: (addresses: readonly string[], problem: string | null) => void;
}

export const DEFAULT_NAMESERVERS: NameserversOptions = {
  path: '/etc/resolv.conf',
  recheckMs: 1000,
  now: () => performance.now(),
  trustedOwners: () => resolvConfOwners(),
};

/** glibc asks the local host when resolv.conf names no nameserver (resolv/res_init.c). */
const GLIBC_DEFAULT = ['127.0.0.1'];

export class Nameservers {
  private readonly options: NameserversOptions;
  private addresses = new Set<string>();
  private checkedAt = -Infinity;
  private readonly file: ResolvConfFile;

  constructor(options: Partial<NameserversOptions> = {}) {
    this.options = { ...DEFAULT_NAMESERVERS, ...options };
    this.file = new ResolvConfFile(this.options.path, this.options.trustedOwners);
  }

  /** Whether destIp (formatAddress text) is a nameserver programs may ask now. */
  has(destIp: string): boolean {
    this.refresh();
    return this.addresses.has(destIp);
  }

  /** The addresses in force now (for status and tests). */
  get list(): string[] {
    this.refresh();
    return [...this.addresses];
  }

  private refresh(): void {
    const now = this.options.now();
    if (now - this.checkedAt < this.options.recheckMs) return;
    this.checkedAt = now;
    const { reading, changed } = this.file.look();
    if (!changed) return;
    if (reading.state === 'missing') this.update(GLIBC_DEFAULT, null);
    else if (reading.state === 'untrusted') this.update([], reading.problem);
    else this.update(reading.nameservers.length > 0 ? reading.nameservers : GLIBC_DEFAULT, null);
  }

  private update(addresses: readonly string[], problem: string | null): void {
    const next = new Set(addresses);
    const same = next.size === this.addresses.size && [...next].every((a) => this.addresses.has(a));
    this.addresses = next;
    if (!same || problem !== null) this.options.onChange?.([...next], problem);
  }
}
