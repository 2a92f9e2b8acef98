// Socket paths in /run: never follow a symlink, never let a stranger in.
import { chmodSync, chownSync, lstatSync, mkdirSync, unlinkSync, type Stats } from 'node:fs';
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
 * we touch, with a message saying what to fix.
 */
export function prepareSocketPath(path: string, dirGid: number | null): void {
  const dir = dirname(path);
  let dirStat = lstatOrNull(dir);
  if (!dirStat) {
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    if (dirGid !== null) chownSync(dir, 0, dirGid);
    dirStat = lstatSync(dir);
  }
  if (dirStat.isSymbolicLink()) throw new Error(`refusing socket directory ${dir}: it is a symlink`);
  if (!dirStat.isDirectory()) throw new Error(`refusing socket directory ${dir}: not a directory`);
  if (dirStat.mode & 0o002) throw new Error(`refusing socket directory ${dir}: it is world-writable`);

  const existing = lstatOrNull(path);
  if (!existing) return;
  if (existing.isSymbolicLink()) throw new Error(`refusing socket path ${path}: a symlink is planted there`);
  if (!existing.isSocket()) throw new Error(`refusing socket path ${path}: a non-socket file is there`);
  unlinkSync(path); // a stale socket from a crashed run
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
