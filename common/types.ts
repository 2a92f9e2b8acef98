// Domain types shared by the helper, the service and the CLI.
// They never import generated protobuf types: common/wire.ts converts at the boundary.

export type IpFamily = 4 | 6;

/** IANA protocol numbers the firewall reasons about. */
export const IPPROTO = { ICMP: 1, TCP: 6, UDP: 17, ICMPV6: 58 } as const;

/** How the owning process of a packet was found, or why it was not. */
export type Attribution =
  | 'sock_diag' // exact 5-tuple via NETLINK_SOCK_DIAG, then inode -> pid
  | 'proc_net' // /proc/net/{tcp,udp}{,6} fallback when sock_diag is unavailable; /proc/net/{icmp,raw}{,6} for ICMP
  | 'cache' // same flow or socket seen within the TTL
  | 'no_socket' // the kernel sent it on its own (no socket), e.g. WireGuard, ICMP errors
  | 'process_gone' // a socket matched, but no live process holds it any more
  | 'shared' // processes of different programs hold the socket and the one that connected it is not known
  | 'not_found' // no socket matched the packet
  | 'lookup_timeout' // the socket's process was not found within the time one packet may take
  | 'caller_unknown' // the kernel recorded no caller for the socket, or the recorded one is not the process there now (exec, pid reused)
  | 'kernel' // decided in the kernel (eBPF) by a path rule on the caller's executable inode, and reported
  | 'unsupported'; // nothing to look up (malformed packet, protocol without sockets)

/**
 * Whether the process's executable path can be believed, as the helper checked it: 'host' when
 * the process is in the helper's user namespace and the file running (stat of /proc/PID/exe) is
 * the file at that path as the helper sees it (same device and inode). Otherwise why not:
 * another user namespace (where an unprivileged user can mount anything over any path), a
 * different file (bind mount, container's own file system, replaced or deleted binary), or not
 * checkable (exe unreadable, or an old helper that did not say), or, without the kernel's record
 * of who connected the socket (no eBPF, and no `--weak-identity`), 'caller_unproven': the process
 * holds the socket, but another program holding it too may be the one that connected it.
 */
export type ExeIdentity = 'host' | 'other_user_ns' | 'exe_mismatch' | 'unverified' | 'caller_unproven';

export interface ProcessInfo {
  pid: number;
  uid: number;
  /** readlink(/proc/PID/exe) with a trailing " (deleted)" removed; spaces kept. */
  exe: string;
  exeDeleted: boolean;
  comm: string;
  cmdline: string[];
  ppid: number;
  parentExe: string;
  /** /proc/PID/stat field 22, clock ticks since boot: tells a reused pid from the original. */
  startTime: number;
  /** Only 'host' lets `exe` match a path rule, the whitelist or the helper's verdict cache. */
  identity: ExeIdentity;
  /** stat of /proc/PID/exe when it was read (the running file): checked against the caller the kernel recorded. */
  exeFile?: { dev: number; ino: number };
  /** In another mount namespace than the helper's (containers, sandboxed services): shown, not judged alone. */
  otherMountNs: boolean;
  /** readlink(/proc/PID/cwd), for a script path an interpreter was given relative to it; absent when unread. */
  cwd?: string;
  /** Flatpak or Snap application id from /proc/PID/cgroup (helper/identify/appId.ts); absent when none. */
  appId?: string;
}

/**
 * The process that connected a socket or last sent on it, as the kernel recorded it at that
 * moment (helper/identify/callerMap.ts).
 */
export interface CallerRecord {
  pid: number;
  /** Its real uid. */
  uid: number;
  /** Its start time (/proc/PID/stat field 22) and executable (stat's dev, ino); null when not recorded. */
  process: { startTime: number; exeDev: number; exeIno: number } | null;
}

/** A socket found for a packet: its inode and owner uid. */
export interface SocketOwner {
  inode: number;
  uid: number;
  /**
   * Who the kernel says connected the socket or last sent on it. Absent when it is not asked
   * (no eBPF); null when it is and recorded no one (the socket is older than the helper, or its
   * record did not fit): then the caller is not known, whoever holds the socket.
   */
  caller?: CallerRecord | null;
}

/** One queued packet as the helper reports it to the service. */
export interface PacketRecord {
  packetId: number;
  family: IpFamily;
  /** Final L4 protocol number (after IPv6 extension headers). */
  protocol: number;
  /** 4 or 16 bytes, network order (common/address.ts gives the text form). */
  srcAddr: Uint8Array;
  dstAddr: Uint8Array;
  srcPort: number;
  dstPort: number;
  icmpType: number;
  icmpCode: number;
  inIfindex: number;
  outIfindex: number;
  /** Socket owner uid from NFQA_UID, or -1 when the kernel gave none. */
  uid: number;
  gid: number;
  malformed: boolean;
  process: ProcessInfo | null;
  socketInode: number;
  attribution: Attribution;
  lookupMicros: number;
  payloadLength: number;
  /** Set when the helper answered from its verdict cache: the verdict it applied. */
  helperVerdict?: 'accept' | 'drop';
  /** Reports only: connections this record stands for (same program, destination and verdict); absent means one. */
  repeats?: number;
  /**
   * The destination's host name from the system resolver's snooped DNS answers
   * (common/hostName.ts grammar); absent when unknown. Only this one matches @host rules.
   */
  host?: string;
  /**
   * When `host` is absent: the name an answer from another resolver gave the destination,
   * which any user could have forged (docs/host-names.md). Shown as unverified, never matched.
   */
  unverifiedHost?: string;
}

export type VerdictAction = 'accept' | 'drop' | 'hold';

export interface Verdict {
  packetId: number;
  action: VerdictAction;
  /** Optional netfilter mark to set with the verdict. */
  mark?: number;
  /** For 'hold': how much longer the helper should keep the packet waiting. */
  holdMs?: number;
  /** For accept/drop: the helper may reuse this verdict for the same exe, protocol and port this long. */
  cacheMs?: number;
}
