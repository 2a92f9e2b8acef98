// Socket inode -> owning pid, from /proc/PID/fd, kept warm incrementally.
//
// Every /proc access is a syscall of 4-12 µs here, and a full /proc/*/fd scan with 200
// processes costs 27 ms: far too much per packet. The packet is held in the queue while we
// look, so its owner is still alive, blocked in connect() or waiting for its UDP reply. A
// miss looks, cheapest first, at:
//  1. candidates, by a readlink or two on the fd number their new socket probably has:
//     programs started lately that have not connected yet (read ahead by learn(), oldest
//     first: they connect in the order they started), on their lowest fd number not open
//     when we read them (socket() takes the lowest free number); then the processes credited
//     last, on the numbers their last sockets had (a closed fd's number is handed out again
//     first) or their lowest free one, whichever served them last time. No directory
//     listing: a known process's new socket costs a readlink and a stat read.
//  2. processes never scanned, the socket uid's first, newest first, each fd table read from
//     its highest number down. Which pids are new comes from the process connector's events
//     when we have them (procEvents.ts), else from listing /proc once /proc/loadavg says a
//     pid was handed out since the last listing.
//  3. the candidates' whole fd tables (only fds not read before), then every other process;
//     with events, last of all a listing of /proc, in case events were missed.
// and stops at the first holder. Every answer rests on a readlink of the holder's fd naming
// the socket, followed by proof that the pid still is the process we read before: its start
// time read again, or, with process events, no exit event for it up to a drain made after
// the readlink (the kernel queues a process's exit event before its pid can be handed out
// again; an overflow is reported, and then we read start times again until re-verified).

import type { ProcessEventListener, ProcessEventSource } from './procEvents.js';
import { dirUid, FdListing, lastPidHandedOut, listPids, readFdLink, socketInode, socketLink } from './procFds.js';
import { ProcessFds, UNKNOWN_UID } from './processFds.js';
import type { StatFields } from '../../common/procStat.js';
import { readStat } from './processInfo.js';

export interface SocketOwnerIndexOptions {
  procRoot?: string;
  /** Pid scans allowed for one miss: bounds how long one packet can be held by the search. */
  maxScansPerMiss?: number;
  /** fds read per process: bounds one scan of a process with a huge fd table. */
  maxFdsPerPid?: number;
  /** fork/exec/exit as they happen; without them new pids are found by listing /proc. */
  events?: ProcessEventSource | null;
  /** The clock budgets are measured on (ms); default performance.now. */
  now?: () => number;
}

export interface PidRef {
  pid: number;
  startTime: number;
  /** The holder's stat when it was read after its fd was seen naming the socket, else null. */
  stat: StatFields | null;
  /**
   * Process events were drained after the fd was read, none lost: whatever the process did
   * up to then (exec, exit) has been dispatched to every listener.
   */
  eventsCurrent: boolean;
}

export interface SocketOwnerIndexCounters {
  /** Processes whose fd table was read. */
  scans: number;
  /** readlink calls on /proc/PID/fd/N, including hit verifications and guesses. */
  fdReads: number;
  /** Lookups answered from the index after verification. */
  hits: number;
  /** Lookups that had to search /proc. */
  misses: number;
  /** Misses answered by a guessed fd number of a candidate. */
  guessed: number;
  /** readlinks spent on guesses (part of fdReads). */
  guessReads: number;
  /** Processes read ahead of their first packet (learn()). */
  learned: number;
  /** Times /proc was listed. */
  listings: number;
  /** /proc/PID/stat reads (3 syscalls each), mostly to check a pid was not reused. */
  statReads: number;
  /** Searches stopped by their time budget (lookups that ended without an answer). */
  timeouts: number;
}

const DEFAULT_MAX_SCANS_PER_MISS = 4096;
const DEFAULT_MAX_FDS_PER_PID = 65536;
/** Programs started lately, not credited yet, tried first on a miss. */
const FRESH_CANDIDATES = 8;
/** A fresh candidate that was not the owner this many times is probably not a client at all. */
const FRESH_MISSES = 2;
/** Processes credited lately, tried next. */
const RECENT_CANDIDATES = 4;
/** readlinks one miss spends on guesses before it scans (~6 µs each). */
const GUESSES_PER_MISS = 8;
/** Lowest free fd numbers tried per candidate (the first may have gone to a file or pipe). */
const LOWEST_FREE_TRIES = 2;
/** Listings of huge fd tables left open to go on with, at most. */
const MAX_UNFINISHED_LISTINGS = 16;
/** fd links read between two looks at the clock (~6 µs each: ~0.2 ms). */
const FDS_PER_CLOCK_CHECK = 32;

