// What is allowed before any rule: the system's own DNS/DHCP/NTP clients (by executable path,
// the user their service runs as AND their service's ports, never by port alone), loopback /
// LAN per config, and every program's DNS to the nameservers resolv.conf names (allow_dns:
// those addresses and port 53 only, nameservers.ts). The old daemon's holes are deliberately absent: no pass for any *.255
// address, none for unidentified processes to port 53. A path counts only when the helper
// proved it (Connection.exe is null otherwise): a copy named dnsmasq in a user namespace of its
// own, or run by another user, is not the system's dnsmasq.
import { userId } from '../common/system.js';
import type { BastionConfig } from './config.js';
import type { Connection } from './connection.js';

/** The nameservers programs may ask (nameservers.ts). */
export interface NameserverList {
  has(destIp: string): boolean;
}

/** The port glibc asks nameservers on (resolv.conf cannot name another). */
const DNS_PORT = 53;

interface SystemClient {
  path: string;
  /** The users the service runs as when it sends (Debian 12's packages); resolved to uids at load. */
  users: readonly string[];
  services: readonly { protocol: 'TCP' | 'UDP'; ports: readonly number[] }[];
}

const DNS = [
  { protocol: 'UDP', ports: [53] },
  { protocol: 'TCP', ports: [53, 853] },
] as const;
const DHCP = [{ protocol: 'UDP', ports: [67, 547] }] as const;
const NTP = [{ protocol: 'UDP', ports: [123] }] as const;

// Debian 12 paths (usrmerge: /lib and /usr/lib are the same directory, exe links show /usr/lib).
const SYSTEM_CLIENTS: readonly SystemClient[] = [
  // DNS: the stub resolvers and caches the system runs for everyone. dnsmasq drops to its own
  // user, to libvirt's under libvirt, and to nobody under NetworkManager.
  { path: '/usr/lib/systemd/systemd-resolved', users: ['systemd-resolve'], services: DNS },
  { path: '/usr/sbin/dnsmasq', users: ['dnsmasq', 'libvirt-dnsmasq', 'nobody'], services: DNS },
  { path: '/usr/sbin/unbound', users: ['unbound'], services: DNS },
  // DHCP clients.
  { path: '/usr/sbin/dhclient', users: ['root'], services: DHCP },
  { path: '/usr/lib/systemd/systemd-networkd', users: ['systemd-network'], services: DHCP },
  { path: '/usr/sbin/NetworkManager', users: ['root'], services: DHCP },
  { path: '/usr/sbin/dhcpcd', users: ['root', 'dhcpcd'], services: DHCP },
  // NTP clients.
  { path: '/usr/lib/systemd/systemd-timesyncd', users: ['systemd-timesync'], services: NTP },
  { path: '/usr/sbin/chronyd', users: ['_chrony'], services: NTP },
  { path: '/usr/sbin/ntpd', users: ['ntp', 'ntpsec'], services: NTP },
  { path: '/usr/sbin/ntpsec', users: ['ntpsec'], services: NTP },
];

export type WhitelistReason = 'localhost' | 'lan' | 'system-service' | 'dns';

export class Whitelist {
  /** `<path>|<protocol>|<port>` -> the uids allowed to send there. */
  private allowed = new Map<string, Set<number>>();

  /**
   * uidOf: a user's uid, null when there is no such user (its entry then allows nobody until
   * refresh() finds it). nameservers: where allow_dns lets every program ask; none by default.
   */
  constructor(
    private readonly uidOf: (user: string) => number | null = (user) => userId(user),
    private readonly nameservers: NameserverList = { has: () => false },
  ) {
    this.refresh();
  }

  /**
   * Looks the system services' users up again (accountWatch.ts: a package installed since
   * added one). Returns the users found, for the log.
   */
  refresh(): string[] {
    const allowed = new Map<string, Set<number>>();
    const found = new Set<string>();
    for (const c of SYSTEM_CLIENTS) {
      const uids = new Set<number>();
      for (const user of c.users) {
        const uid = this.uidOf(user);
        if (uid === null) continue;
        uids.add(uid);
        found.add(user);
      }
      for (const s of c.services) for (const port of s.ports) allowed.set(`${c.path}|${s.protocol}|${port}`, uids);
    }
    this.allowed = allowed;
    return [...found];
  }

  /** Whether some connections of the executable at this path pass as a system service's. */
  isSystemClient(path: string): boolean {
    return SYSTEM_CLIENTS.some((c) => c.path === path);
  }

  /** Why the connection passes without a rule, or null. */
  check(conn: Connection, config: Readonly<BastionConfig>): WhitelistReason | null {
    if (config.allowLocalhost && isLoopback(conn)) return 'localhost';
    if (config.allowDns && conn.port === DNS_PORT && (conn.protocol === 'UDP' || conn.protocol === 'TCP') && this.nameservers.has(conn.destIp)) return 'dns';
    if (conn.exe && (conn.protocol === 'TCP' || conn.protocol === 'UDP')) {
      const uids = this.allowed.get(`${conn.exe}|${conn.protocol}|${conn.port}`);
      // The process's own uid: a service whose socket was made before it dropped privileges still sends as its user.
      if (uids !== undefined && conn.record.process !== null && uids.has(conn.record.process.uid)) return 'system-service';
    }
    if (config.allowLan && isLan(conn)) return 'lan';
    return null;
  }
}
function isLoopback(conn: Connection): boolean {
  const a = conn.record.dstAddr;
  if (conn.record.family === 4) return a[0] === 127;
  return a.every((b, i) => b === (i === 15 ? 1 : 0)) || isMappedV4(a, (b0) => b0 === 127);
}

/** RFC 1918, link-local and IPv6 unique-local / link-local destinations. */
function isLan(conn: Connection): boolean {
  const a = conn.record.dstAddr;
  if (conn.record.family === 4) return isPrivateV4(a[0]!, a[1]!);
  const a0 = a[0]!;
  const a1 = a[1]!;
  return (a0 & 0xfe) === 0xfc || (a0 === 0xfe && (a1 & 0xc0) === 0x80) || isMappedV4(a, isPrivateV4);
}

function isPrivateV4(b0: number, b1: number): boolean {
  return b0 === 10 || (b0 === 172 && b1 >= 16 && b1 <= 31) || (b0 === 192 && b1 === 168) || (b0 === 169 && b1 === 254);
}

function isMappedV4(a: Uint8Array, test: (b0: number, b1: number) => boolean): boolean {
  for (let i = 0; i < 10; i++) if (a[i] !== 0) return false;
  return a[10] === 0xff && a[11] === 0xff && test(a[12]!, a[13]!);
}
