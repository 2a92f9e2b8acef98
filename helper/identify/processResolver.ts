// The identify stage: packet 5-tuple -> socket (inode, uid) -> pid -> what the process is.
// Exact sock_diag lookup first (~12 µs); /proc/net only when sock_diag is unavailable.
// A packet NFQUEUE gives no socket owner for was sent by the kernel itself (WireGuard, other
// tunnels, in-kernel NFS): it is reported as such at once, never searched for.

import { readlinkSync } from 'node:fs';
import { IPPROTO } from '../../common/types.js';
import type { Attribution, CallerRecord, IpFamily, ProcessInfo, SocketOwner } from '../../common/types.js';
import type { ProcessEventListener, ProcessEventSource } from './procEvents.js';
import { lookupIcmpSocket, type IcmpPacket } from './icmpSockets.js';
import { lookupProcNet } from './procNet.js';
import { isDeniedError, mappedFileDevice, readProcessInfo } from './processInfo.js';
import { SocketOwnerIndex } from './socketOwnerIndex.js';
import type { PidRef, SocketOwnerIndexOptions } from './socketOwnerIndex.js';

/** The exact sock_diag lookup (native addon); 'unavailable' when the kernel refuses it. */
export type SocketLookup = (
  family: IpFamily,
  protocol: 6 | 17,
  src: Uint8Array,
  srcPort: number,
  dst: Uint8Array,
  dstPort: number,
) => SocketOwner | null | 'unavailable';

export interface ProcessResolverOptions {
  lookupSocket: SocketLookup;
  procRoot?: string;
  /** How long a socket's owner and a process's details are reused; default 2000 ms. */
  ttlMs?: number;
  now?: () => number;
  /** Entries kept per cache at most; default 4096. */
  maxCacheEntries?: number;
  index?: Omit<SocketOwnerIndexOptions, 'procRoot' | 'events'>;
  /** fork/exec/exit from the process connector (ProcessEvents.open()); null: list /proc instead. */
  events?: ProcessEventSource | null;
  /**
   * Programs just started (exec events) read ahead of their first packet, at most this many
   * per second (~150 µs of CPU each); default 200. 0: never.
   */
  readAheadPerSecond?: number;
  /**
   * Where the kernel does not say who connected a socket (no eBPF caller record), believe that a
   * process found holding it is the one that did (`--weak-identity`). Default false: its path
   * is shown but not proven ('caller_unproven'), so it matches no rule, since another program
   * holding the same socket (inherited, passed over SCM_RIGHTS) may be the one that acted.
   */
  weakIdentity?: boolean;
}

export interface Resolution {
  attribution: Attribution;
  process: ProcessInfo | null;
  /** 0 when no socket matched or the kernel owns it. */
  socketInode: number;
  /** -1 when no socket matched. */
  socketUid: number;
  lookupMicros: number;
}

interface Cached {
  info: ProcessInfo;
  /** readlink(/proc/PID/exe) when cached: execve() keeps pid and start time but not the exe. */
  exeLink: string;
  expiresAt: number;
}

const DEFAULT_TTL_MS = 2000;
const DEFAULT_MAX_CACHE_ENTRIES = 4096;
const DEFAULT_READ_AHEAD_PER_SECOND = 200;
/** Expired entries are dropped at most this often (they cost a walk of both caches' heads). */
const EVICT_INTERVAL_MS = 100;
/** Programs waiting to be read ahead at most; in a burst of execs only the newest are. */
const READ_AHEAD_PENDING = 16;

export class ProcessResolver implements ProcessEventListener {
  readonly index: SocketOwnerIndex;
  private readonly lookupSocket: SocketLookup;
  private readonly procRoot: string;
  private readonly ttlMs: number;
  private readonly now: () => number;
  private readonly maxCacheEntries: number;
  /** Socket inode -> its owner's details: the same socket within the TTL is a 'cache' hit. */
  private readonly byInode = new Map<number, Cached>();
  /** Pid -> details: a burst of new sockets from one process reads its /proc entry once. */
  private readonly byPid = new Map<number, Cached>();
  /** Socket inode -> until when: the process that connected it was found not to hold it. */
  private readonly callerGone = new Map<number, number>();
  private readonly readAheadPerSecond: number;
  private readonly weakIdentity: boolean;
  /** A cached process's details as reported without eBPF: one copy per cached object, not one per packet. */
  private readonly unproven = new WeakMap<ProcessInfo, ProcessInfo>();
  /** When expired entries were last dropped: once per EVICT_INTERVAL_MS is enough. */
  private evictedAt = -Infinity;
  /** Pids that exec'd since the last read-ahead, oldest first. */
  private readonly started: number[] = [];
  private readAheadScheduled = false;
  private readAheadTokens = 0;
  private readAheadRefilledAt = 0;

