// Socket inode -> owning pid, from /proc/PID/fd, kept warm incrementally.
//
// A full /proc/*/fd scan with 200 processes costs 27 ms (one readlink per fd, 6-10 µs each),
// far too much per packet. The packet is held in the queue while we look, so its owner is
// still alive, blocked in connect()/sendto(). A one-shot process is almost always among the
// pids never scanned, and the newest of them; a long-lived one has usually connected before.
// So a miss scans pids never scanned before (the socket uid's first, newest first), then the
// processes that owned the last sockets found, then every other known pid, and stops at the
// first holder.

import { readdirSync, readlinkSync, statSync } from 'node:fs';
import { isDeniedError, isGoneError, readProcFile, readStartTime } from './processInfo.js';

export interface SocketOwnerIndexOptions {
  procRoot?: string;
  /** Pid scans allowed for one miss: bounds how long one packet can be held by the search. */
  maxScansPerMiss?: number;
  /** fds read per process: bounds one scan of a process with a huge fd table. */
  maxFdsPerPid?: number;
}

export interface PidRef {
  pid: number;
  startTime: number;
}

export interface SocketOwnerIndexCounters {
  /** Processes whose fd table was read. */
  scans: number;
  /** readlink calls on /proc/PID/fd/N, including hit verifications. */
  fdReads: number;
  /** Lookups answered from the index after verification. */
  hits: number;
  /** Lookups that had to search /proc. */
  misses: number;
}

interface PidEntry {
  startTime: number;
  /** Owner of /proc/PID (the process's euid) at its first scan: only orders the search. */
  uid: number;
  /** fd number -> socket inode, or 0 for an fd that is not a socket, as last read. */
  fds: Map<number, number>;
  /** Socket inode -> fd number: the reverse of fds, so a hit is verified with one readlink. */
  sockets: Map<number, number>;
  /** The miss (counters.misses) during which this entry was last read. */
  scannedAtMiss: number;
}

interface Unscanned {
  pid: number;
  uid: number;
}

const SOCKET_LINK_PREFIX = 'socket:[';
const DEFAULT_MAX_SCANS_PER_MISS = 4096;
const DEFAULT_MAX_FDS_PER_PID = 65536;
/** Processes that owned the last sockets found, rescanned before all others. */
const RECENT_OWNERS = 8;

export class SocketOwnerIndex {
  readonly counters: SocketOwnerIndexCounters = { scans: 0, fdReads: 0, hits: 0, misses: 0 };
  private readonly procRoot: string;
  private readonly maxScansPerMiss: number;
  private readonly maxFdsPerPid: number;
  private readonly pids = new Map<number, PidEntry>();
  /** Socket inode -> the pid we credit it to (verified again on every hit). */
  private readonly owners = new Map<number, number>();
  /** Pids credited with the last sockets found, most recent first. */
  private readonly recentOwners: number[] = [];
  /** Pids listed in /proc but not scanned yet, highest first (a reused pid goes in front). */
  private unscanned: Unscanned[] = [];
  /** The last pid the kernel had handed out when /proc was last listed (-1: never listed). */
  private lastPidListed = -1;
  private scansLeft = 0;

  constructor(options: SocketOwnerIndexOptions = {}) {
    this.procRoot = options.procRoot ?? '/proc';
    this.maxScansPerMiss = options.maxScansPerMiss ?? DEFAULT_MAX_SCANS_PER_MISS;
    this.maxFdsPerPid = options.maxFdsPerPid ?? DEFAULT_MAX_FDS_PER_PID;
  }

  /** Pids the index currently knows (scanned at least once and not seen gone). */
  get trackedPids(): number {
    return this.pids.size;
  }

  /** Scans every process now (at startup, before packets wait on it); returns how many. */
  warm(): number {
    this.pidsCreatedSinceListing();
    this.relist();
    const count = this.unscanned.length;
    for (const { pid, uid } of this.unscanned.splice(0)) this.scan(pid, -1, uid);
    return count;
  }

