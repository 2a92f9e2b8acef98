// What the firewall shows about a process: read from /proc/PID on the per-packet path.
// Synchronous on purpose: the packet is held until we answer, and an open/read/close of a
// /proc file costs ~16 µs synchronously (readFileSync: ~50 µs, it stats and grows a buffer).

import { closeSync, existsSync, lstatSync, openSync, readSync, readlinkSync, statSync } from 'node:fs';
import { parseStat, type StatFields } from '../../common/procStat.js';
import type { ExeIdentity, ProcessInfo } from '../../common/types.js';
import { appIdFromCgroup } from './appId.js';

/** The kernel appends this to /proc/PID/exe once the binary has been unlinked. */
const DELETED_SUFFIX = ' (deleted)';

/** /proc/PID/cmdline can be as long as ARG_MAX; what a rule or a prompt needs fits in this. */
export const MAX_CMDLINE_BYTES = 64 * 1024;

/** stat and status are well under 4 KiB; one buffer, allocated once, serves every read. */
const readBuffer = Buffer.allocUnsafe(MAX_CMDLINE_BYTES);

/** The errors that mean "this pid has exited" when they come from a /proc/PID read. */
export function isGoneError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOENT' || code === 'ESRCH';
}

/** Errors that mean "not allowed to look" (ptrace access mode checks on another user's process). */
export function isDeniedError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'EACCES' || code === 'EPERM';
}

/**
 * Reads a /proc file into the shared buffer and decodes it; at most maxBytes are kept.
 * Throws the fs error (callers decide what "gone" means). /proc files report size 0, but
 * seq_file ones (stat, status) and cmdline hand over all they have in one read when the
 * buffer is big enough, so a short read is the end: no second read() just to see EOF
 * (each syscall costs 4-12 µs here).
 */
export function readProcFile(path: string, maxBytes = 4096): string {
  const limit = Math.min(maxBytes, readBuffer.length);
  const fd = openSync(path, 'r');
  try {
    let length = 0;
    while (length < limit) {
      const want = limit - length;
      const n = readSync(fd, readBuffer, length, want, null);
      length += n;
      if (n < want) break;
    }
    return readBuffer.toString('utf8', 0, length);
  } finally {
    closeSync(fd);
  }
}

/** stat of pid, or null when it has exited (or its stat is unreadable). */
export function readStat(pid: number, procRoot = '/proc'): StatFields | null {
  try {
    return parseStat(readProcFile(`${procRoot}/${pid}/stat`));
  } catch (err) {
    if (isGoneError(err) || isDeniedError(err)) return null;
    throw err;
  }
}

/** The start time of pid, or null when it has exited (or its stat is unreadable). */
export function readStartTime(pid: number, procRoot = '/proc'): number | null {
  return readStat(pid, procRoot)?.startTime ?? null;
}

/** Real uid: the first number on the "Uid:" line of /proc/PID/status. */
function parseRealUid(status: string): number | null {
  const at = status.indexOf('\nUid:');
  if (at < 0) return null;
  const uid = parseInt(status.slice(at + 5, at + 32).trimStart(), 10);
  return Number.isNaN(uid) ? null : uid;
}

export interface ExeLink {
  exe: string;
  deleted: boolean;
}

/**
 * readlink of /proc/PID/exe with the " (deleted)" suffix taken off. A binary really named
 * "x (deleted)" is told apart by stat: the path then still names the running file.
 */
export function readExe(pid: number, procRoot = '/proc'): ExeLink {
  const link = readlinkSync(`${procRoot}/${pid}/exe`);
  if (!link.endsWith(DELETED_SUFFIX)) return { exe: link, deleted: false };
  if (sameFile(`${procRoot}/${pid}/exe`, link)) return { exe: link, deleted: false };
  return { exe: link.slice(0, -DELETED_SUFFIX.length), deleted: true };
}