  constructor(options: ProcessResolverOptions) {
    this.lookupSocket = options.lookupSocket;
    this.procRoot = options.procRoot ?? '/proc';
    this.ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
    this.now = options.now ?? Date.now;
    this.maxCacheEntries = options.maxCacheEntries ?? DEFAULT_MAX_CACHE_ENTRIES;
    this.index = new SocketOwnerIndex({ ...options.index, procRoot: this.procRoot, events: options.events ?? null });
    this.readAheadPerSecond = options.readAheadPerSecond ?? DEFAULT_READ_AHEAD_PER_SECOND;
    this.readAheadTokens = this.readAheadPerSecond;
    this.weakIdentity = options.weakIdentity ?? false;
    options.events?.subscribe(this);
  }

  // ---- process events: cached details die with the program, new programs are read ahead ----

  onFork(pid: number): void {
    this.byPid.delete(pid);
  }

  /**
   * A program has just started: read its details and fd table while it is still loading, so
   * that its first connect() costs a readlink and a stat read instead of a scan (the read-
   * ahead runs right after the event, on the next turn of the event loop).
   */
  onExec(pid: number): void {
    this.byPid.delete(pid);
    if (this.readAheadPerSecond <= 0) return;
    this.started.push(pid);
    if (this.started.length > READ_AHEAD_PENDING) this.started.shift();
    this.scheduleReadAhead();
  }

  onExit(pid: number): void {
    this.byPid.delete(pid);
  }

  onLost(): void {
    this.byPid.clear(); // an exec among the lost events would leave a stale exe or argv
  }

  private scheduleReadAhead(): void {
    if (this.readAheadScheduled) return;
    this.readAheadScheduled = true;
    setImmediate(() => this.readAhead());
  }

  /**
   * One program per turn of the event loop (~150 µs), newest first, so that packets are not
   * kept waiting behind a burst; within the per-second budget. Programs left over when the
   * budget is spent are found when they connect.
   */
  private readAhead(): void {
    this.readAheadScheduled = false;
    const now = this.now();
    const refill = ((now - this.readAheadRefilledAt) / 1000) * this.readAheadPerSecond;
    this.readAheadTokens = Math.min(this.readAheadPerSecond, this.readAheadTokens + refill);
    this.readAheadRefilledAt = now;
    const pid = this.started.pop();
    if (pid === undefined) return;
    if (this.readAheadTokens < 1) {
      this.started.length = 0;
      return;
    }
    this.readAheadTokens--;
    try {
      const ref = this.index.learn(pid);
      if (ref !== null) this.processDetails(ref, now);
    } catch {
      // Only an optimisation: whatever failed here is read again when the process connects.
    }
    if (this.started.length > 0) this.scheduleReadAhead();
  }

  /**
   * packetUid: the socket owner NFQUEUE reported with the packet (NFQA_UID), -1 when it
   * reported none, which it does exactly when the packet has no socket with a file: the
   * kernel built it on its own (WireGuard, VXLAN carrying ARP, in-kernel NFS). Omitted: not
   * known (then only the lookup decides).
   */
  resolve(
    family: IpFamily,
    protocol: number,
    src: Uint8Array,
    srcPort: number,
    dst: Uint8Array,
    dstPort: number,
    packetUid?: number,
    budgetMs = Infinity,
  ): Resolution {
    const started = performance.now(); // a double: no BigInt allocated per packet
    const result = this.resolveUntimed(family, protocol, src, srcPort, dst, dstPort, packetUid ?? null, budgetMs);
    result.lookupMicros = (performance.now() - started) * 1000;
    return result;
  }

  /** The same for an ICMP/ICMPv6 packet (icmpSockets.ts says how its socket is found). */
  resolveIcmp(packet: IcmpPacket, budgetMs = Infinity): Resolution {
    const started = performance.now();
    let result: Resolution;
    if (packet.uid === -1) {
      result = outcome('no_socket', null, 0, -1); // the kernel's own: errors, replies it makes itself
    } else {
      const owner = lookupIcmpSocket(packet, this.procRoot);
      // No caller program sees a ping or raw socket: its one holder is credited, as without eBPF
      // under --weak-identity, and a socket held by several programs is still credited to none.
      result = owner === null ? outcome('not_found', null, 0, -1) : this.ownerProcess(owner, 'proc_net', budgetMs, false);
    }
    result.lookupMicros = (performance.now() - started) * 1000;
    return result;
  }

