// `bastion install-file rules|config SOURCE TARGET`: the work of bastion-reload-rules and
// bastion-reload-config, which the Bastion GUI runs as root through pkexec to save a file it
// wrote to /tmp. SOURCE comes from an unprivileged user, so it is opened without following a
// symlink, checked on the open descriptor (a regular file of the calling user, within the size
// limit), validated exactly as the service would load it, and written over TARGET atomically
// with the service's owner and mode. Then the service is told to reload (SIGHUP). SOURCE is
// left in place: removing a path an unprivileged user names, as root, is a hazard of its own.
import { constants, readdirSync, readFileSync } from 'node:fs';
import fsp from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { writeFileAtomic } from '../common/safeFile.js';
import { groupId } from '../common/system.js';
import { visible } from '../common/visibleText.js';
import { DEFAULT_CONFIG_MAX_BYTES, parseConfig } from '../service/config.js';
import { RuleSet } from '../service/rules/ruleSet.js';
import { DEFAULT_RULES_FILE_MODE, DEFAULT_RULES_MAX_BYTES } from '../service/rules/rulesStore.js';

export type FileKind = 'rules' | 'config';

const KINDS: Record<FileKind, { name: string; maxBytes: number; mode: number }> = {
  rules: { name: 'rules.json', maxBytes: DEFAULT_RULES_MAX_BYTES, mode: DEFAULT_RULES_FILE_MODE },
  // config.json holds nothing secret; the old daemon's was world-readable too.
  config: { name: 'config.json', maxBytes: DEFAULT_CONFIG_MAX_BYTES, mode: 0o644 },
};

export interface InstallFileOptions {
  kind: FileKind;
  source: string;
  target: string;
  /** The only directory whose rules.json/config.json may be replaced. */
  dir: string;
  /** When set (pkexec's PKEXEC_UID), SOURCE must belong to this user. */
  callerUid: number | null;
  /** Owner of the written file: the service's user. */
  owner: { uid: number; gid: number } | null;
}

export type InstallFileResult = { ok: true; warnings: string[] } | { ok: false; error: string };

export async function installFile(o: InstallFileOptions): Promise<InstallFileResult> {
  const kind = KINDS[o.kind];
  const expected = join(resolve(o.dir), kind.name);
  if (resolve(o.target) !== expected) return { ok: false, error: `refusing ${o.target}: only ${expected} may be replaced` };

  const read = await readSource(o.source, kind.maxBytes, o.callerUid);
  if (!read.ok) return read;
  let warnings: string[];
  if (o.kind === 'config') {
    const parsed = parseConfig(read.text);
    if (!parsed.ok) return { ok: false, error: `${o.source}: ${parsed.error}` };
    warnings = parsed.warnings;
  } else {
    let json: unknown;
    try {
      json = JSON.parse(read.text);
    } catch (err) {
      return { ok: false, error: `${o.source}: not valid JSON: ${(err as Error).message}` };
    }
    const built = RuleSet.fromJSON(json);
    if (!built.ok) return { ok: false, error: `${o.source}: ${built.error}` };
    warnings = built.warnings;
  }
  try {
    await writeFileAtomic(expected, read.text, { mode: kind.mode, ...(o.owner && { uid: o.owner.uid, gid: o.owner.gid }) });
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
  return { ok: true, warnings };
}

async function readSource(path: string, maxBytes: number, callerUid: number | null): Promise<{ ok: true; text: string } | { ok: false; error: string }> {
  let fh: fsp.FileHandle;
  try {
    // O_NONBLOCK: a FIFO at the path must not hang us; fstat then refuses it.
    fh = await fsp.open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') return { ok: false, error: `${path} is a symlink; refusing to follow it` };
    return { ok: false, error: `cannot open ${path}: ${(err as Error).message}` };
  }
  try {
    // Checked on the descriptor: what is read is what was checked, whatever happens to the path.
    const st = await fh.stat();
    if (!st.isFile()) return { ok: false, error: `${path} is not a regular file` };
    if (callerUid !== null && st.uid !== callerUid) {
      return { ok: false, error: `${path} does not belong to the calling user (uid ${callerUid})` };
    }
    const buf = Buffer.alloc(maxBytes + 1);
    let total = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, total, buf.length - total, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > maxBytes) return { ok: false, error: `${path} is larger than ${maxBytes} bytes` };
    }
    try {
      return { ok: true, text: new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(0, total)) };
    } catch {
      return { ok: false, error: `${path} is not valid UTF-8` };
    }
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** uid and gid of a user from /etc/passwd, or null. */
export function userIds(name: string, passwdFile = '/etc/passwd'): { uid: number; gid: number } | null {
  let text: string;
  try {
    text = readFileSync(passwdFile, 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user === name && uid !== undefined && gid !== undefined && /^\d+$/.test(uid) && /^\d+$/.test(gid)) {
      return { uid: Number(uid), gid: groupId(name) ?? Number(gid) };
    }
  }
  return null;
}

/** `pkill -HUP -x bastion-daemon`, without procps: the pids signalled. */
export function signalService(comm = 'bastion-daemon', procRoot = '/proc'): number[] {
  const signalled: number[] = [];
  for (const entry of readdirSync(procRoot)) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`${procRoot}/${entry}/comm`, 'utf8').trimEnd() !== comm) continue;
      process.kill(Number(entry), 'SIGHUP');
      signalled.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return signalled;
}

export function registerInstallFileCommand(program: Command): void {
  program
    .command('install-file')
    .description('validate SOURCE and replace rules.json or config.json with it, then reload the service (for bastion-reload-rules/-config)')
    .argument('<kind>', 'rules|config')
    .argument('<source>', 'the new file (when run through pkexec, it must belong to the calling user)')
    .argument('<target>', 'the file to replace: DIR/rules.json or DIR/config.json')
    .option('--dir <path>', 'the configuration directory', '/etc/bastion')
    .option('--owner <user>', "the service's user, owner of the written file", 'bastion')
    .action(async (kind: string, source: string, target: string, opts: { dir: string; owner: string }) => {
      if (kind !== 'rules' && kind !== 'config') {
        process.stderr.write(`bastion install-file: kind must be rules or config, not "${kind}"\n`);
        process.exitCode = 2;
        return;
      }
      const pkexecUid = process.env['PKEXEC_UID'];
      const owner = userIds(opts.owner);
      if (!owner) process.stderr.write(`warning: no user ${opts.owner}; the file stays owned by root\n`);
      const result = await installFile({
        kind,
        source,
        target,
        dir: opts.dir,
        callerUid: pkexecUid !== undefined && /^\d+$/.test(pkexecUid) ? Number(pkexecUid) : null,
        owner,
      });
      if (!result.ok) {
        process.stderr.write(`${visible(result.error)}\n`);
        process.exitCode = 1;
        return;
      }
      for (const w of result.warnings) process.stderr.write(`warning: ${visible(w)}\n`);
      const pids = signalService();
      process.stdout.write(
        pids.length > 0
          ? `${target} replaced; bastion-daemon (pid ${pids.join(', ')}) reloads it\n`
          : `${target} replaced; bastion-daemon is not running, it will read it when it starts\n`,
      );
    });
}