export class SocketOwnerIndex implements ProcessEventListener {
  readonly counters: SocketOwnerIndexCounters = {
    scans: 0,
    fdReads: 0,
    hits: 0,
    misses: 0,
    guessed: 0,
    guessReads: 0,
    learned: 0,
    listings: 0,
    statReads: 0,
    timeouts: 0,
  };
  private readonly procRoot: string;
  private readonly maxScansPerMiss: number;
  private readonly maxFdsPerPid: number;
  private readonly events: ProcessEventSource | null;
  private readonly pids = new Map<number, ProcessFds>();
  /** Socket inode -> the pid we credit it to (verified again on every hit). */
  private readonly owners = new Map<number, number>();
  /** Socket inode -> the pids seen holding it, for sockets seen in more than one process. */
  private readonly shared = new Map<number, Set<number>>();
  /** Programs read ahead and not credited yet, oldest first. */
  private readonly fresh: number[] = [];
  /** Processes credited lately, most recent first. */
  private readonly recent: number[] = [];
  /** Pids seen (listed, forked, exec'd) but not scanned since -> /proc/PID's uid, or UNKNOWN_UID. */
  private readonly unscanned = new Map<number, number>();
  /** The last pid the kernel had handed out when /proc was last listed (-1: never listed). */
  private lastPidListed = -1;
  /** Events may have been lost: list /proc at the next miss. */
  private listingDue = true;
  private scansLeft = 0;
  private guessesLeft = 0;
  /** What the last successful sameProcess() read, null when events vouched instead. */
  private verified: StatFields | null = null;
  /** Bumped when events are lost: entries read before may have exited unseen. */
  private lossEpoch = 0;
  private readonly now: () => number;
  /** When the current lookup must stop searching (its budget), on this.now's clock. */
  private deadline = Infinity;
  /** The last findPid/findIn stopped at its deadline: "not found" means "not found in time". */
  private lastTimedOut = false;
  /** Pids whose fd listing ran out of time and is kept open, oldest first. */
  private readonly unfinishedListings = new Set<number>();

  constructor(options: SocketOwnerIndexOptions = {}) {
    this.procRoot = options.procRoot ?? '/proc';
    this.maxScansPerMiss = options.maxScansPerMiss ?? DEFAULT_MAX_SCANS_PER_MISS;
    this.maxFdsPerPid = options.maxFdsPerPid ?? DEFAULT_MAX_FDS_PER_PID;
    this.events = options.events ?? null;
    this.now = options.now ?? (() => performance.now());
    this.events?.subscribe(this);
  }

  /** Whether the last findPid/findIn gave up at its budget rather than searched everything. */
  get timedOut(): boolean {
    return this.lastTimedOut;
  }

  /** Pids the index currently knows (scanned at least once and not seen gone). */
  get trackedPids(): number {
    return this.pids.size;
  }

  /** Scans every process now (at startup, before packets wait on it); returns how many. */
  warm(): number {
    this.startLookup(Infinity);
    this.events?.drain();
    this.relist();
    const pids = [...this.unscanned.keys()];
    this.unscanned.clear();
    for (const pid of pids) this.scan(pid, -1, dirUid(this.procRoot, pid));
    return pids.length;
  }

  /**
   * Reads a process that has just started (ahead of its first packet) and makes it a
   * candidate. Returns it verified, or null when it has gone or is known already.
   */
  learn(pid: number): PidRef | null {
    if (this.pids.has(pid)) return null;
    this.startLookup(Infinity);
    this.unscanned.delete(pid);
    this.scansLeft = 1;
    this.scan(pid, -1, dirUid(this.procRoot, pid));
    const entry = this.pids.get(pid);
    if (entry === undefined || !this.sameProcess(pid, entry)) return null;
    this.counters.learned++;
    this.fresh.push(pid);
    if (this.fresh.length > FRESH_CANDIDATES) this.fresh.shift();
    return this.ref(pid, entry);
  }