function sameFile(a: string, b: string): boolean {
  try {
    const sa = statSync(a);
    const sb = statSync(b);
    return sa.ino === sb.ino && sa.dev === sb.dev;
  } catch {
    return false;
  }
}

interface Namespaces {
  user: string;
  mnt: string;
}

/** The helper's own namespaces, as readlink shows them ("user:[4026531837]"); read once. */
let ownNamespaces: Namespaces | 'unreadable' | null = null;

function helperNamespaces(): Namespaces | 'unreadable' {
  if (ownNamespaces === null) {
    try {
      ownNamespaces = { user: readlinkSync('/proc/self/ns/user'), mnt: readlinkSync('/proc/self/ns/mnt') };
    } catch {
      ownNamespaces = 'unreadable'; // then no path is proven: every program is asked about
    }
  }
  return ownNamespaces;
}

export interface ExeCheck {
  identity: ExeIdentity;
  otherMountNs: boolean;
  /** stat of the running file, when it was read. */
  exeFile?: { dev: number; ino: number };
}

/**
 * Whether exe, the path the process's exe link names, is really the program running (see
 * ExeIdentity). The link's path is resolved in the process's own mount namespace, where a user
 * namespace of its own lets an unprivileged user bind-mount any file over /usr/bin/curl; stat
 * of the link itself follows it to the running file wherever it lives. A mount namespace alone
 * is not held against a process: only root (the initial user namespace) can make one there
 * (systemd's sandboxed services, containers run by root), and the file check still applies.
 * ~4 syscalls (~15 µs), once per process: the resolver caches the result with the rest.
 * Throws the error of a process gone meanwhile.
 */
export function checkExe(pid: number, exe: ExeLink, procRoot = '/proc'): ExeCheck {
  const dir = `${procRoot}/${pid}`;
  const own = helperNamespaces();
  if (own === 'unreadable') return { identity: 'unverified', otherMountNs: false };
  let userNs: string;
  let mntNs: string;
  try {
    userNs = readlinkSync(`${dir}/ns/user`);
    mntNs = readlinkSync(`${dir}/ns/mnt`);
  } catch (err) {
    // No ns links in a process directory that is still there (a /proc without them): not checkable.
    if (isDeniedError(err) || (isGoneError(err) && existsSync(dir))) return { identity: 'unverified', otherMountNs: false };
    throw err;
  }
  const otherMountNs = mntNs !== own.mnt;
  if (userNs !== own.user) return { identity: 'other_user_ns', otherMountNs };
  if (exe.exe === '') return { identity: 'unverified', otherMountNs };
  if (exe.deleted || !exe.exe.startsWith('/')) return { identity: 'exe_mismatch', otherMountNs };
  const running = statSync(`${dir}/exe`); // throws once the process is gone
  const exeFile = { dev: running.dev, ino: running.ino };
  let named;
  try {
    named = lstatSync(exe.exe); // the path itself: a symlink there is not the program
  } catch {
    return { identity: 'exe_mismatch', otherMountNs, exeFile };
  }
  const same = named.isFile() && named.ino === running.ino && named.dev === running.dev;
  return { identity: same ? 'host' : 'exe_mismatch', otherMountNs, exeFile };
}

/** The parent's executable, or '' when it cannot be read (exited, kernel thread, pid 0). */
function readParentExe(ppid: number, procRoot: string): string {
  if (ppid <= 0) return '';
  try {
    return readExe(ppid, procRoot).exe;
  } catch {
    return '';
  }
}

/** The Flatpak/Snap app id of pid (appId.ts), or null when it has none or its cgroup is unreadable. */
function readAppId(pid: number, procRoot: string): string | null {
  try {
    return appIdFromCgroup(readProcFile(`${procRoot}/${pid}/cgroup`));
  } catch {
    return null;
  }
}

/** The working directory (script rules resolve a relative script path against it), or null. */
function readCwd(dir: string): string | null {
  try {
    const cwd = readlinkSync(`${dir}/cwd`);
    return cwd.startsWith('/') && !cwd.endsWith(DELETED_SUFFIX) ? cwd : null;
  } catch {
    return null;
  }
}

