// What /etc/resolv.conf names: the nameservers glibc asks (port 53). Read by the helper (whose
// DNS answers name addresses for rules: helper/dns/resolverTrust.ts) and by the service (DNS to
// them passes for every program: service/nameservers.ts).
import { closeSync, constants, fstatSync, openSync, readFileSync, readlinkSync, statSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { formatAddress, ipv4Bytes, ipv6Bytes } from './address.js';
import { userId } from './system.js';

/** The `nameserver` addresses of a resolv.conf text, as formatAddress writes them. */
export function nameserversOf(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const m = /^nameserver\s+(\S+)$/.exec(line);
    if (m === null) continue;
    const text = m[1]!.replace(/%.*$/, ''); // a link-local address's %scope
    const bytes = text.includes(':') ? ipv6Bytes(text) : ipv4Bytes(text);
    if (bytes !== null) out.push(formatAddress(bytes));
  }
  return [...new Set(out)];
}

/** What a look at resolv.conf found: its nameservers, no file, or why it is not believed. */
export type ResolvConfReading = { state: 'read'; nameservers: string[] } | { state: 'missing' } | { state: 'untrusted'; problem: string };

/**
 * The owners whose resolv.conf is believed: root, and the account systemd-resolved runs as
 * (its stub file and the directory under /run/systemd/resolve that /etc/resolv.conf links to
 * are its own).
 */
export function resolvConfOwners(passwdFile = '/etc/passwd'): number[] {
  const resolved = userId('systemd-resolve', passwdFile);
  return resolved === null ? [0] : [0, resolved];
}

/** A resolv.conf is a few lines; a bigger file is not read. */
const MAX_BYTES = 64 * 1024;

/**
 * resolv.conf as its readers may believe it: read again only when its inode, size, mtime, owner
 * or mode changed (through the link systemd-resolved or resolvconf put there), and believed
 * only when the file and its directory belong to a trusted owner and nobody else may write
 * them: whoever can write it chooses which resolver's answers name addresses for rules, and
 * which nameservers every program may reach.
 */
export class ResolvConfFile {
  private signature = '';
  private reading: ResolvConfReading = { state: 'missing' };

  /** trustedOwners: asked at each change (root, and the account systemd-resolved writes its files as). */
  constructor(
    readonly path: string,
    private readonly trustedOwners: () => readonly number[],
  ) {}

  /** The reading now, and whether it changed since the last look. */
  look(): { reading: ResolvConfReading; changed: boolean } {
    // Opened once (non-blocking: never stuck on a FIFO), then checked and read through that
    // descriptor: the file believed is the file read, whatever is renamed over the path meanwhile.
    let fd: number;
    try {
      fd = openSync(this.path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch {
      return this.settle('missing', { state: 'missing' });
    }
    try {
      const st = fstatSync(fd);
      const signature = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.uid}:${st.mode}`;
      if (signature === this.signature) return { reading: this.reading, changed: false };
      const problem = this.untrusted(fd, st);
      if (problem !== null) return this.settle(signature, { state: 'untrusted', problem });
      try {
        return this.settle(signature, { state: 'read', nameservers: nameserversOf(readFileSync(fd, 'utf8')) });
      } catch (err) {
        return this.settle(signature, { state: 'untrusted', problem: `${this.path} cannot be read: ${(err as Error).message}` });
      }
    } finally {
      closeSync(fd);
    }
  }

  private settle(signature: string, reading: ResolvConfReading): { reading: ResolvConfReading; changed: boolean } {
    const changed = signature !== this.signature;
    this.signature = signature;
    this.reading = reading;
    return { reading, changed };
  }

  /** Why the open file fd (the path after its links) may not be believed, or null. */
  private untrusted(fd: number, st: Stats): string | null {
    if (!st.isFile() || st.size > MAX_BYTES) return `${this.path} is not a regular file of at most ${MAX_BYTES} bytes`;
    const owners = this.trustedOwners();
    const safe = (s: Stats) => owners.includes(s.uid) && (s.mode & 0o022) === 0;
    if (!safe(st)) return `${this.path} is owned by uid ${st.uid} or writable by others: its nameservers are not believed`;
    try {
      // The directory of the file this descriptor holds, not of whatever the path names now.
      const dir = statSync(dirname(readlinkSync(`/proc/self/fd/${fd}`)));
      if (!safe(dir)) return `the directory of ${this.path} is owned by uid ${dir.uid} or writable by others: its nameservers are not believed`;
    } catch (err) {
      return `${this.path}: ${(err as Error).message}`;
    }
    return null;
  }
}