  /**
   * The live process holding socket inode, or null when no process holds it.
   * uidHint (the socket's uid) decides which processes are searched first.
   */
  findPid(inode: number, uidHint: number | null, budgetMs = Infinity): PidRef | null {
    this.startLookup(budgetMs);
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
    this.scansLeft = this.maxScansPerMiss;
    this.guessesLeft = GUESSES_PER_MISS;
    this.events?.drain(); // forks, execs and exits up to now: no dead candidate is tried
    return (
      this.guessCandidates(inode, uidHint) ??
      this.searchNew(inode, uidHint) ??
      this.searchKnown(this.candidatesOf(uidHint), inode) ??
      this.searchKnown(this.rescanOrder(uidHint), inode) ??
      this.searchAfterListing(inode, uidHint)
    );
  }

  /**
   * pid when it holds socket inode now (verified as findPid's answers are), else null: the
   * process the kernel says connected the socket (callerMap.ts) is the only one credited.
   */
  findIn(pid: number, inode: number, budgetMs = Infinity): PidRef | null {
    this.startLookup(budgetMs);
    const entry = this.pids.get(pid);
    if (entry !== undefined && this.stillHolds(pid, entry, inode)) {
      this.counters.hits++;
      return this.credit(pid, entry, inode);
    }
    this.counters.misses++;
    this.scansLeft = 2; // a rescan, and a first scan if the pid turns out reused
    this.guessesLeft = GUESSES_PER_MISS;
    this.events?.drain(); // an exec or exit of pid up to now: forgotten, so not guessed at
    const known = this.pids.get(pid);
    if (known !== undefined) {
      // Where its new socket probably is (one readlink, usually), before reading its fd table.
      const found = known.reusesFds
        ? (this.guessReused(pid, known, inode, 0) ?? this.guessLowestFree(pid, known, inode, LOWEST_FREE_TRIES))
        : (this.guessLowestFree(pid, known, inode, LOWEST_FREE_TRIES) ?? this.guessReused(pid, known, inode, 0));
      if (found !== null) return found;
    }
    this.unscanned.delete(pid);
    return this.scan(pid, inode, UNKNOWN_UID);
  }

  /**
   * Other processes than pid seen holding socket inode, each verified to hold it still (one
   * readlink each). Only what fd tables read so far show: a process never read is not listed.
   */
  otherHolders(inode: number, pid: number): number[] {
    const pids = this.shared.get(inode);
    if (pids === undefined) return [];
    const others: number[] = [];
    for (const other of pids) {
      const entry = this.pids.get(other);
      if (other === pid || entry === undefined) continue;
      const fd = entry.sockets.get(inode);
      this.counters.fdReads++;
      if (fd !== undefined && readFdLink(this.procRoot, other, fd) === socketLink(inode)) others.push(other);
    }
    return others;
  }

  /**
   * Where pid's next socket probably is, most likely first: the fd that holds inode now, the
   * numbers of its latest sockets, its lowest fd number not open when last read, then the
   * other fds known to hold its sockets, lowest first.
   */
  likelySocketFds(pid: number, inode: number, max: number): number[] {
    const entry = this.pids.get(pid);
    if (entry === undefined) return [];
    const now = entry.sockets.get(inode);
    const fds = new Set([...(now === undefined ? [] : [now]), ...entry.socketFds, entry.lowestUnrecorded()]);
    for (const fd of [...entry.sockets.values()].sort((a, b) => a - b)) {
      if (fds.size >= max) break;
      fds.add(fd);
    }
    return [...fds].slice(0, max);
  }

  // ---- process events ----

  /** A pid we still know here would mean its exit was among lost events: it is new either way. */
  onFork(pid: number): void {
    this.forget(pid);
    this.unscanned.set(pid, UNKNOWN_UID);
  }

  /** A new program: most of the old fd table is gone (close-on-exec). Scan it as a new process. */
  onExec(pid: number): void {
    this.onFork(pid);
  }

  onExit(pid: number): void {
    this.forget(pid);
    this.unscanned.delete(pid);
  }

  onLost(): void {
    this.listingDue = true;
    this.lossEpoch++;
  }

  // ---- the search ----

  private startLookup(budgetMs: number): void {
    this.lastTimedOut = false;
    this.deadline = budgetMs === Infinity ? Infinity : this.now() + budgetMs;
  }

  /** The lookup's budget is spent: it stops, and says so (timedOut). */
  private outOfTime(): boolean {
    if (this.lastTimedOut) return true;
    if (this.deadline === Infinity || this.now() < this.deadline) return false;
    this.markTimedOut();
    return true;
  }

