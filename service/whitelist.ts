// What is allowed before any rule: the system's own DNS/DHCP/NTP clients (by executable path
// AND their service's ports, never by port alone) and loopback / LAN per config. The old daemon's
// holes are deliberately absent: no pass for any *.255 address, none for unidentified processes
// to port 53.
import type { BastionConfig } from './config.js';
import type { Connection } from './connection.js';

interface SystemClient {
  paths: readonly string[];
  protocol: 'TCP' | 'UDP';
  ports: readonly number[];
}

// Debian 12 paths (usrmerge: /lib and /usr/lib are the same directory, exe links show /usr/lib).
const SYSTEM_CLIENTS: readonly SystemClient[] = [
  {
    // DNS: the stub resolvers and caches the system runs for everyone.
    paths: ['/usr/lib/systemd/systemd-resolved', '/usr/sbin/dnsmasq', '/usr/sbin/unbound'],
    protocol: 'UDP',
    ports: [53],
  },
  { paths: ['/usr/lib/systemd/systemd-resolved', '/usr/sbin/dnsmasq', '/usr/sbin/unbound'], protocol: 'TCP', ports: [53, 853] },
  {
    // DHCP clients.
    paths: ['/usr/sbin/dhclient', '/usr/lib/systemd/systemd-networkd', '/usr/sbin/NetworkManager', '/usr/sbin/dhcpcd'],
    protocol: 'UDP',
    ports: [67, 547],
  },
  {
    // NTP clients.
    paths: ['/usr/lib/systemd/systemd-timesyncd', '/usr/sbin/chronyd', '/usr/sbin/ntpd', '/usr/sbin/ntpsec'],
    protocol: 'UDP',
    ports: [123],
  },
];

export type WhitelistReason = 'localhost' | 'lan' | 'system-service';

export class Whitelist {
  private readonly allowed = new Set<string>();

  constructor() {
    for (const c of SYSTEM_CLIENTS) for (const p of c.paths) for (const port of c.ports) this.allowed.add(`${p}|${c.protocol}|${port}`);
  }

  /** Why the connection passes without a rule, or null. */
  check(conn: Connection, config: Readonly<BastionConfig>): WhitelistReason | null {
    if (config.allowLocalhost && isLoopback(conn)) return 'localhost';
    if (conn.exe && (conn.protocol === 'TCP' || conn.protocol === 'UDP') && this.allowed.has(`${conn.exe}|${conn.protocol}|${conn.port}`)) {
      return 'system-service';
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