function splitCmdline(raw: string): string[] {
  const args = raw.split('\0');
  // Arguments are NUL-terminated, so split leaves one empty string at the end.
  if (args.length > 0 && args[args.length - 1] === '') args.pop();
  return args;
}

/**
 * Everything the firewall shows about pid, or null when it has exited at any step.
 * The start time is read first and checked again last: if the pid died and was reused
 * while we read, the fields would mix two processes, so we answer null instead. `stat` is
 * a read of pid's stat the caller has just made (the socket index's last check): it stands
 * for the first read.
 */
export function readProcessInfo(pid: number, procRoot = '/proc', stat?: StatFields): ProcessInfo | null {
  const dir = `${procRoot}/${pid}`;
  try {
    const first = stat ?? parseStat(readProcFile(`${dir}/stat`));
    if (first === null) return null;
    const uid = parseRealUid(readProcFile(`${dir}/status`)) ?? statSync(dir).uid;
    const cmdline = splitCmdline(readProcFile(`${dir}/cmdline`, MAX_CMDLINE_BYTES));
    let exe: ExeLink = { exe: '', deleted: false };
    let check: ExeCheck = { identity: 'unverified', otherMountNs: false };
    try {
      exe = readExe(pid, procRoot);
      check = checkExe(pid, exe, procRoot);
    } catch (err) {
      // Another user's process without ptrace access: still report what we know.
      if (!isDeniedError(err)) throw err;
    }
    const parentExe = readParentExe(first.ppid, procRoot);
    const cwd = readCwd(dir);
    const appId = readAppId(pid, procRoot);
    if (readStartTime(pid, procRoot) !== first.startTime) return null;
    const info: ProcessInfo = {
      pid,
      uid,
      exe: exe.exe,
      exeDeleted: exe.deleted,
      comm: first.comm,
      cmdline,
      ppid: first.ppid,
      parentExe,
      startTime: first.startTime,
      identity: check.identity,
      otherMountNs: check.otherMountNs,
    };
    if (check.exeFile) info.exeFile = check.exeFile;
    if (cwd !== null) info.cwd = cwd;
    if (appId !== null) info.appId = appId;
    return info;
  } catch (err) {
    // A zombie has no exe (ENOENT) and owns no sockets: treating it as gone is right too.
    if (isGoneError(err)) return null;
    throw err;
  }
}

/** /proc/PID/maps is read this far at most: the executable's mappings come first. */
const MAPS_READ_BYTES = 16384;
/** "start-end perms offset MAJOR:MINOR inode path": the device and inode of a mapped file. */
const MAPS_LINE = /^[0-9a-f]+-[0-9a-f]+ \S+ [0-9a-f]+ ([0-9a-f]+):([0-9a-f]+) (\d+)/;

/**
 * The device of the file pid maps with inode `ino`, as the kernel numbers its superblock
 * (glibc's makedev() encoding, as stat(2) reports a device), or null when none is mapped or the
 * process is gone.
 */
export function mappedFileDevice(pid: number, ino: number, procRoot = '/proc'): number | null {
  let text: string;
  try {
    text = readProcFile(`${procRoot}/${pid}/maps`, MAPS_READ_BYTES);
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const m = MAPS_LINE.exec(line);
    if (m && Number(m[3]) === ino) return makedev(parseInt(m[1]!, 16), parseInt(m[2]!, 16));
  }
  return null;
}

/** glibc's makedev(): the dev_t stat(2) reports for a major and minor number. */
export function makedev(major: number, minor: number): number {
  const dev = ((BigInt(major) & 0xfffff000n) << 32n) | ((BigInt(major) & 0xfffn) << 8n) | ((BigInt(minor) & 0xffffff00n) << 12n) | (BigInt(minor) & 0xffn);
  return Number(dev);
}