  private markTimedOut(): void {
    if (this.lastTimedOut) return;
    this.lastTimedOut = true;
    this.counters.timeouts++;
  }

  /** One readlink of the fd we saw it on plus one stat read: far cheaper than a scan. */
  private stillHolds(pid: number, entry: ProcessFds, inode: number): boolean {
    const fd = entry.sockets.get(inode);
    if (fd === undefined) return false;
    this.counters.fdReads++;
    if (readFdLink(this.procRoot, pid, fd) !== socketLink(inode)) return false;
    return this.sameProcess(pid, entry);
  }

  /**
   * pid is still the process entry describes (call it after reading the fd). With events:
   * no exit (nor exec) of it up to a drain made now, and none lost since its start time was
   * read. Else its start time, read again; if that changed, the pid was reused and
   * everything we knew about it is wrong.
   */
  private sameProcess(pid: number, entry: ProcessFds): boolean {
    if (this.eventsVouch(entry)) {
      this.events?.drain();
      if (this.pids.get(pid) !== entry) return false; // it exited or exec'd: forgotten meanwhile
      if (this.eventsVouch(entry)) {
        this.verified = null;
        return true;
      }
    }
    this.counters.statReads++;
    const stat = readStat(pid, this.procRoot);
    if (stat !== null && stat.startTime === entry.startTime) {
      this.verified = stat;
      entry.epoch = this.lossEpoch;
      return true;
    }
    this.requeue(pid);
    return false;
  }

  /** Whether pid's owner (as far as we know it) may hold a socket of uid uidHint. */
  private mayHold(pid: number, uidHint: number | null): boolean {
    return mayBelongTo(this.pids.get(pid)?.uid ?? UNKNOWN_UID, uidHint);
  }

  private eventsVouch(entry: ProcessFds): boolean {
    return this.events !== null && this.events.isOpen && entry.epoch === this.lossEpoch;
  }

  private ref(pid: number, entry: ProcessFds): PidRef {
    return { pid, startTime: entry.startTime, stat: this.verified, eventsCurrent: this.verified === null };
  }

  /**
   * Step 1: a few readlinks on the fd numbers the candidates' new sockets probably have:
   * first the one guess that served each recent owner last time (a busy client is answered
   * by its first readlink), then each program read ahead, then the recent owners' other
   * guesses.
   */
  private guessCandidates(inode: number, uidHint: number | null): PidRef | null {
    const recent = this.recent.filter((pid) => this.mayHold(pid, uidHint));
    for (const pid of recent) {
      const entry = this.pids.get(pid);
      const found = entry === undefined ? null : entry.reusesFds ? this.guessReused(pid, entry, inode, 0, 1) : this.guessLowestFree(pid, entry, inode, 1);
      if (found !== null || this.guessesLeft <= 0) return found;
    }
    for (const pid of this.fresh.slice()) {
      const entry = this.pids.get(pid);
      if (entry === undefined || !mayBelongTo(entry.uid, uidHint)) continue;
      const found = this.guessLowestFree(pid, entry, inode, 1);
      if (found !== null || this.guessesLeft <= 0) return found;
      if (++entry.freshMisses >= FRESH_MISSES) this.drop(this.fresh, pid);
    }
    for (const pid of recent) {
      const entry = this.pids.get(pid);
      if (entry === undefined) continue;
      const found = entry.reusesFds
        ? (this.guessReused(pid, entry, inode, 1) ?? this.guessLowestFree(pid, entry, inode, 1))
        : (this.guessLowestFree(pid, entry, inode, LOWEST_FREE_TRIES - 1) ?? this.guessReused(pid, entry, inode, 0));
      if (found !== null || this.guessesLeft <= 0) return found;
    }
    return null;
  }

  /** The fd numbers its latest sockets had, from the from-th (to before the to-th). */
  private guessReused(pid: number, entry: ProcessFds, inode: number, from: number, to?: number): PidRef | null {
    for (const fd of entry.socketFds.slice(from, to)) {
      if (this.guessesLeft <= 0 || !this.pids.has(pid)) return null;
      if (this.guess(pid, entry, fd) === inode) return this.guessed(pid, entry, inode, true);
    }
    return null;
  }