  private resolveUntimed(
    family: IpFamily,
    protocol: number,
    src: Uint8Array,
    srcPort: number,
    dst: Uint8Array,
    dstPort: number,
    packetUid: number | null,
    budgetMs: number,
  ): Resolution {
    if (protocol !== IPPROTO.TCP && protocol !== IPPROTO.UDP) return outcome('unsupported', null, 0, -1);
    if (packetUid === -1) return outcome('no_socket', null, 0, -1);
    let via: Attribution = 'sock_diag';
    let owner = this.lookupSocket(family, protocol, src, srcPort, dst, dstPort);
    if (owner === 'unavailable') {
      via = 'proc_net';
      owner = lookupProcNet(family, protocol, src, srcPort, dst, dstPort, this.procRoot);
    }
    // No socket has this 5-tuple: a sender that has closed its socket (a UDP sender that did
    // not wait for a reply, gone already), or a tunnel wrapping a user packet in the kernel's
    // own UDP (VXLAN keeps the inner packet's socket, so NFQUEUE reports its owner): nothing
    // tells these apart, and neither may be credited to anyone.
    if (owner === null) return outcome('not_found', null, 0, -1);
    return this.ownerProcess(owner, via, budgetMs);
  }

  /**
   * The process holding a socket that was found for a packet, searched for at most budgetMs:
   * past it the packet is credited to no one ('lookup_timeout'), and a later packet of the
   * same socket goes on from where this search stopped.
   */
  /** recordable: the kind of socket the caller programs record (TCP, UDP), else no record is expected. */
  private ownerProcess(owner: SocketOwner, via: Attribution, budgetMs: number, recordable = true): Resolution {
    // Orphaned, TIME_WAIT and kernel sockets have no inode: nothing in user space sent it.
    if (owner.inode === 0) return outcome('no_socket', null, 0, owner.uid);

    const now = this.now();
    this.evictExpired(now);
    // The caller was searched for lately and no longer held the socket (passed away and
    // closed): its retransmissions are answered without reading its fd table again.
    const gone = this.callerGone.get(owner.inode);
    if (gone !== undefined && gone > now) return outcome('process_gone', null, owner.inode, owner.uid);
    // The kernel told us which process connected the socket (or last sent on it): only that
    // one may be credited, however many hold the socket, and only while it is still the
    // process and program that acted. The kernel recorded no one: no one is credited (never a
    // holder found in /proc). Without eBPF, whichever holds it, unless processes of different
    // programs are known to (a socket passed on or inherited), and then its path is not
    // proven unless weakIdentity says to believe it.
    if (owner.caller === null) return outcome('caller_unknown', null, owner.inode, owner.uid);
    const record = owner.caller;
    const caller = record?.pid ?? 0;
    // Never trust a cached owner blindly: the index re-checks that the pid holds the socket.
    for (let attempt = 0; attempt < 2; attempt++) {
      const holder = caller > 0 ? this.index.findIn(caller, owner.inode, budgetMs) : this.index.findPid(owner.inode, owner.uid, budgetMs);
      if (holder === null) {
        if (this.index.timedOut) return outcome('lookup_timeout', null, owner.inode, owner.uid);
        if (caller > 0) insertBounded(this.callerGone, owner.inode, now + this.ttlMs, this.maxCacheEntries);
        break;
      }
      const cached = this.byInode.get(owner.inode);
      if (cached !== undefined && this.stillCurrent(cached, holder)) {
        if (caller === 0 && this.sharedWithOtherProgram(owner.inode, holder.pid, cached.exeLink)) return outcome('shared', null, owner.inode, owner.uid);
        return this.credit(record, cached.info, 'cache', owner, recordable);
      }
      const info = this.processDetails(holder, now);
      if (info === null) continue; // exited (or pid reused) since the index saw it: look again
      if (caller === 0 && this.sharedWithOtherProgram(owner.inode, holder.pid, rawExeLink(info))) return outcome('shared', null, owner.inode, owner.uid);
      remember(this.byInode, owner.inode, info, now + this.ttlMs, this.maxCacheEntries);
      return this.credit(record, info, via, owner, recordable);
    }
    return outcome('process_gone', null, owner.inode, owner.uid);
  }

  /**
   * info, found holding the socket, as the packet's process: with the kernel's record, only
   * while it is the process (start time, uid) and program (executable's device and inode) that
   * acted: one that exec'd since, or a pid reused, is credited to no one. Without a record, its
   * path is not proven unless weakIdentity.
   */
  private credit(record: CallerRecord | undefined, info: ProcessInfo, via: Attribution, owner: SocketOwner, recordable: boolean): Resolution {
    if (record !== undefined) {
      if (!isRecordedCaller(record, info, this.procRoot)) return outcome('caller_unknown', null, owner.inode, owner.uid);
      return outcome(via, info, owner.inode, owner.uid);
    }
    if (this.weakIdentity || !recordable || info.identity !== 'host') return outcome(via, info, owner.inode, owner.uid);
    let unproven = this.unproven.get(info);
    if (unproven === undefined) {
      unproven = { ...info, identity: 'caller_unproven' };
      this.unproven.set(info, unproven);
    }
    return outcome(via, unproven, owner.inode, owner.uid);
  }

