// Default paths: the ones the existing Python GUI and its helper scripts hard-code.
import { dirname, join } from 'node:path';

export const DEFAULTS = {
  configPath: '/etc/bastion/config.json',
  rulesPath: '/etc/bastion/rules.json',
  guiSocketPath: '/run/bastion/bastion-daemon.sock',
  /** The helper's bus, in a directory of its own that only root and the service's user reach (not the GUI group's /run/bastion). */
  endpoint: 'ipc:///run/bastion-helper/helper.sock',
  queueNum: 1,
  socketGroup: 'bastion',
  /** The helper's bus: the group of its socket (the service's user alone) and who may be its peer. */
  busGroup: 'bastion-bus',
  serviceUser: 'bastion',
} as const;

/** rules.d, lists.d and the imported rules live beside rules.json unless named. */
export function besideRules(opts: { rules: string; rulesDir?: string; importedRules?: string; listsDir?: string }): {
  rulesDir: string;
  importedRulesPath: string;
  listsDir: string;
} {
  const dir = dirname(opts.rules);
  return {
    rulesDir: opts.rulesDir ?? join(dir, 'rules.d'),
    importedRulesPath: opts.importedRules ?? join(dir, 'rules.imported.json'),
    listsDir: opts.listsDir ?? join(dir, 'lists.d'),
  };
}