  /**
   * The live process holding socket inode, or null when no process holds it.
   * uidHint (the socket's uid) decides which processes are searched first.
   */
  findPid(inode: number, uidHint: number | null): PidRef | null {
    const known = this.owners.get(inode);
    if (known !== undefined) {
      const entry = this.pids.get(known);
      if (entry !== undefined && this.stillHolds(known, entry, inode)) {
        this.counters.hits++;
        return this.credit(known, entry, inode);
      }
      this.owners.delete(inode);
    }
    this.counters.misses++;
    if (this.pidsCreatedSinceListing()) this.relist();
    this.scansLeft = this.maxScansPerMiss;
    return (
      this.searchUnscanned(inode, uidHint) ??
      this.searchKnown(this.recentFirst(uidHint), inode) ??
      this.searchKnown(this.rescanOrder(uidHint), inode)
    );
  }

  /** One readlink of the fd we saw it on plus one stat read: far cheaper than a scan. */
  private stillHolds(pid: number, entry: PidEntry, inode: number): boolean {
    const fd = entry.sockets.get(inode);
    if (fd === undefined) return false;
    this.counters.fdReads++;
    if (this.readFdLink(pid, fd) !== `${SOCKET_LINK_PREFIX}${inode}]`) return false;
    if (readStartTime(pid, this.procRoot) === entry.startTime) return true;
    this.requeue(pid); // the pid was reused: everything we knew about it is wrong
    return false;
  }

  private searchUnscanned(inode: number, uidHint: number | null): PidRef | null {
    if (uidHint !== null) {
      const uids = new Map(this.unscanned.map(({ pid, uid }) => [pid, uid]));
      this.unscanned.sort((a, b) => uidFirstThenNewest(a.pid, b.pid, uidHint, uids));
    }
    while (this.unscanned.length > 0 && this.scansLeft > 0) {
      const { pid, uid } = this.unscanned.shift() as Unscanned;
      const found = this.scan(pid, inode, uid);
      if (found !== null) return found;
    }
    return null;
  }

  private searchKnown(order: readonly number[], inode: number): PidRef | null {
    for (const pid of order) {
      if (this.scansLeft <= 0) return null;
      if (this.pids.get(pid)?.scannedAtMiss === this.counters.misses) continue; // read already
      const found = this.scan(pid, inode, -1);
      if (found !== null) return found;
    }
    return null;
  }

  private recentFirst(uidHint: number | null): number[] {
    return this.recentOwners.filter((pid) => uidHint === null || this.pids.get(pid)?.uid === uidHint);
  }

  /** The socket uid's processes first, newest first within each group. */
  private rescanOrder(uidHint: number | null): number[] {
    const order = [...this.pids.keys()];
    if (uidHint === null) return order.sort((a, b) => b - a);
    const uids = new Map<number, number>();
    for (const [pid, entry] of this.pids) uids.set(pid, entry.uid);
    return order.sort((a, b) => uidFirstThenNewest(a, b, uidHint, uids));
  }

  /**
   * Reads pid's fd table and records its sockets; returns the pid when it holds inode
   * (-1: look for nothing, record everything). uid is /proc/PID's owner if already read, else -1.
   */
  private scan(pid: number, inode: number, uid: number): PidRef | null {
    const entry = this.pids.get(pid);
    return entry === undefined ? this.firstScan(pid, inode, uid) : this.rescan(pid, entry, inode);
  }

  /** Records every fd, so that later sockets of the process are cheap hits. */
  private firstScan(pid: number, inode: number, uid: number): PidRef | null {
    this.counters.scans++;
    this.scansLeft--;
    const startTime = readStartTime(pid, this.procRoot);
    const names = startTime === null ? null : this.readFdDir(pid);
    const ownerUid = uid >= 0 ? uid : this.dirUid(pid);
    if (startTime === null || names === null || ownerUid < 0) return null;
    const entry: PidEntry = {
      startTime,
      uid: ownerUid,
      fds: new Map(),
      sockets: new Map(),
      scannedAtMiss: this.counters.misses,
    };
    this.pids.set(pid, entry);
    if (!this.readFds(pid, entry, names, inode, false)) return null;
    // The pid may have died and been reused while we read its fds: check it is still the same.
    if (readStartTime(pid, this.procRoot) !== startTime) {
      this.requeue(pid);
      return null;
    }
    return this.credit(pid, entry, inode);
  }