  /** Another process than pid holds the socket and runs another program than exeLink names. */
  private sharedWithOtherProgram(inode: number, pid: number, exeLink: string): boolean {
    return this.index.otherHolders(inode, pid).some((other) => this.exeLink(other) !== exeLink || exeLink === '');
  }

  /**
   * Details for a pid the index just verified, from the per-pid cache when still valid; else
   * read, starting from the stat the index read during its check if it read one.
   */
  private processDetails(holder: PidRef, now: number): ProcessInfo | null {
    const { pid, startTime, stat } = holder;
    const cached = this.byPid.get(pid);
    if (cached !== undefined && this.stillCurrent(cached, holder)) return cached.info;
    const info = readProcessInfo(pid, this.procRoot, stat ?? undefined);
    if (info === null || info.startTime !== startTime) return null;
    remember(this.byPid, pid, info, now + this.ttlMs, this.maxCacheEntries);
    return info;
  }

  /** Same process (pid and start time) and the same program (no execve since). */
  private stillCurrent(cached: Cached, holder: PidRef): boolean {
    if (cached.info.pid !== holder.pid || cached.info.startTime !== holder.startTime) return false;
    // Events up to after the fd read have been dispatched: an exec would have dropped the
    // per-pid entry (onExec), so its presence is the proof. Else read the exe link again.
    if (holder.eventsCurrent && this.byPid.get(holder.pid)?.info === cached.info) return true;
    return this.exeLink(holder.pid) === cached.exeLink;
  }

  /** The raw link, '' when we may not read it (as readProcessInfo reports it), null once gone. */
  private exeLink(pid: number): string | null {
    try {
      return readlinkSync(`${this.procRoot}/${pid}/exe`);
    } catch (err) {
      return isDeniedError(err) ? '' : null;
    }
  }

  /**
   * Entries are appended in expiry order (one TTL for all), so the oldest sit at the front.
   * They may be used up to EVICT_INTERVAL_MS past their TTL: pid, start time and exe are
   * re-checked on use.
   */
  private evictExpired(now: number): void {
    if (now >= this.evictedAt && now - this.evictedAt < EVICT_INTERVAL_MS) return; // (a clock stepped back evicts now)
    this.evictedAt = now;
    dropExpired(this.byInode, now, (entry) => entry.expiresAt);
    dropExpired(this.byPid, now, (entry) => entry.expiresAt);
    dropExpired(this.callerGone, now, (until) => until);
  }
}

/** Drops the entries at the front that have expired (entries are kept in expiry order). */
function dropExpired<V>(cache: Map<number, V>, now: number, expiresAt: (value: V) => number): void {
  for (const [key, value] of cache) {
    if (expiresAt(value) > now) return;
    cache.delete(key);
  }
}

function remember(cache: Map<number, Cached>, key: number, info: ProcessInfo, expiresAt: number, max: number): void {
  insertBounded(cache, key, { info, exeLink: rawExeLink(info), expiresAt }, max);
}

/** Sets key at the back (expiry order), dropping the oldest entry when the map is full. */
function insertBounded<V>(cache: Map<number, V>, key: number, value: V, max: number): void {
  cache.delete(key);
  if (cache.size >= max) {
    const oldest = cache.keys().next();
    if (oldest.done !== true) cache.delete(oldest.value);
  }
  cache.set(key, value);
}

/**
 * info is the process the kernel recorded: the same uid and, when the record has them, the same
 * start time (not a reused pid) and the same running file (no exec since; a file whose stat
 * was not readable has no path to believe anyway).
 */
function isRecordedCaller(record: CallerRecord, info: ProcessInfo, procRoot: string): boolean {
  if (record.pid !== info.pid || record.uid !== info.uid) return false;
  const recorded = record.process;
  if (recorded === null) return true;
  if (recorded.startTime !== info.startTime) return false;
  if (info.exeFile === undefined) return true;
  if (info.exeFile.ino !== recorded.exeIno) return false;
  if (info.exeFile.dev === recorded.exeDev) return true;
  // btrfs (and others) report a per-subvolume device to stat(2), not their superblock's, which
  // the kernel recorded; /proc/PID/maps shows the superblock's device of each mapped file.
  return mappedFileDevice(info.pid, recorded.exeIno, procRoot) === recorded.exeDev;
}

/** What readlink(/proc/PID/exe) returned when info was read. */
function rawExeLink(info: ProcessInfo): string {
  return info.exeDeleted ? `${info.exe} (deleted)` : info.exe;
}

function outcome(attribution: Attribution, process: ProcessInfo | null, socketInode: number, socketUid: number): Resolution {
  return { attribution, process, socketInode, socketUid, lookupMicros: 0 };
}
