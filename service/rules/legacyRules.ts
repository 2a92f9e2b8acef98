// rules.json entries in the rules.d format and back, for `bastion rules export` and `import`:
// a rule that rules.json can say (one subject, maybe a port) is exported from and imported into
// rules.json, so the Python GUI keeps seeing and editing it; every other rule is an extended one.
import { parseCidr } from '../../common/cidr.js';
import type { ExtendedRule } from './extendedRule.js';
import { destSubject, hostOfSubject, hostSubject, nameOfSubject, nameSubject, parseDestSubject, subjectKind, type RulePort } from './ruleKey.js';
import type { RuleEntry } from './ruleSet.js';

export const RULES_JSON_SOURCE = 'rules.json';

/** A rules.json entry as an extended rule (source `rules.json`). */
export function legacyToExtended(entry: RuleEntry): ExtendedRule {
  const port = entry.port === '*' ? {} : { port: entry.port };
  const action = entry.allow ? 'allow' : 'deny';
  const base = { action, source: RULES_JSON_SOURCE } as const;
  const kind = subjectKind(entry.subject);
  if (kind === 'name') return { ...base, comm: nameOfSubject(entry.subject)!, ...port };
  if (kind === 'host') return { ...base, host: hostOfSubject(entry.subject)!, ...port };
  if (kind === 'dest') {
    // `@dest:<ip>:<port>:*`: the subject's own port is the rule's.
    const dest = parseDestSubject(entry.subject)!;
    return { ...base, dest: parseCidr(dest.ip)!, ...(dest.port === '*' ? {} : { port: dest.port }) };
  }
  return { ...base, exe: entry.subject, ...port };
}

/** The rules.json subject and port of a rule that rules.json can say, else null. */
export function extendedToLegacy(rule: ExtendedRule): { subject: string; port: RulePort } | null {
  const extra = [rule.user, rule.list, rule.proto, rule.parent, rule.script, rule.appId, rule.sha256];
  if (extra.some((v) => v !== undefined)) return null;
  const subjects = [rule.exe, rule.comm, rule.dest, rule.host].filter((v) => v !== undefined);
  if (subjects.length !== 1) return null;
  const port: RulePort = rule.port ?? '*';
  if (rule.exe !== undefined) return { subject: rule.exe, port };
  if (rule.comm !== undefined) return { subject: nameSubject(rule.comm), port };
  if (rule.host !== undefined) return { subject: hostSubject(rule.host), port };
  const dest = rule.dest!;
  if (dest.prefix !== dest.bytes.length * 8) return null; // rules.json names single addresses only
  return { subject: destSubject(dest.text.slice(0, dest.text.indexOf('/')), port), port: '*' };
}
