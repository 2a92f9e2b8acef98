// `bastion rules suggest`: the rules that would allow what learning mode allowed, from the
// decision history (common/history.ts), in the rules.d format that `bastion rules import` reads.
// One rule per program, protocol and port; a program is its executable path when the service
// believed it, else its process name; a connection without either is not suggested.
import { all, type Db } from '../common/history.js';

interface LearnedRow {
  program: string;
  comm: string | null;
  port: number;
  protocol: string;
  connections: number;
}

/** A path as the history stores it for an unbelieved program: `/usr/bin/x (other user namespace)`. */
const DOUBTED_PATH = / \([^()]*\)$/;

export async function learnedDecisions(db: Db, since: number): Promise<LearnedRow[]> {
  return all<LearnedRow>(
    db,
    `SELECT program, comm, port, protocol, SUM(connections) AS connections FROM decisions
     WHERE reason = 'learning' AND allow = 1 AND at >= ? GROUP BY program, comm, port, protocol ORDER BY program, comm, protocol, port`,
    [since],
  );
}

export function suggestRules(rows: readonly LearnedRow[]): Record<string, unknown>[] {
  const seen = new Set<string>();
  const out: Record<string, unknown>[] = [];
  for (const row of rows) {
    const rule: Record<string, unknown> = { action: 'allow' };
    if (row.program.startsWith('/') && !DOUBTED_PATH.test(row.program)) rule['exe'] = row.program;
    else if (row.comm) rule['comm'] = row.comm;
    else continue;
    const proto = row.protocol.toLowerCase();
    if (proto === 'tcp' || proto === 'udp') {
      rule['proto'] = proto;
      if (row.port > 0) rule['port'] = row.port;
    } else if (proto === 'icmp') rule['proto'] = 'icmp';
    else continue;
    const key = JSON.stringify(rule);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(rule);
  }
  return out;
}
