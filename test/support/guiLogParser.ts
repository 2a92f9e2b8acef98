// The control panel's Logs tab as a function: the patterns of the upstream Bastion GUI's
// bastion/log_parser.py and its parse_line, and the line `journalctl --no-pager` prints.
// Source: the Bastion GUI, shipdocs/bastion-firewall, bastion/log_parser.py (class LogParser), in
// the order parse_line tries them; copied as data: Python's re syntax here is also JavaScript's.
export const GUI_PATTERNS: { type: string; re: RegExp; groups: string[] }[] = [
  { type: 'POPUP', re: /\[POPUP\] (.+?) \((.+?)\) -> (.+?):(\d+)/, groups: ['app', 'path', 'ip', 'port'] },
  { type: 'RULE', re: /\[RULE:(ALLOW|BLOCK)\] app="(.+?)" path="(.+?)" dst="(.+?):(\d+)" user=(\d+)/, groups: ['action', 'app', 'path', 'ip', 'port', 'user'] },
  { type: 'RULE', re: /\[RULE:(ALLOW|BLOCK):NAME\] app="(.+?)" dst="(.+?):(\d+)" user=(\d+)/, groups: ['action', 'app', 'ip', 'port', 'user'] },
  { type: 'USER', re: /\[USER:(ALLOW|BLOCK)\] app="(.+?)" dst="(.+?):(\d+)" user=(\d+)/, groups: ['action', 'app', 'ip', 'port', 'user'] },
  { type: 'SESSION', re: /\[SESSION:(ALLOW|BLOCK)\] app="(.+?)" dst="(.+?):(\d+)/, groups: ['action', 'app', 'ip', 'port'] },
  { type: 'CACHED', re: /\[CACHED:(ALLOW|BLOCK)\] unknown app dst="(.+?):(\d+)"/, groups: ['action', 'ip', 'port'] },
  { type: 'LEARN', re: /\[LEARN\] app="(.+?)" path="(.+?)" dst="(.+?):(\d+)" user=(\d+)/, groups: ['app', 'path', 'ip', 'port', 'user'] },
  { type: 'BLOCK', re: /\[BLOCK\] app="(.+?)" dst="(.+?):(\d+)" user=(\d+)/, groups: ['app', 'ip', 'port', 'user'] },
  { type: 'AUTO', re: /\[AUTO\] (.+?) - (.+)/, groups: ['app', 'reason'] },
];

export type Parsed = { type: string } & Record<string, string>;

/** LogParser.parse_line: the first word is the "timestamp", the first pattern found in the rest wins. */
export function guiParse(line: string): Parsed | null {
  const space = line.trim().indexOf(' ');
  if (space < 0) return null;
  const message = line.trim().slice(space + 1);
  for (const p of GUI_PATTERNS) {
    const m = p.re.exec(message);
    if (!m) continue;
    const out: Parsed = { type: p.type };
    p.groups.forEach((g, i) => (out[g] = m[i + 1]!));
    return out;
  }
  return null;
}

/** What `journalctl -u bastion-firewall --no-pager` prints for an entry (short format). */
export function journalctlLine(fields: Record<string, string>): string {
  return `Dec 05 13:10:53 testhost ${fields['SYSLOG_IDENTIFIER']}[4321]: ${fields['MESSAGE']}`;
}
