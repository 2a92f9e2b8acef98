// Socket paths in /run: never follow a symlink, never let a stranger in.
import { chmodSync, chownSync, lstatSync, mkdirSync, rmdirSync, unlinkSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';

export function ipcPathOf(endpoint: string): string {
  if (!endpoint.startsWith('ipc://')) throw new Error(`endpoint "${endpoint}" is not an ipc:// endpoint`);
  const path = endpoint.slice('ipc://'.length);
  if (!path.startsWith('/')) throw new Error(`endpoint "${endpoint}" must name an absolute path`);
  return path;
}

/**
 * Makes sure the socket's directory exists as a real directory (created 0750 when missing) and
 * that nothing but a stale socket sits at the path, which is removed. Refuses symlinks anywhere
 * we touch, with a message saying what to fix. Returns whether it created the directory.
 */
export function prepareSocketPath(path: string, dirGid: number | null): boolean {
  const dir = dirname(path);
  let dirStat = lstatOrNull(dir);
  const created = !dirStat;
  if (!dirStat) {
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    if (dirGid !== null) chownSync(dir, 0, dirGid);
    dirStat = lstatSync(dir);
  }
  if (dirStat.isSymbolicLink()) throw new Error(`refusing socket directory ${dir}: it is a symlink`);
  if (!dirStat.isDirectory()) throw new Error(`refusing socket directory ${dir}: not a directory`);
  if (dirStat.mode & 0o002) throw new Error(`refusing socket directory ${dir}: it is world-writable`);

  const existing = lstatOrNull(path);
  if (!existing) return created;
  if (existing.isSymbolicLink()) throw new Error(`refusing socket path ${path}: a symlink is planted there`);
  if (!existing.isSocket()) throw new Error(`refusing socket path ${path}: a non-socket file is there`);
  unlinkSync(path); // a stale socket from a crashed run
  return created;
}

/** On a clean stop: removes our socket and, if we created it and it is empty, its directory. */
export function removeSocketPath(path: string, removeDir: boolean): void {
  const st = lstatOrNull(path);
  if (st?.isSocket()) unlinkSync(path);
  if (!removeDir) return;
  try {
    rmdirSync(dirname(path));
  } catch {
    // not empty (the other process still runs) or already gone
  }
}

/** Restricts a freshly bound socket to its owner and group: mode 0660, never world access. */
export function restrictSocket(path: string, gid: number | null): void {
  if (gid !== null) chownSync(path, process.getuid?.() ?? 0, gid);
  chmodSync(path, 0o660);
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}
