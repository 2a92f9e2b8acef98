// Facts about the system the entry points need: our version, user and group ids.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function packageVersion(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const p of [join(here, '..', 'package.json'), join(here, '..', '..', 'package.json')]) {
    if (existsSync(p)) return (JSON.parse(readFileSync(p, 'utf8')) as { version: string }).version;
  }
  return '0.0.0';
}

/** The gid of a group from /etc/group, or null when it does not exist. */
export function groupId(name: string, groupFile = '/etc/group'): number | null {
  let text: string;
  try {
    text = readFileSync(groupFile, 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const [group, , gid] = line.split(':');
    if (group === name && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  return null;
}

/** The uid of a user (a name from /etc/passwd, or a number), or null when there is none. */
export function userId(nameOrUid: string, passwdFile = '/etc/passwd'): number | null {
  if (/^\d+$/.test(nameOrUid)) return Number(nameOrUid);
  let text: string;
  try {
    text = readFileSync(passwdFile, 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const [user, , uid] = line.split(':');
    if (user === nameOrUid && uid !== undefined && /^\d+$/.test(uid)) return Number(uid);
  }
  return null;
}
