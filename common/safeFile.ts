// Reading and replacing small state files (rules.json, config.json) without following
// symlinks. The service runs unprivileged but its files live in /etc/bastion: a symlink
// planted there must never redirect a read or a write (see gui-protocol.md, "rules.json").
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import fsp from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';

/** Why a read was refused; `missing` lets callers fall back to defaults. */
export type ReadFailureReason = 'missing' | 'symlink' | 'not_regular' | 'too_large' | 'not_utf8' | 'io';

export type ReadResult = { ok: true; text: string } | { ok: false; error: string; reason: ReadFailureReason };

export interface WriteOptions {
  /** Exact permission bits of the new file (applied with fchmod, so the umask does not narrow them). */
  mode?: number;
  uid?: number;
  gid?: number;
}

const READ_FLAGS =
  // O_NONBLOCK: opening a FIFO planted at the path must not hang the service; fstat then refuses it.
  constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const TEMP_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const DEFAULT_FILE_MODE = 0o644;

function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Reads a whole UTF-8 text file, refusing symlinks, non-regular files and files over
 * `maxBytes` (checked with fstat before buffering, and again while reading in case it grows).
 */
export async function readFileNoFollow(filePath: string, maxBytes: number): Promise<ReadResult> {
  let fh: FileHandle;
  try {
    fh = await fsp.open(filePath, READ_FLAGS);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') return { ok: false, reason: 'missing', error: `${filePath} does not exist` };
    // O_NOFOLLOW on a symlink as the last path component fails with ELOOP.
    if (code === 'ELOOP') {
      return { ok: false, reason: 'symlink', error: `${filePath} is a symlink; refusing to follow it` };
    }
    return { ok: false, reason: 'io', error: `cannot open ${filePath}: ${errorText(err)}` };
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) {
      return { ok: false, reason: 'not_regular', error: `${filePath} is not a regular file` };
    }
    if (st.size > maxBytes) {
      return { ok: false, reason: 'too_large', error: tooLarge(filePath, st.size, maxBytes) };
    }
    const bytes = await readAtMost(fh, st.size, maxBytes + 1);
    if (bytes.length > maxBytes) {
      return { ok: false, reason: 'too_large', error: tooLarge(filePath, bytes.length, maxBytes) };
    }
    try {
      // fatal: a file with broken UTF-8 is refused rather than loaded with U+FFFD in rule keys.
      return { ok: true, text: new TextDecoder('utf-8', { fatal: true }).decode(bytes) };
    } catch {
      return { ok: false, reason: 'not_utf8', error: `${filePath} is not valid UTF-8` };
    }
  } catch (err) {
    return { ok: false, reason: 'io', error: `cannot read ${filePath}: ${errorText(err)}` };
  } finally {
    await fh.close().catch(() => undefined);
  }
}

function tooLarge(filePath: string, size: number, maxBytes: number): string {
  return `${filePath} is too large (${size} bytes; the limit is ${maxBytes} bytes)`;
}

/** Reads until EOF or `limit` bytes, starting with a buffer sized from fstat. */
async function readAtMost(fh: FileHandle, sizeHint: number, limit: number): Promise<Buffer> {
  let buf = Buffer.allocUnsafe(Math.min(Math.max(sizeHint + 1, 4096), limit));
  let total = 0;
  for (;;) {
    if (total === buf.length) {
      if (total >= limit) break;
      const bigger = Buffer.allocUnsafe(Math.min(buf.length * 2, limit));
      buf.copy(bigger, 0, 0, total);
      buf = bigger;
    }
    const { bytesRead } = await fh.read(buf, total, buf.length - total, null);
    if (bytesRead === 0) break;
    total += bytesRead;
  }
  return buf.subarray(0, total);
}

/**
 * Replaces `filePath` atomically: a temp file in the same directory is written, fsynced and
 * renamed over the target, then the directory is fsynced. On any failure before the rename the
 * temp file is removed and the old file is left as it was. Refuses a symlink (or any
 * non-regular file) at the target.
 */
export async function writeFileAtomic(filePath: string, data: string | Uint8Array, opts: WriteOptions = {}): Promise<void> {
  await refuseNonRegularTarget(filePath);

  const dir = path.dirname(filePath);
  const tempPath = path.join(dir, `.${path.basename(filePath)}.${randomBytes(6).toString('hex')}.tmp`);
  let fh: FileHandle | undefined;
  try {
    fh = await fsp.open(tempPath, TEMP_FLAGS, opts.mode ?? DEFAULT_FILE_MODE);
    if (opts.mode !== undefined) await fh.chmod(opts.mode);
    if (opts.uid !== undefined || opts.gid !== undefined) await fh.chown(opts.uid ?? -1, opts.gid ?? -1);
    await fh.writeFile(data);
    await fh.sync();
    const closing = fh;
    fh = undefined;
    await closing.close();
    await fsp.rename(tempPath, filePath);
  } catch (err) {
    await fh?.close().catch(() => undefined);
    await fsp.unlink(tempPath).catch(() => undefined);
    throw new Error(`cannot write ${filePath}: ${errorText(err)}`, { cause: err });
  }
  await syncDirectory(dir, filePath);
  await removeStaleTemps(dir, path.basename(filePath));
}

/**
 * Temp files of saves that a crash (kill -9, power loss) interrupted: once a save succeeded
 * they are garbage. Only our own naming pattern is touched; unlink never follows a symlink.
 */
async function removeStaleTemps(dir: string, base: string): Promise<void> {
  const escaped = base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const pattern = new RegExp(`^\\.${escaped}\\.[0-9a-f]{12}\\.tmp$`);
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return;
  }
  await Promise.all(names.filter((n) => pattern.test(n)).map((n) => fsp.unlink(path.join(dir, n)).catch(() => undefined)));
}

async function refuseNonRegularTarget(filePath: string): Promise<void> {
  let st;
  try {
    st = await fsp.lstat(filePath);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw new Error(`cannot write ${filePath}: ${errorText(err)}`, { cause: err });
  }
  if (st.isSymbolicLink()) throw new Error(`${filePath} is a symlink; refusing to write through it`);
  if (!st.isFile()) throw new Error(`${filePath} is not a regular file; refusing to replace it`);
}

/** Makes the rename itself durable. Some filesystems cannot fsync a directory (EINVAL): that is not a failed save. */
async function syncDirectory(dir: string, filePath: string): Promise<void> {
  let dh: FileHandle | undefined;
  try {
    dh = await fsp.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    await dh.sync();
  } catch (err) {
    if (errnoCode(err) !== 'EINVAL') {
      throw new Error(`saved ${filePath} but could not fsync ${dir}: ${errorText(err)}`, { cause: err });
    }
  } finally {
    await dh?.close().catch(() => undefined);
  }
}
