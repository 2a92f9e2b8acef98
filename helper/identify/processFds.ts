// What the socket owner index knows of one process: the start time that tells it from a
// later process with the same pid, and what each fd held when last read. Bookkeeping only:
// no /proc access here.
import type { FdListing } from './procFds.js';

/** An fd listed in /proc/PID/fd but whose link has not been read. */
export const UNREAD = -1;
/** A uid not read yet. */
export const UNKNOWN_UID = -1;
/** fd numbers remembered as likely places for the process's next socket. */
const SOCKET_FDS_KEPT = 2;

export class ProcessFds {
  /** fd number -> socket inode, 0 for an fd that is not a socket, UNREAD if listed but not read. */
  readonly fds = new Map<number, number>();
  /** Socket inode -> fd number: the reverse of fds, so a hit is verified with one readlink. */
  readonly sockets = new Map<number, number>();
  /** fd numbers that held this process's latest sockets, most recent first. */
  readonly socketFds: number[] = [];
  /** Its last new socket reused an earlier socket's fd number: guess those numbers first. */
  reusesFds = false;
  /** Misses that guessed at it as a program read ahead without finding the socket. */
  freshMisses = 0;
  /** The miss during which its lowest-free-fd walk found a free number (and so ended). */
  walkEndedAtMiss = -1;
  /**
   * The fds a scan that ran out of time had still to read: the next scan goes on with them
   * instead of listing the table again (listing 20,000 fds alone costs ~25 ms).
   */
  unfinished: number[] | null = null;
  /** A listing of its fd table that ran out of time, to go on with. */
  listing: FdListing | null = null;

  constructor(
    readonly startTime: number,
    /** Owner of /proc/PID (the process's euid), or UNKNOWN_UID: only orders the search. */
    readonly uid: number,
    /** The miss (index counters.misses) during which it was last read. */
    public scannedAtMiss: number,
    /** The index's loss epoch when startTime was read (-1: no events vouch for it). */
    public epoch: number,
  ) {}

  /** Lists fd names (at most limit) as not read yet; returns them highest first. */
  list(names: readonly string[], limit: number): number[] {
    const highestFirst: number[] = [];
    for (let i = Math.min(names.length, limit) - 1; i >= 0; i--) {
      const fd = Number(names[i]);
      this.fds.set(fd, UNREAD);
      highestFirst.push(fd);
    }
    return highestFirst;
  }

  /** Sets what fd holds now (a socket inode, 0: not a socket, null: closed). */
  set(fd: number, inode: number | null): void {
    const previous = this.fds.get(fd);
    if (previous !== undefined && previous > 0) this.sockets.delete(previous);
    if (inode === null) {
      this.fds.delete(fd);
      return;
    }
    this.fds.set(fd, inode);
    if (inode <= 0) return;
    this.sockets.set(inode, fd);
    const at = this.socketFds.indexOf(fd);
    if (at >= 0) this.socketFds.splice(at, 1);
    this.socketFds.unshift(fd);
    if (this.socketFds.length > SOCKET_FDS_KEPT) this.socketFds.pop();
  }

  /** The lowest fd number not open when we last looked: where socket() puts a new socket. */
  lowestUnrecorded(): number {
    let fd = 0;
    while (this.fds.has(fd)) fd++;
    return fd;
  }

  /**
   * For a rescan of the fd names listed now: fds not read before first (highest first), then
   * those that held a socket (a closed socket's number is the lowest free one, which
   * socket() hands out next), then the rest; and the fds we knew that are closed now.
   */
  rescanOrder(names: readonly string[]): { order: number[]; closed: number[] } {
    const open = new Set<number>();
    const fresh: number[] = [];
    const wasSocket: number[] = [];
    const other: number[] = [];
    for (const name of names) {
      const fd = Number(name);
      open.add(fd);
      const inode = this.fds.get(fd);
      (inode === undefined || inode === UNREAD ? fresh : inode > 0 ? wasSocket : other).push(fd);
    }
    const closed = [...this.fds.keys()].filter((fd) => !open.has(fd));
    return { order: fresh.reverse().concat(wasSocket, other), closed };
  }
}