  /**
   * Walks up from the lowest fd number not open when we last looked, until one is free (the
   * socket would have taken that number: the walk is over for this miss).
   */
  private guessLowestFree(pid: number, entry: ProcessFds, inode: number, tries: number): PidRef | null {
    for (let i = 0; i < tries && this.guessesLeft > 0 && entry.walkEndedAtMiss !== this.counters.misses && this.pids.has(pid); i++) {
      const found = this.guess(pid, entry, entry.lowestUnrecorded());
      if (found === inode) return this.guessed(pid, entry, inode, false);
      if (found === null) entry.walkEndedAtMiss = this.counters.misses;
    }
    return null;
  }

  /** Reads one fd link and records it: its socket inode, 0 (not a socket) or null (not open). */
  private guess(pid: number, entry: ProcessFds, fd: number): number | null {
    this.guessesLeft--;
    this.counters.fdReads++;
    this.counters.guessReads++;
    const link = readFdLink(this.procRoot, pid, fd);
    const socket = link === null ? null : socketInode(link);
    this.record(pid, entry, fd, socket);
    return socket;
  }

  private guessed(pid: number, entry: ProcessFds, inode: number, reused: boolean): PidRef | null {
    if (!this.sameProcess(pid, entry)) return null;
    entry.reusesFds = reused;
    this.counters.guessed++;
    return this.credit(pid, entry, inode);
  }

  /** Step 2: processes not scanned yet, the socket uid's first, then the highest pids. */
  private searchNew(inode: number, uidHint: number | null): PidRef | null {
    if (this.events === null || !this.events.isOpen) {
      if (this.pidsCreatedSinceListing()) this.relist();
    } else if (this.listingDue) {
      this.relist();
    }
    return this.searchUnscanned(inode, uidHint);
  }

  /** Nothing found while events told us which pids are new: list /proc in case they missed one. */
  private searchAfterListing(inode: number, uidHint: number | null): PidRef | null {
    if (this.events === null || this.scansLeft <= 0 || this.outOfTime()) return null;
    this.relist();
    return this.searchUnscanned(inode, uidHint);
  }

  private searchUnscanned(inode: number, uidHint: number | null): PidRef | null {
    if (this.unscanned.size === 0) return null;
    const newestFirst = [...this.unscanned.keys()].sort((a, b) => b - a);
    // With several candidates, another user's processes wait for a second pass; each uid is
    // read once (one stat), when first needed.
    const sortByUid = uidHint !== null && newestFirst.length > 1;
    const otherUsers: number[] = [];
    for (const pid of newestFirst) {
      let uid = this.unscanned.get(pid) ?? UNKNOWN_UID;
      if (sortByUid) {
        if (uid === UNKNOWN_UID) uid = dirUid(this.procRoot, pid);
        if (uid !== uidHint) {
          this.unscanned.set(pid, uid);
          otherUsers.push(pid);
          continue;
        }
      }
      const found = this.scanUnscanned(pid, uid, inode);
      if (found !== undefined) return found;
    }
    for (const pid of otherUsers) {
      const found = this.scanUnscanned(pid, this.unscanned.get(pid) ?? UNKNOWN_UID, inode);
      if (found !== undefined) return found;
    }
    return null;
  }

  /** The holder, or null when out of scans, or undefined to go on searching. */
  private scanUnscanned(pid: number, uid: number, inode: number): PidRef | null | undefined {
    if (this.scansLeft <= 0 || this.outOfTime()) return null;
    this.unscanned.delete(pid);
    return this.scan(pid, inode, uid) ?? undefined;
  }

  private searchKnown(order: readonly number[], inode: number): PidRef | null {
    for (const pid of order) {
      if (this.scansLeft <= 0 || this.outOfTime()) return null;
      if (this.pids.get(pid)?.scannedAtMiss === this.counters.misses) continue; // read already
      const found = this.scan(pid, inode, UNKNOWN_UID);
      if (found !== null) return found;
    }
    return null;
  }

  private candidatesOf(uidHint: number | null): number[] {
    return this.recent.concat(this.fresh).filter((pid) => this.mayHold(pid, uidHint));
  }

  /** The socket uid's processes first, newest first within each group. */
  private rescanOrder(uidHint: number | null): number[] {
    const order = [...this.pids.keys()];
    if (uidHint === null) return order.sort((a, b) => b - a);
    const mayBe = new Set(order.filter((pid) => this.mayHold(pid, uidHint)));
    return order.sort((a, b) => (mayBe.has(a) === mayBe.has(b) ? b - a : mayBe.has(a) ? -1 : 1));
  }

