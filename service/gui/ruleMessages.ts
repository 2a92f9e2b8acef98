// GUI socket extensions for extended rules (docs/gui-extensions.md): listing them read-only,
// exporting every rule in the rules.d format, importing such a list. The Python GUI sends none
// of these; its list_rules keeps showing rules.json alone, so it can neither see nor delete a
// rules.d rule.
import { parseExtendedRule, ruleToJson, type ExtendedRule } from '../rules/extendedRule.js';
import { extendedToLegacy, legacyToExtended } from '../rules/legacyRules.js';
import { passwdLookup } from '../rules/rulesDir.js';
import { authorized, fail, type Handlers } from './guiReply.js';

/** An import larger than this is refused before it is validated: rules.d's per-file limit. */
const MAX_IMPORTED_RULES = 10_000;

function listedRule(rule: ExtendedRule, origin: 'rules.d' | 'imported'): Record<string, unknown> {
  return { ...ruleToJson(rule), source: rule.source, origin, read_only: origin === 'rules.d' };
}

export const ruleHandlers: Handlers<'list_extended_rules' | 'export_rules' | 'import_rules'> = {
  /** rules.d and imported rules with their sources; reading needs only the socket. */
  list_extended_rules: (ctx, client) => {
    const { deployed, imported, errors } = ctx.extended.listed();
    client.send({
      type: 'extended_rules',
      rules: [...deployed.map((r) => listedRule(r, 'rules.d')), ...imported.map((r) => listedRule(r, 'imported'))],
      errors: [...errors],
    });
  },

  /** Every rule in force in the rules.d format: rules.json's, then rules.d's, then imported ones. */
  export_rules: (ctx, client) => {
    const { deployed, imported } = ctx.extended.listed();
    const legacy = ctx.rules.rules.entries().map(legacyToExtended);
    client.send({ type: 'rules_export', rules: [...legacy, ...deployed, ...imported].map(ruleToJson) });
  },

  /**
   * Applies a list of rules in the rules.d format, all or nothing on validation, authorized like
   * add_rule. What rules.json can say goes to rules.json (the GUI sees it); the rest to the
   * imported file. Importing the same list again changes nothing.
   */
  import_rules: async (ctx, client, msg) => {
    const list = msg.rules;
    if (list.length > MAX_IMPORTED_RULES) return fail(client, 'import_rules', `${list.length} rules, more than ${MAX_IMPORTED_RULES}`);
    const lookup = passwdLookup();
    const rules: ExtendedRule[] = [];
    const errors: string[] = [];
    list.forEach((value, i) => {
      const parsed = parseExtendedRule(value, `rule ${i + 1}`, lookup);
      if (parsed.ok) rules.push(parsed.rule);
      else errors.push(parsed.error);
    });
    if (errors.length > 0) return fail(client, 'import_rules', `nothing imported: ${errors.join('; ')}`);
    if (!(await authorized(ctx, client, 'import_rules', 'import rules'))) return;
    const counts = { added: 0, replaced: 0, unchanged: 0 };
    const refused: string[] = [];
    const extended: ExtendedRule[] = [];
    for (const rule of rules) {
      const legacy = extendedToLegacy(rule);
      if (legacy === null) {
        extended.push(rule);
        continue;
      }
      const allow = rule.action === 'allow';
      const before = ctx.rules.rules.get(legacy.subject, legacy.port);
      if (before === allow) {
        counts.unchanged++;
        continue;
      }
      const set = await ctx.rules.setRule(legacy.subject, legacy.port, allow);
      if (!set.ok) refused.push(`${rule.source}: ${set.error}`);
      else {
        counts[before === undefined ? 'added' : 'replaced']++;
        ctx.prompts.ruleSaved(client, legacy.subject, legacy.port);
      }
    }
    if (extended.length > 0) {
      const imported = await ctx.extended.importRules(extended);
      if (!imported.ok) return fail(client, 'import_rules', imported.error);
      for (const o of imported.outcomes) {
        if (o.result === 'refused') refused.push(`${o.rule.source}: ${o.error}`);
        else counts[o.result]++;
      }
    }
    ctx.log.info({ client: client.id, peer: client.peer, ...counts, refused: refused.length }, 'rules imported by a GUI client');
    client.send({ type: 'rules_imported', ...counts, refused });
  },
};
