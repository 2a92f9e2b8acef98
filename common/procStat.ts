// /proc/PID/stat, the fields both processes need: the helper identifies processes by them, the
// service names the peer process to polkit by pid and start time.
import { readFileSync } from 'node:fs';

export interface StatFields {
  comm: string;
  ppid: number;
  /** Field 22, clock ticks since boot. */
  startTime: number;
}

/** Where the field `count` fields after the one starting at `at` starts; -1 past the end. */
function skipFields(text: string, at: number, count: number): number {
  for (let i = 0; i < count && at > 0; i++) at = text.indexOf(' ', at) + 1;
  return at > 0 ? at : -1;
}

/**
 * Parses /proc/PID/stat. comm sits in parentheses and may itself contain spaces and ')'
 * (a process can name itself "a) (b"), so it ends at the LAST ')' of the line. Scans to the
 * two fields it needs instead of splitting all 52 (this runs for every new socket's owner).
 */
export function parseStat(text: string): StatFields | null {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return null;
  // After ") " come fields 3 (state), 4 (ppid), ... 22 (starttime).
  const ppidAt = skipFields(text, close + 2, 1);
  const startAt = ppidAt < 0 ? -1 : skipFields(text, ppidAt, 18);
  if (startAt < 0) return null;
  const ppid = Number(text.slice(ppidAt, text.indexOf(' ', ppidAt)));
  const startEnd = text.indexOf(' ', startAt);
  const startTime = Number(text.slice(startAt, startEnd < 0 ? text.length : startEnd).trimEnd());
  if (!Number.isInteger(ppid) || !Number.isInteger(startTime)) return null;
  return { comm: text.slice(open + 1, close), ppid, startTime };
}

/** Field 22 of /proc/PID/stat (starttime, clock ticks since boot): with the pid, names one process. */
export function readProcessStartTime(pid: number, procRoot = '/proc'): number | null {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  let stat: string;
  try {
    stat = readFileSync(`${procRoot}/${pid}/stat`, 'latin1');
  } catch {
    return null; // gone, or hidden from us (hidepid)
  }
  return parseStat(stat)?.startTime ?? null;
}