  /**
   * Reads the likeliest fds first and stops at the socket. The start time is read once, at
   * the end: if it changed, the pid was reused and the process there now gets a first scan.
   */
  private rescan(pid: number, entry: PidEntry, inode: number): PidRef | null {
    this.counters.scans++;
    this.scansLeft--;
    entry.scannedAtMiss = this.counters.misses;
    const names = this.readFdDir(pid);
    if (names === null) {
      this.forget(pid);
      return null;
    }
    const found = this.readFds(pid, entry, this.rescanFdOrder(pid, entry, names), inode, true);
    // Not found: the process there now does not hold it, whichever process that is; what we
    // recorded under a stale start time is caught by the start time check on a hit.
    if (!found) return null;
    if (readStartTime(pid, this.procRoot) === entry.startTime) return this.credit(pid, entry, inode);
    this.forget(pid);
    return this.firstScan(pid, inode, -1);
  }

  private credit(pid: number, entry: PidEntry, inode: number): PidRef {
    this.owners.set(inode, pid);
    this.noteRecentOwner(pid);
    return { pid, startTime: entry.startTime };
  }

  /** Reads fd links in order; true once inode is seen (then stops there if stopAtInode). */
  private readFds(
    pid: number,
    entry: PidEntry,
    names: readonly string[],
    inode: number,
    stopAtInode: boolean,
  ): boolean {
    let found = false;
    const limit = Math.min(names.length, this.maxFdsPerPid);
    for (let i = 0; i < limit; i++) {
      const fd = Number(names[i]);
      this.counters.fdReads++;
      const link = this.readFdLink(pid, fd);
      const socket = link === null ? null : socketInode(link);
      this.record(pid, entry, fd, socket);
      if (socket === inode && inode > 0) {
        found = true;
        if (stopAtInode) break;
      }
    }
    return found;
  }

  /**
   * For a rescan: fd numbers not seen before first, then numbers that held a socket (a
   * closed socket's number is the lowest free one, which socket() hands out next), then the
   * rest. Forgets fds that have been closed.
   */
  private rescanFdOrder(pid: number, entry: PidEntry, names: readonly string[]): string[] {
    const open = new Set<number>();
    const fresh: string[] = [];
    const wasSocket: string[] = [];
    const other: string[] = [];
    for (const name of names) {
      const fd = Number(name);
      open.add(fd);
      const inode = entry.fds.get(fd);
      (inode === undefined ? fresh : inode > 0 ? wasSocket : other).push(name);
    }
    for (const fd of entry.fds.keys()) if (!open.has(fd)) this.record(pid, entry, fd, null);
    return fresh.concat(wasSocket, other);
  }

  /** Sets what fd holds now (a socket inode, 0: not a socket, null: closed). */
  private record(pid: number, entry: PidEntry, fd: number, inode: number | null): void {
    const previous = entry.fds.get(fd);
    if (previous === inode) return;
    if (previous !== undefined && previous > 0) {
      entry.sockets.delete(previous);
      if (this.owners.get(previous) === pid) this.owners.delete(previous);
    }
    if (inode === null) {
      entry.fds.delete(fd);
      return;
    }
    entry.fds.set(fd, inode);
    if (inode === 0) return;
    entry.sockets.set(inode, fd);
    // A socket shared across fork() keeps the holder found first (the newest, by scan order).
    const holder = this.owners.get(inode);
    if (holder === undefined || this.pids.get(holder)?.sockets.has(inode) !== true) this.owners.set(inode, pid);
  }

  private noteRecentOwner(pid: number): void {
    const at = this.recentOwners.indexOf(pid);
    if (at >= 0) this.recentOwners.splice(at, 1);
    this.recentOwners.unshift(pid);
    if (this.recentOwners.length > RECENT_OWNERS) this.recentOwners.pop();
  }

