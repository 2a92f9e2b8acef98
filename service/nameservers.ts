// The nameservers every program may ask (config allow_dns, service/whitelist.ts): those
// /etc/resolv.conf names, port 53. glibc resolves inside each program, so without this every
// program's own query waits for a rule or a prompt (getent 20 s, git 135 s in enforcement).
//
// Why this cannot carry a user's data to a host of his choosing: the addresses come from the
// service's own reading of the system's resolv.conf (a user's mount namespace changes what his
// programs read, not what the service reads), and only a file owned by root that no one else
// may write, in a directory of the same kind, is believed; a user cannot edit it. The queries
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
import { readFileSync, realpathSync, statSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { nameserversOf } from '../common/resolvConf.js';

export interface NameserversOptions {
  path: string;
  recheckMs: number;
  now: () => number;
  /** The only owner whose file (and directory) is believed; root. Tests running as root keep it. */
  trustedUid: number;
  /** Told once per reading that changed the addresses (or why none are believed). */
  onChange?: (addresses: readonly string[], problem: string | null) => void;
}

export const DEFAULT_NAMESERVERS: NameserversOptions = {
  path: '/etc/resolv.conf',
  recheckMs: 1000,
  now: () => performance.now(),
  trustedUid: 0,
};

/** glibc asks the local host when resolv.conf names no nameserver (resolv/res_init.c). */
const GLIBC_DEFAULT = ['127.0.0.1'];
/** A resolv.conf is a few lines; a bigger file is not read. */
const MAX_BYTES = 64 * 1024;

export class Nameservers {
  private readonly options: NameserversOptions;
  private addresses = new Set<string>();
  private checkedAt = -Infinity;
  private signature = '';

  constructor(options: Partial<NameserversOptions> = {}) {
    this.options = { ...DEFAULT_NAMESERVERS, ...options };
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
    let st: Stats;
    try {
      st = statSync(this.options.path);
    } catch {
      this.update('missing', GLIBC_DEFAULT, null);
      return;
    }
    const signature = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.uid}:${st.mode}`;
    if (signature === this.signature) return;
    const problem = this.untrusted(st);
    if (problem !== null) {
      this.update(signature, [], problem);
      return;
    }
    let text: string;
    try {
      text = readFileSync(this.options.path, 'utf8');
    } catch (err) {
      this.update(signature, [], `${this.options.path} cannot be read: ${(err as Error).message}`);
      return;
    }
    const listed = nameserversOf(text);
    this.update(signature, listed.length > 0 ? listed : GLIBC_DEFAULT, null);
  }

  /** Why the file (after its links) may not be believed, or null. */
  private untrusted(st: Stats): string | null {
    const path = this.options.path;
    if (!st.isFile() || st.size > MAX_BYTES) return `${path} is not a regular file of at most ${MAX_BYTES} bytes`;
    if (!this.safe(st)) return `${path} is owned by uid ${st.uid} or writable by others: its nameservers are not allowed`;
    try {
      const dir = statSync(dirname(realpathSync(path)));
      if (!this.safe(dir)) return `the directory of ${path} is owned by uid ${dir.uid} or writable by others: its nameservers are not allowed`;
    } catch (err) {
      return `${path}: ${(err as Error).message}`;
    }
    return null;
  }

  private safe(st: Stats): boolean {
    return st.uid === this.options.trustedUid && (st.mode & 0o022) === 0;
  }

  private update(signature: string, addresses: readonly string[], problem: string | null): void {
    this.signature = signature;
    const next = new Set(addresses);
    const same = next.size === this.addresses.size && [...next].every((a) => this.addresses.has(a));
    this.addresses = next;
    if (!same || problem !== null) this.options.onChange?.([...next], problem);
  }
}
