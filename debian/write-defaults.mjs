// Writes the shipped /etc/bastion/config.json and rules.json with the compiled service code,
// so the defaults on disk are exactly what the service would write itself.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_CONFIG, serializeConfig } from '../dist/service/config.js';
import { RuleSet } from '../dist/service/rules/ruleSet.js';

const out = process.argv[2];
if (!out) throw new Error('usage: node debian/write-defaults.mjs OUTPUT_DIR');
writeFileSync(join(out, 'config.json'), serializeConfig({ ...DEFAULT_CONFIG }));
writeFileSync(join(out, 'rules.json'), JSON.stringify(new RuleSet().toJSON(), null, 2) + '\n');