  /** A reused pid is a new process: scan it as one, before the known ones. */
  private requeue(pid: number): void {
    this.forget(pid);
    this.unscanned.unshift({ pid, uid: -1 });
  }

  private forget(pid: number): void {
    const entry = this.pids.get(pid);
    if (entry === undefined) return;
    for (const inode of entry.sockets.keys()) {
      if (this.owners.get(inode) === pid) this.owners.delete(inode);
    }
    this.pids.delete(pid);
    const at = this.recentOwners.indexOf(pid);
    if (at >= 0) this.recentOwners.splice(at, 1);
  }

  /**
   * Listing /proc costs 1-2 µs per process; /proc/loadavg's last field (the last pid the
   * kernel handed out) costs one small read and tells whether any process or thread has been
   * created since. Without it (a fake procRoot), list every time.
   */
  private pidsCreatedSinceListing(): boolean {
    let lastPid: number;
    try {
      lastPid = Number(readProcFile(`${this.procRoot}/loadavg`).trimEnd().split(' ').pop());
    } catch {
      return true;
    }
    if (!Number.isInteger(lastPid)) return true;
    if (lastPid === this.lastPidListed) return false;
    this.lastPidListed = lastPid;
    return true;
  }

  /** Lists /proc: forgets pids that have gone, queues the new ones for a first scan. */
  private relist(): void {
    const listed = this.listPids();
    const alive = new Set(listed);
    for (const pid of this.pids.keys()) if (!alive.has(pid)) this.forget(pid);
    // Keep uids read at an earlier listing: one stat per new process, not one per miss.
    const earlierUid = new Map<number, number>();
    for (const { pid, uid } of this.unscanned) earlierUid.set(pid, uid);
    this.unscanned = [];
    for (const pid of listed) {
      if (!this.pids.has(pid)) this.unscanned.push({ pid, uid: earlierUid.get(pid) ?? this.dirUid(pid) });
    }
  }

  /** Numeric entries of /proc, highest (newest, short of pid wraparound) first. */
  private listPids(): number[] {
    let names: string[];
    try {
      names = readdirSync(this.procRoot);
    } catch {
      return [];
    }
    const pids: number[] = [];
    for (const name of names) {
      const code = name.charCodeAt(0);
      if (code >= 48 && code <= 57) pids.push(Number(name));
    }
    return pids.sort((a, b) => b - a);
  }

  /** Owner of /proc/PID (the process's euid), or -1 once it has exited. */
  private dirUid(pid: number): number {
    try {
      return statSync(`${this.procRoot}/${pid}`).uid;
    } catch {
      return -1;
    }
  }

  /**
   * fd names, or null once the process has exited (processes exit mid-scan). A process we
   * may not look into counts as holding nothing, so it is not retried as new on every miss.
   */
  private readFdDir(pid: number): string[] | null {
    try {
      return readdirSync(`${this.procRoot}/${pid}/fd`);
    } catch (err) {
      if (isGoneError(err)) return null;
      if (isDeniedError(err)) return [];
      throw err;
    }
  }

  /** The link text, or null when the fd (or the process) is gone or hidden from us. */
  private readFdLink(pid: number, fd: number): string | null {
    try {
      return readlinkSync(`${this.procRoot}/${pid}/fd/${fd}`);
    } catch (err) {
      if (isGoneError(err) || isDeniedError(err)) return null;
      throw err;
    }
  }
}

/** The inode of a "socket:[N]" fd link; 0 for anything else (files, pipes, anon inodes). */
function socketInode(link: string): number {
  return link.startsWith(SOCKET_LINK_PREFIX) ? Number(link.slice(SOCKET_LINK_PREFIX.length, -1)) : 0;
}

/** Sort order: pids whose uid is uidHint first, then the highest (newest) pid first. */
function uidFirstThenNewest(a: number, b: number, uidHint: number, uids: ReadonlyMap<number, number>): number {
  const aMatches = uids.get(a) === uidHint;
  return aMatches === (uids.get(b) === uidHint) ? b - a : aMatches ? -1 : 1;
}
