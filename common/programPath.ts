// A path rule matches the executable the kernel names for a process (/proc/<pid>/exe), which
// has no links in it: a rule for /usr/bin/python3 (a link to python3.11) or /usr/bin/nc (a link
// through /etc/alternatives) would never match, nor would one for a path that does not exist.
// So a path is resolved to the file it names when the rule is written; the CLI (which sees the
// user's files) and the service's add_rule (which sees /usr, not /home: ProtectHome=) both do.
import { realpath, stat } from 'node:fs/promises';

export type ProgramPath =
  /** path: what a rule must name; linkedFrom: the path as given, when links led elsewhere. */
  | { ok: true; path: string; linkedFrom: string | null }
  /** missing: no such file (or a dangling link); else the path names something that is not a program file. */
  | { ok: false; missing: boolean; error: string };

/** The file an absolute path names, after every link; refused when it is missing or not a regular file. */
export async function resolveProgramPath(path: string): Promise<ProgramPath> {
  let target: string;
  try {
    target = await realpath(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { ok: false, missing: true, error: 'no such file' };
    return { ok: false, missing: false, error: `cannot be resolved (${code ?? (err as Error).message})` };
  }
  try {
    if (!(await stat(target)).isFile()) return { ok: false, missing: false, error: `${target} is not a regular file` };
  } catch (err) {
    return { ok: false, missing: false, error: `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
  }
  return { ok: true, path: target, linkedFrom: target === path ? null : path };
}