  // ---- reading one process ----

  /**
   * Reads pid's fd table and records its sockets; returns the pid when it holds inode
   * (-1: look for nothing, record everything). uid is /proc/PID's owner if already read.
   */
  private scan(pid: number, inode: number, uid: number): PidRef | null {
    // Listing a huge fd table alone can cost more than a packet's whole budget.
    if (this.outOfTime()) return null;
    const entry = this.pids.get(pid);
    return entry === undefined ? this.firstScan(pid, inode, uid) : this.rescan(pid, entry, inode);
  }

  /**
   * Reads the fds from the highest number down (a new socket is usually the newest fd) and
   * stops at the socket; the fds not read yet are read by a later rescan if needed.
   */
  private firstScan(pid: number, inode: number, uid: number): PidRef | null {
    this.counters.scans++;
    this.scansLeft--;
    this.counters.statReads++;
    const epoch = this.lossEpoch;
    const stat = readStat(pid, this.procRoot);
    const listing = stat === null ? null : FdListing.open(this.procRoot, pid);
    if (stat === null || listing === null) return null;
    // Events vouch for it only if it had not exited when its start time was read: it was
    // alive then (we read its stat), and an exit after that comes as an event.
    const entry = new ProcessFds(stat.startTime, uid, this.counters.misses, this.events !== null && this.events.isOpen ? epoch : -1);
    this.pids.set(pid, entry);
    const names = this.list(pid, entry, listing);
    if (names === null) return null;
    if (!this.readFds(pid, entry, entry.list(names, this.maxFdsPerPid), inode)) return null;
    // The pid may have died and been reused while we read its fds: check it is still the same.
    return this.sameProcess(pid, entry) ? this.credit(pid, entry, inode) : null;
  }

  /** Reads the fds not read before first, then those that held sockets, then the rest. */
  private rescan(pid: number, entry: ProcessFds, inode: number): PidRef | null {
    this.counters.scans++;
    this.scansLeft--;
    entry.scannedAtMiss = this.counters.misses;
    if (entry.unfinished !== null) return this.goOn(pid, entry, inode, entry.unfinished);
    const listing = entry.listing ?? FdListing.open(this.procRoot, pid);
    entry.listing = null;
    if (listing === null) {
      this.forget(pid);
      return null;
    }
    const names = this.list(pid, entry, listing);
    if (names === null) return null;
    const { order, closed } = entry.rescanOrder(names);
    for (const fd of closed) this.record(pid, entry, fd, null);
    if (!this.readFds(pid, entry, order, inode)) return null;
    // Not found: the process there now does not hold it, whichever process that is. Found:
    // if the start time changed, the pid was reused; the process there now gets a first scan.
    if (this.sameProcess(pid, entry)) return this.credit(pid, entry, inode);
    return this.firstScan(pid, inode, UNKNOWN_UID);
  }

  /** The whole listing, or null: out of time (kept on the entry to go on with) or the process went. */
  private list(pid: number, entry: ProcessFds, listing: FdListing): string[] | null {
    const done = listing.continue(() => this.outOfTime());
    this.unfinishedListings.delete(pid);
    if (done === true) return listing.names;
    if (done === null) {
      this.forget(pid);
      return null;
    }
    // Kept open to go on with; a few at most (each holds a descriptor): the oldest is dropped.
    entry.listing = listing;
    this.unfinishedListings.add(pid);
    if (this.unfinishedListings.size > MAX_UNFINISHED_LISTINGS) {
      const oldest = this.unfinishedListings.values().next().value as number;
      this.unfinishedListings.delete(oldest);
      const other = this.pids.get(oldest);
      other?.listing?.close();
      if (other !== undefined) other.listing = null;
    }
    return null;
  }

  /**
   * Reads the fds an earlier scan left unread, from its listing. Found: verified as ever. Not
   * found: that proves nothing (the listing is old, a new fd may be missing), so the lookup
   * counts as out of time, and the next scan lists the table afresh.
   */
  private goOn(pid: number, entry: ProcessFds, inode: number, unfinished: number[]): PidRef | null {
    entry.unfinished = null;
    if (this.readFds(pid, entry, unfinished, inode)) {
      if (this.sameProcess(pid, entry)) return this.credit(pid, entry, inode);
      return this.firstScan(pid, inode, UNKNOWN_UID);
    }
    this.markTimedOut();
    return null;
  }

