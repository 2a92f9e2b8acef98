// The identify stage: packet 5-tuple -> socket (inode, uid) -> pid -> what the process is.
// Exact sock_diag lookup first (~60 µs); /proc/net only when sock_diag is unavailable.

import { readlinkSync } from 'node:fs';
import { IPPROTO } from '../../common/types.js';
import type { Attribution, IpFamily, ProcessInfo, SocketOwner } from '../../common/types.js';
import { lookupProcNet } from './procNet.js';
import { isDeniedError, readProcessInfo } from './processInfo.js';
import { SocketOwnerIndex } from './socketOwnerIndex.js';
import type { SocketOwnerIndexOptions } from './socketOwnerIndex.js';

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
  index?: Omit<SocketOwnerIndexOptions, 'procRoot'>;
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

export class ProcessResolver {
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

  constructor(options: ProcessResolverOptions) {
    this.lookupSocket = options.lookupSocket;
    this.procRoot = options.procRoot ?? '/proc';
    this.ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
    this.now = options.now ?? Date.now;
    this.maxCacheEntries = options.maxCacheEntries ?? DEFAULT_MAX_CACHE_ENTRIES;
    this.index = new SocketOwnerIndex({ ...options.index, procRoot: this.procRoot });
  }

  resolve(
    family: IpFamily,
    protocol: number,
    src: Uint8Array,
    srcPort: number,
    dst: Uint8Array,
    dstPort: number,
  ): Resolution {
    const started = process.hrtime.bigint();
    const result = this.resolveUntimed(family, protocol, src, srcPort, dst, dstPort);
    result.lookupMicros = Number(process.hrtime.bigint() - started) / 1000;
    return result;
  }

  private resolveUntimed(
    family: IpFamily,
    protocol: number,
    src: Uint8Array,
    srcPort: number,
    dst: Uint8Array,
    dstPort: number,
  ): Resolution {
    if (protocol !== IPPROTO.TCP && protocol !== IPPROTO.UDP) return outcome('unsupported', null, 0, -1);
    let via: Attribution = 'sock_diag';
    let owner = this.lookupSocket(family, protocol, src, srcPort, dst, dstPort);
    if (owner === 'unavailable') {
      via = 'proc_net';
      owner = lookupProcNet(family, protocol, src, srcPort, dst, dstPort, this.procRoot);
    }
    if (owner === null) return outcome('not_found', null, 0, -1);
    // Orphaned, TIME_WAIT and kernel sockets have no inode: nothing in user space sent it.
    if (owner.inode === 0) return outcome('no_socket', null, 0, owner.uid);

    const now = this.now();
    this.evictExpired(now);
    // Never trust a cached owner blindly: the index re-checks that the pid holds the socket.
    for (let attempt = 0; attempt < 2; attempt++) {
      const holder = this.index.findPid(owner.inode, owner.uid);
      if (holder === null) break;
      const cached = this.byInode.get(owner.inode);
      if (cached !== undefined && this.stillCurrent(cached, holder.pid, holder.startTime)) {
        return outcome('cache', cached.info, owner.inode, owner.uid);
      }
      const info = this.processDetails(holder.pid, holder.startTime, now);
      if (info === null) continue; // exited (or pid reused) since the index saw it: look again
      remember(this.byInode, owner.inode, info, now + this.ttlMs, this.maxCacheEntries);
      return outcome(via, info, owner.inode, owner.uid);
    }
    return outcome('process_gone', null, owner.inode, owner.uid);
  }

  /** Details for a pid the index just verified, from the per-pid cache when still valid. */
  private processDetails(pid: number, startTime: number, now: number): ProcessInfo | null {
    const cached = this.byPid.get(pid);
    if (cached !== undefined && this.stillCurrent(cached, pid, startTime)) return cached.info;
    const info = readProcessInfo(pid, this.procRoot);
    if (info === null || info.startTime !== startTime) return null;
    remember(this.byPid, pid, info, now + this.ttlMs, this.maxCacheEntries);
    return info;
  }

  /** Same process (pid and start time) and the same program (no execve since). */
  private stillCurrent(cached: Cached, pid: number, startTime: number): boolean {
    return cached.info.pid === pid && cached.info.startTime === startTime && this.exeLink(pid) === cached.exeLink;
  }

  /** The raw link, '' when we may not read it (as readProcessInfo reports it), null once gone. */
  private exeLink(pid: number): string | null {
    try {
      return readlinkSync(`${this.procRoot}/${pid}/exe`);
    } catch (err) {
      return isDeniedError(err) ? '' : null;
    }
  }

  /** Entries are appended in expiry order (one TTL for all), so the oldest sit at the front. */
  private evictExpired(now: number): void {
    for (const cache of [this.byInode, this.byPid]) {
      for (const [key, entry] of cache) {
        if (entry.expiresAt > now) break;
        cache.delete(key);
      }
    }
  }
}

function remember(cache: Map<number, Cached>, key: number, info: ProcessInfo, expiresAt: number, max: number): void {
  cache.delete(key); // re-insert at the back to keep expiry order
  if (cache.size >= max) {
    const oldest = cache.keys().next();
    if (oldest.done !== true) cache.delete(oldest.value);
  }
  cache.set(key, { info, exeLink: rawExeLink(info), expiresAt });
}

/** What readlink(/proc/PID/exe) returned when info was read. */
function rawExeLink(info: ProcessInfo): string {
  return info.exeDeleted ? `${info.exe} (deleted)` : info.exe;
}

function outcome(
  attribution: Attribution,
  process: ProcessInfo | null,
  socketInode: number,
  socketUid: number,
): Resolution {
  return { attribution, process, socketInode, socketUid, lookupMicros: 0 };
}
