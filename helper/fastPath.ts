// The JS half of the queue's fast path (native/src/fast_path.h). A process whose connection
// the helper just answered from the verdict cache is armed in the addon with that verdict, so
// its next new connections to the same protocol and port are answered before JS runs; JS only
// reports them, a little later, in bulk. Entries come only from the verdict cache, expire with
// it, and are dropped whenever it changes and on every fork, exec or exit of their pid (all of
// them when process events were lost). The addon itself refuses to answer while events are
// unread, so an exec it has not yet been told about cannot slip through.
import type { ProcessInfo } from '../common/types.js';
import type { ProcessEventListener, ProcessEventSource } from './identify/procEvents.js';
import type { FastPathEntry, PacketQueue, QueuedPacket } from './queue.js';

/** Processes armed here at most: more than the addon keeps (8), so each of its entries is known here. */
const PROCESSES_KEPT = 64;
/**
 * A process's (protocol, port) is re-armed at most this often. A program with many sockets at
 * once defeats the addon's few fd guesses, and its packets keep coming back to JS: re-arming
 * each of them would cost more than the fast path saves.
 */
const REARM_INTERVAL_MS = 100;
const MAX_TOKEN = 0xffffffff;
/** (protocol, port) pairs whose arming time is kept per process; more start the record afresh. */
const PORTS_TIMED = 16;
/**
 * Armings replaced or dropped whose answered packets may still wait in the addon (its reader
 * thread answers while JS runs), kept until a take has collected them; beyond this many the
 * oldest is forgotten and its late packets are reported without a process.
 */
const RETIRED_KEPT = 256;
/** Takes per collection at most: what waited when it began is in the first few. */
const TAKES_PER_COLLECTION = 32;

const portKey = (protocol: number, port: number): number => (protocol << 16) | port;

export class FastPath implements ProcessEventListener {
  /** Arming token -> the process it armed, for the reports of what the addon answered. */
  private readonly armed = new Map<number, ProcessInfo>();
  /** Tokens no longer armed, with their process, oldest first (RETIRED_KEPT). */
  private readonly retired = new Map<number, ProcessInfo>();
  /** pid -> its current arming token, oldest arming first. */
  private readonly tokenOfPid = new Map<number, number>();
  /** pid -> when each of its (protocol, port) was last armed, by portKey. */
  private readonly armedAt = new Map<number, Map<number, number>>();
  private nextToken = 1;
  /** fd numbers the addon tries per process at most. */
  readonly fdsPerProcess: number;

  constructor(
    private readonly queue: PacketQueue,
    /** Without them nothing tells a pid's exec or exit: nothing is armed once they are closed. */
    private readonly events: ProcessEventSource,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.fdsPerProcess = queue.fastPathFds;
  }

  /** Whether arming (pid, protocol, port) now would do anything: false if armed lately. */
  wantsArming(pid: number, protocol: number, port: number): boolean {
    const at = this.armedAt.get(pid)?.get(portKey(protocol, port));
    return at === undefined || this.now() - at >= REARM_INTERVAL_MS;
  }

  arm(info: ProcessInfo, entry: Omit<FastPathEntry, 'pid' | 'token'>): void {
    if (entry.ttlMs < 1 || entry.fds.length === 0 || !this.events.isOpen) return;
    // Re-arming refreshes the addon's entry (keeping what it learned); the token changes only
    // when the process is described anew.
    let token = this.tokenOfPid.get(info.pid);
    if (token === undefined || this.armed.get(token) !== info) {
      this.retire(info.pid);
      if (this.tokenOfPid.size >= PROCESSES_KEPT) {
        const oldest = this.tokenOfPid.keys().next();
        if (oldest.done !== true) this.disarm(oldest.value);
      }
      token = this.nextToken;
      this.nextToken = token === MAX_TOKEN ? 1 : token + 1;
      this.armed.set(token, info);
      this.tokenOfPid.set(info.pid, token);
    }
    let ports = this.armedAt.get(info.pid);
    if (ports === undefined || ports.size >= PORTS_TIMED) this.armedAt.set(info.pid, (ports = new Map()));
    ports.set(portKey(entry.protocol, entry.port), this.now());
    // Refused (the process has gone, say): nothing of it may stay here either.
    if (this.queue.armFastPath({ ...entry, pid: info.pid, token }) !== 0) this.disarm(info.pid);
  }

  /**
   * Hands report every packet the addon answered since the last call, with the process its
   * arming named. Armings retired before this call are forgotten after it: every packet they
   * answered was in the addon's list by the time they were retired. Returns false when more
   * were still coming in after TAKES_PER_COLLECTION takes: the addon tells JS again only once
   * its list has been emptied, so the caller must collect again.
   */
  takeAnswered(report: (packet: QueuedPacket, process: ProcessInfo | null) => void): boolean {
    const retiredBefore = [...this.retired.keys()];
    try {
      for (let take = 0; take < TAKES_PER_COLLECTION; take++) {
        const { packets, count } = this.queue.takeFastAnswered();
        if (count <= 0) return true;
        for (let i = 0; i < count; i++) {
          const token = packets[i]!.fastToken;
          report(packets[i]!, this.armed.get(token) ?? this.retired.get(token) ?? null);
        }
      }
      return false;
    } finally {
      for (const token of retiredBefore) this.retired.delete(token);
    }
  }

  /** Every entry: the verdicts they carry may no longer hold. */
  clear(): void {
    this.queue.disarmFastPath();
    for (const pid of [...this.tokenOfPid.keys()]) this.retire(pid);
  }

  /** The parent too: its child shares its sockets and may exec another program. */
  onFork(pid: number, ppid: number): void {
    this.disarm(pid);
    this.disarm(ppid);
  }

  onExec(pid: number): void {
    this.disarm(pid);
  }

  onExit(pid: number): void {
    this.disarm(pid);
  }

  onLost(): void {
    this.clear();
  }

  private disarm(pid: number): void {
    if (!this.tokenOfPid.has(pid)) return;
    this.queue.disarmFastPath(pid);
    this.retire(pid);
  }

  private retire(pid: number): void {
    this.armedAt.delete(pid);
    const token = this.tokenOfPid.get(pid);
    if (token === undefined) return;
    this.tokenOfPid.delete(pid);
    const info = this.armed.get(token);
    this.armed.delete(token);
    if (info === undefined) return;
    if (this.retired.size >= RETIRED_KEPT) {
      const oldest = this.retired.keys().next();
      if (oldest.done !== true) this.retired.delete(oldest.value);
    }
    this.retired.set(token, info);
  }
}
