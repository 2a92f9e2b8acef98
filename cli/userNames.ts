// User names for uids, as `bastion log` shows them: through getent(1), so names from LDAP,
// systemd-homed and the like resolve as ls and ps resolve them; /etc/passwd when getent is
// missing. One lookup for every uid of the output.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';

/** `name:x:uid:...` lines: uid -> name, for the uids asked about. */
export function parsePasswd(text: string, uids: ReadonlySet<number>): Map<number, string> {
  const names = new Map<number, string>();
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields.length < 3 || !/^[0-9]+$/.test(fields[2]!)) continue;
    const uid = Number(fields[2]);
    if (uids.has(uid) && !names.has(uid) && fields[0] !== '') names.set(uid, fields[0]!);
  }
  return names;
}

function getent(uids: readonly number[]): Promise<string | null> {
  return new Promise((resolve) => {
    // Exit code 2 only says that some uid has no entry: the others are on stdout.
    execFile('getent', ['passwd', ...uids.map(String)], { timeout: 5000, maxBuffer: 1 << 20 }, (err, stdout) => {
      const code = (err as { code?: unknown } | null)?.code;
      resolve(err && code !== 2 ? null : stdout);
    });
  });
}

/** The names of those uids that have one. */
export async function userNames(uids: Iterable<number>): Promise<Map<number, string>> {
  const wanted = new Set(uids);
  if (wanted.size === 0) return new Map();
  const text = (await getent([...wanted])) ?? (await readFile('/etc/passwd', 'utf8').catch(() => ''));
  return parsePasswd(text, wanted);
}

/** `1000(alice)` as id(1) writes it, `1000` without a name, `-` when no uid is known. */
export function userLabel(uid: number | null, names: ReadonlyMap<number, string>): string {
  if (uid === null) return '-';
  const name = names.get(uid);
  return name === undefined ? String(uid) : `${uid}(${name})`;
}
