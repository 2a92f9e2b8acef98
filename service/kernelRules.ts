// Which rules the kernel may apply by itself (helper -> native/bpf/caller.bpf.c): a path rule's
// decision there must be the one Policy.decide() would give for every connection of that
// program to that port, whatever its destination and user. Policy decides in the order
// whitelist -> session decisions -> rules -> mode, and a path subject ranks first among rules,
// so a subject's rules are sent whole, or not at all when:
//  - a session decision names the subject (for any uid): it ranks above the rules;
//  - it is one of the whitelist's system clients: the whitelist would allow what a rule denies;
//  - an extended rule (rules.d, imported) could match its connections: those rank above rules.json.
// Loopback and LAN destinations, which the whitelist may allow too, are never denied in the
// kernel (caller.bpf.c local_v4/local_v6), nor is port 53 (allow_dns passes DNS to the
// nameservers before any rule, and only the service knows them). Learning mode changes nothing here: rules rank above
// the mode, so a path rule decides alike in both modes.
import type { PathRule } from '../common/wire.js';
import type { RuleSet } from './rules/ruleSet.js';
import { subjectKind } from './rules/ruleKey.js';

export interface KernelRuleSources {
  rules: RuleSet;
  /** Whether a session decision exists for this subject (any port, any uid). */
  sessionNames: (subject: string) => boolean;
  /** Whether the whitelist passes some connections of this executable path. */
  whitelisted: (path: string) => boolean;
  /** Whether rules.json's path rules for this executable are final (Policy.pathRulesFinal). */
  pathRulesFinal?: (path: string) => boolean;
}

export function kernelPathRules({ rules, sessionNames, whitelisted, pathRulesFinal }: KernelRuleSources): PathRule[] {
  const bySubject = new Map<string, PathRule[]>();
  for (const entry of rules.entries()) {
    if (subjectKind(entry.subject) !== 'path') continue;
    let list = bySubject.get(entry.subject);
    if (list === undefined) bySubject.set(entry.subject, (list = []));
    list.push({ path: entry.subject, port: entry.port === '*' ? 0 : entry.port, allow: entry.allow });
  }
  const out: PathRule[] = [];
  for (const [subject, list] of bySubject) {
    if (sessionNames(subject) || whitelisted(subject) || pathRulesFinal?.(subject) === false) continue;
    out.push(...list);
  }
  return out;
}