  /** Records the answer; pid becomes the first recent candidate for the next miss. */
  private credit(pid: number, entry: ProcessFds, inode: number): PidRef {
    this.owners.set(inode, pid);
    this.drop(this.fresh, pid);
    this.drop(this.recent, pid);
    this.recent.unshift(pid);
    if (this.recent.length > RECENT_CANDIDATES) this.recent.pop();
    return this.ref(pid, entry);
  }

  private drop(list: number[], pid: number): void {
    const at = list.indexOf(pid);
    if (at >= 0) list.splice(at, 1);
  }

  /** Reads fd links in order; true (and stops) once one names inode (-1: read them all). */
  private readFds(pid: number, entry: ProcessFds, fds: readonly number[], inode: number): boolean {
    const limit = Math.min(fds.length, this.maxFdsPerPid);
    for (let i = 0; i < limit; i++) {
      const fd = fds[i]!;
      // Out of time: what was read stays recorded, and the next scan goes on from here.
      if (i % FDS_PER_CLOCK_CHECK === FDS_PER_CLOCK_CHECK - 1 && this.outOfTime()) {
        entry.unfinished = fds.slice(i, limit);
        return false;
      }
      this.counters.fdReads++;
      const link = readFdLink(this.procRoot, pid, fd);
      const socket = link === null ? null : socketInode(link);
      this.record(pid, entry, fd, socket);
      if (socket === inode && inode > 0) return true;
    }
    return false;
  }

  /** Sets what fd holds now (a socket inode, 0: not a socket, null: closed), and who owns what. */
  private record(pid: number, entry: ProcessFds, fd: number, inode: number | null): void {
    const previous = entry.fds.get(fd);
    if (previous === inode) return;
    entry.set(fd, inode);
    if (previous !== undefined && previous > 0) {
      if (this.owners.get(previous) === pid) this.owners.delete(previous);
      this.unshare(previous, pid);
    }
    if (inode === null || inode <= 0) return;
    // A socket shared across fork() keeps the holder found first (the newest, by scan order).
    const holder = this.owners.get(inode);
    if (holder === undefined || this.pids.get(holder)?.sockets.has(inode) !== true) this.owners.set(inode, pid);
    else if (holder !== pid) this.shared.set(inode, (this.shared.get(inode) ?? new Set([holder])).add(pid));
  }

  private unshare(inode: number, pid: number): void {
    const pids = this.shared.get(inode);
    if (pids === undefined) return;
    pids.delete(pid);
    if (pids.size < 2) this.shared.delete(inode);
  }

  /** A reused pid is a new process: scan it as one, before the known ones. */
  private requeue(pid: number): void {
    this.forget(pid);
    this.unscanned.set(pid, UNKNOWN_UID);
  }

  private forget(pid: number): void {
    const entry = this.pids.get(pid);
    if (entry === undefined) return;
    entry.listing?.close();
    entry.listing = null;
    this.unfinishedListings.delete(pid);
    for (const inode of entry.sockets.keys()) {
      if (this.owners.get(inode) === pid) this.owners.delete(inode);
      this.unshare(inode, pid);
    }
    this.pids.delete(pid);
    this.drop(this.fresh, pid);
    this.drop(this.recent, pid);
  }

  // ---- listing /proc ----

  private pidsCreatedSinceListing(): boolean {
    const lastPid = lastPidHandedOut(this.procRoot);
    if (lastPid === null) return true;
    if (lastPid === this.lastPidListed) return false;
    this.lastPidListed = lastPid;
    return true;
  }

  /** Lists /proc: forgets pids that have gone, queues the new ones for a first scan. */
  private relist(): void {
    this.counters.listings++;
    this.listingDue = false;
    const listed = listPids(this.procRoot);
    const alive = new Set(listed);
    for (const pid of [...this.pids.keys()]) if (!alive.has(pid)) this.forget(pid);
    for (const pid of [...this.unscanned.keys()]) if (!alive.has(pid)) this.unscanned.delete(pid);
    for (const pid of listed) if (!this.pids.has(pid) && !this.unscanned.has(pid)) this.unscanned.set(pid, UNKNOWN_UID);
  }
}

/** A process of this uid may hold a socket of uidHint's: the same uid, or one not read yet. */
function mayBelongTo(uid: number, uidHint: number | null): boolean {
  return uidHint === null || uid === uidHint || uid === UNKNOWN_UID;
}
