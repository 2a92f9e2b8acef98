// The /proc reads behind the socket owner index. Each is one or a few syscalls (4-12 µs each
// here, ~5 µs more when Node has to build an exception), and each answers null or -1 instead
// of throwing when the process has gone: processes exit in the middle of every search.

import { opendirSync, readdirSync, readlinkSync, statSync, type Dir } from 'node:fs';
import { isDeniedError, isGoneError, readProcFile } from './processInfo.js';

const SOCKET_LINK_PREFIX = 'socket:[';

/** The inode of a "socket:[N]" fd link; 0 for anything else (files, pipes, anon inodes). */
export function socketInode(link: string): number {
  return link.startsWith(SOCKET_LINK_PREFIX) ? Number(link.slice(SOCKET_LINK_PREFIX.length, -1)) : 0;
}

/** The fd link text that names socket inode. */
export function socketLink(inode: number): string {
  return `${SOCKET_LINK_PREFIX}${inode}]`;
}

/** Entries read between two looks at the clock (one getdents call; ~1 ms for /proc/PID/fd). */
const LISTING_CHUNK = 256;

/**
 * A listing of /proc/PID/fd read in steps: listing 20,000 fds costs ~20-30 ms, more than one
 * packet may wait, so it stops when told and goes on at a later packet's lookup.
 */
export class FdListing {
  readonly names: string[] = [];
  private constructor(private dir: Dir | null) {}

  /** null once the process has exited; a process we may not look into lists nothing. */
  static open(procRoot: string, pid: number): FdListing | null {
    try {
      return new FdListing(opendirSync(`${procRoot}/${pid}/fd`, { bufferSize: LISTING_CHUNK }));
    } catch (err) {
      if (isGoneError(err)) return null;
      if (isDeniedError(err)) return new FdListing(null);
      throw err;
    }
  }

  /** Reads on: true once complete, false when outOfTime() stopped it, null if the process went. */
  continue(outOfTime: () => boolean): boolean | null {
    const dir = this.dir;
    if (dir === null) return true;
    for (;;) {
      for (let i = 0; i < LISTING_CHUNK; i++) {
        let entry;
        try {
          entry = dir.readSync();
        } catch {
          this.close();
          return null;
        }
        if (entry === null) {
          this.close();
          return true;
        }
        this.names.push(entry.name);
      }
      if (outOfTime()) return false;
    }
  }

  close(): void {
    try {
      this.dir?.closeSync();
    } catch {
      // closed already
    }
    this.dir = null;
  }
}

/** The link text, or null when the fd (or the process) is gone or hidden from us. */
export function readFdLink(procRoot: string, pid: number, fd: number): string | null {
  try {
    return readlinkSync(`${procRoot}/${pid}/fd/${fd}`);
  } catch (err) {
    if (isGoneError(err) || isDeniedError(err)) return null;
    throw err;
  }
}

/** Owner of /proc/PID (the process's euid), or -1 once it has exited. */
export function dirUid(procRoot: string, pid: number): number {
  try {
    return statSync(`${procRoot}/${pid}`).uid;
  } catch {
    return -1;
  }
}

/** Numeric entries of /proc (processes, not threads). */
export function listPids(procRoot: string): number[] {
  let names: string[];
  try {
    names = readdirSync(procRoot);
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const name of names) {
    const code = name.charCodeAt(0);
    if (code >= 48 && code <= 57) pids.push(Number(name));
  }
  return pids;
}

/**
 * The last pid the kernel handed out (to a process or a thread): /proc/loadavg's last field.
 * One small read tells whether listing /proc (~100 µs with 120 processes) can find anything
 * new. null when it cannot be read (a fake procRoot): then list every time.
 */
export function lastPidHandedOut(procRoot: string): number | null {
  try {
    const lastPid = Number(readProcFile(`${procRoot}/loadavg`).trimEnd().split(' ').pop());
    return Number.isInteger(lastPid) ? lastPid : null;
  } catch {
    return null;
  }
}
