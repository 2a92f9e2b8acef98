// config.json (gui-protocol.md, "config.json"): what it holds, how it is validated and how it
// is rewritten. A missing file gives the defaults; an invalid file or value keeps the last good
// config and reports what was wrong; unknown keys are kept when the file is rewritten.
import { readFileNoFollow, writeFileAtomic } from '../common/safeFile.js';
import type { WriteOptions } from '../common/safeFile.js';
import type { LastGoodCopy } from './lastGoodCopy.js';

export type FirewallMode = 'learning' | 'enforcement';
export type DefaultAction = 'allow' | 'deny';

export interface BastionConfig {
  mode: FirewallMode;
  /** How long a prompt waits for an answer; clamped to 5..300. */
  timeoutSeconds: number;
  /** Applied in enforcement mode when a prompt times out or no client is connected. */
  defaultAction: DefaultAction;
  allowLocalhost: boolean;
  allowLan: boolean;
  /** Every program's DNS (port 53) to the nameservers resolv.conf names passes without rules. */
  allowDns: boolean;
  /** Withdrawing an allowance (a rule deleted or narrowed, a timed answer run out) ends the open TCP connections it let out. */
  endConnections: boolean;
  popupEnabled: boolean;
  notificationsEnabled: boolean;
  logDecisions: boolean;
  /** Inbound protection: leave an inbound firewall that drops alone, else chains of our own (helper/inbound). */
  inboundProtection: boolean;
  /** Each decision as a line in the journal, in the words the control panel's Logs tab reads. */
  journalDecisions: boolean;
  /** Decisions kept in the history (`bastion log`); the oldest go first beyond this. */
  historyMaxEntries: number;
  /** Decisions older than this many days leave the history. */
  historyRetentionDays: number;
}

export const DEFAULT_CONFIG: Readonly<BastionConfig> = Object.freeze({
  mode: 'learning',
  timeoutSeconds: 60,
  defaultAction: 'deny',
  allowLocalhost: true,
  allowLan: false,
  allowDns: true,
  endConnections: true,
  popupEnabled: true,
  notificationsEnabled: true,
  logDecisions: false,
  inboundProtection: false,
  journalDecisions: true,
  historyMaxEntries: 1_000_000,
  historyRetentionDays: 30,
});

/** Whole-number keys and their ranges: history 0 turns it off; at most ~1 GB of history. */
export const INTEGER_RANGES = {
  historyMaxEntries: [0, 10_000_000],
  historyRetentionDays: [1, 3650],
} as const satisfies Partial<Record<keyof BastionConfig, readonly [number, number]>>;

export const MIN_TIMEOUT_SECONDS = 5;
export const MAX_TIMEOUT_SECONDS = 300;
export const DEFAULT_CONFIG_MAX_BYTES = 1024 * 1024;

/** The file's JSON names for each field, in the order they are written to a new file. */
const JSON_NAMES = {
  mode: 'mode',
  timeoutSeconds: 'timeout_seconds',
  defaultAction: 'default_action',
  allowLocalhost: 'allow_localhost',
  allowLan: 'allow_lan',
  allowDns: 'allow_dns',
  endConnections: 'end_connections',
  popupEnabled: 'popup_enabled',
  notificationsEnabled: 'notifications_enabled',
  logDecisions: 'log_decisions',
  inboundProtection: 'inbound_protection',
  journalDecisions: 'journal_decisions',
  historyMaxEntries: 'history_max_entries',
  historyRetentionDays: 'history_retention_days',
} as const satisfies Record<keyof BastionConfig, string>;

type BooleanField = {
  [K in keyof BastionConfig]: BastionConfig[K] extends boolean ? K : never;
}[keyof BastionConfig];

const BOOLEAN_FIELDS: readonly BooleanField[] = [
  'allowLocalhost',
  'allowLan',
  'allowDns',
  'endConnections',
  'popupEnabled',
  'notificationsEnabled',
  'logDecisions',
  'inboundProtection',
  'journalDecisions',
];

export type ParseConfigResult = { ok: true; config: BastionConfig; warnings: string[]; raw: Record<string, unknown> } | { ok: false; error: string };

/**
 * Validates config.json text. Every bad key is named with its value in one error, so the
 * caller can keep the last good config; an out-of-range timeout is clamped with a warning.
 */
export function parseConfig(text: string): ParseConfigResult {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `not valid JSON: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { ok: false, error: `must be a JSON object, got ${kindOf(raw)}` };
  }
  const obj = raw as Record<string, unknown>;
  const config: BastionConfig = { ...DEFAULT_CONFIG };
  const problems: string[] = [];
  const warnings: string[] = [];
  const has = (name: string): boolean => Object.prototype.hasOwnProperty.call(obj, name);
  const bad = (name: string, expected: string): void => {
    problems.push(`${name} must be ${expected}, got ${JSON.stringify(obj[name])}`);
  };

  if (has(JSON_NAMES.mode)) {
    const v = obj[JSON_NAMES.mode];
    if (v === 'learning' || v === 'enforcement') config.mode = v;
    else bad(JSON_NAMES.mode, '"learning" or "enforcement"');
  }
  if (has(JSON_NAMES.timeoutSeconds)) {
    const v = obj[JSON_NAMES.timeoutSeconds];
    if (typeof v === 'number' && Number.isInteger(v)) {
      config.timeoutSeconds = clampTimeout(v);
      if (config.timeoutSeconds !== v) {
        warnings.push(`timeout_seconds ${v} is outside ${MIN_TIMEOUT_SECONDS}..${MAX_TIMEOUT_SECONDS}; using ${config.timeoutSeconds}`);
      }
    } else {
      bad(JSON_NAMES.timeoutSeconds, 'a whole number of seconds');
    }
  }
  if (has(JSON_NAMES.defaultAction)) {
    const v = obj[JSON_NAMES.defaultAction];
    if (v === 'allow' || v === 'deny') config.defaultAction = v;
    else bad(JSON_NAMES.defaultAction, '"allow" or "deny"');
  }
  for (const [field, [min, max]] of Object.entries(INTEGER_RANGES) as [keyof typeof INTEGER_RANGES, readonly [number, number]][]) {
    const name = JSON_NAMES[field];
    if (!has(name)) continue;
    const v = obj[name];
    if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max) config[field] = v;
    else bad(name, `a whole number from ${min} to ${max}`);
  }
  for (const field of BOOLEAN_FIELDS) {
    const name = JSON_NAMES[field];
    if (!has(name)) continue;
    const v = obj[name];
    if (typeof v === 'boolean') config[field] = v;
    else bad(name, 'true or false');
  }

  if (problems.length > 0) return { ok: false, error: problems.join('; ') };
  return { ok: true, config, warnings, raw: obj };
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  return Array.isArray(value) ? 'an array' : `a ${typeof value}`;
}

export function clampTimeout(seconds: number): number {
  return Math.min(MAX_TIMEOUT_SECONDS, Math.max(MIN_TIMEOUT_SECONDS, seconds));
}

/** config.json text: `raw`'s unknown keys kept in place, known keys written from `config`. */
export function serializeConfig(config: BastionConfig, raw: Record<string, unknown> = {}): string {
  return JSON.stringify({ ...raw, ...configJson(config) }, null, 2) + '\n';
}

/** The keys config.json holds (its JSON names), in the order a new file has them. */
export const CONFIG_KEYS: readonly string[] = Object.values(JSON_NAMES);

/** The config under config.json's names. */
export function configJson(config: Readonly<BastionConfig>): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const field of Object.keys(JSON_NAMES) as (keyof BastionConfig)[]) out[JSON_NAMES[field]] = config[field];
  return out;
}

export function unknownConfigKey(key: string): string {
  return `unknown config key ${JSON.stringify(key)}; the keys: ${CONFIG_KEYS.join(', ')}`;
}

/**
 * `config` with one key (config.json's name) set to `value`, checked by parseConfig exactly as
 * that value in the file would be: the same errors, the same clamping with a warning.
 */
export function withConfigValue(config: Readonly<BastionConfig>, key: string, value: unknown): ParseConfigResult {
  if (!CONFIG_KEYS.includes(key)) return { ok: false, error: unknownConfigKey(key) };
  return parseConfig(JSON.stringify({ ...configJson(config), [key]: value }));
}

/** The subset of a pino logger the stores use (so they do not depend on pino). */
export interface StoreLogger {
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export type ConfigLoadResult = { ok: true; config: BastionConfig; warnings: string[]; missing: boolean } | { ok: false; error: string; config: BastionConfig };

export type SaveResult = { ok: true } | { ok: false; error: string };

export interface ConfigStoreOptions {
  path: string;
  /** Files larger than this are refused before they are read. Default 1 MiB. */
  maxBytes?: number;
  mode?: number;
  uid?: number;
  gid?: number;
  logger?: StoreLogger;
  /** Where the last config that loaded is kept; a start with a broken file uses it. */
  lastGood?: LastGoodCopy;
}

/** Why a store refuses to save before a successful load (shared with the rules store). */
export const NOT_LOADED = 'it has not been loaded yet';

export function loadFailedReason(error: string): string {
  return `the file on disk could not be loaded (${error}); fix or remove it, then reload`;
}

export class ConfigStore {
  readonly path: string;
  private readonly maxBytes: number;
  private readonly writeOptions: WriteOptions;
  private readonly logger: StoreLogger | undefined;
  private config: BastionConfig = { ...DEFAULT_CONFIG };
  private raw: Record<string, unknown> = {};
  /**
   * Why saving would destroy what is on disk (not loaded yet, or a file that failed to load:
   * that is the user's data). While set, save refuses.
   */
  private saveBlocked: string | null = NOT_LOADED;
  private tail: Promise<unknown> = Promise.resolve();
  private readonly lastGood: LastGoodCopy | undefined;
  /** Whether a file (or the last good copy) was ever loaded: until then the defaults are only a stand-in. */
  private loadedOnce = false;

  constructor(opts: ConfigStoreOptions) {
    this.lastGood = opts.lastGood;
    this.path = opts.path;
    this.maxBytes = opts.maxBytes ?? DEFAULT_CONFIG_MAX_BYTES;
    this.writeOptions = {
      ...(opts.mode !== undefined && { mode: opts.mode }),
      ...(opts.uid !== undefined && { uid: opts.uid }),
      ...(opts.gid !== undefined && { gid: opts.gid }),
    };
    this.logger = opts.logger;
  }

  /** The last good config (the defaults until a file loads). */
  get current(): Readonly<BastionConfig> {
    return this.config;
  }

  /** (Re)reads the file, e.g. on SIGHUP. A bad file keeps the current config. */
  load(): Promise<ConfigLoadResult> {
    return this.serialized(async () => {
      const read = await readFileNoFollow(this.path, this.maxBytes);
      if (!read.ok && read.reason === 'missing') {
        this.config = { ...DEFAULT_CONFIG };
        this.raw = {};
        this.saveBlocked = null;
        this.loadedOnce = true;
        return { ok: true, config: this.config, warnings: [], missing: true };
      }
      if (!read.ok) return await this.keepLastGood(read.error);
      const parsed = parseConfig(read.text);
      if (!parsed.ok) return await this.keepLastGood(`${this.path}: ${parsed.error}`);
      if (parsed.warnings.length > 0) {
        this.logger?.warn({ path: this.path, warnings: parsed.warnings }, 'config.json loaded with warnings');
      }
      this.config = parsed.config;
      this.raw = parsed.raw;
      this.saveBlocked = null;
      this.loadedOnce = true;
      await this.lastGood?.remember(read.text);
      return { ok: true, config: this.config, warnings: parsed.warnings, missing: false };
    });
  }

  /** Writes `config` atomically, keeping unknown keys of the last loaded file. */
  save(config: BastionConfig): Promise<SaveResult> {
    return this.update(() => ({ ok: true, config }));
  }

  /**
   * Writes the config `change` makes of the one in force when its turn comes (after loads and
   * saves called before it), so two changes of different keys never undo each other.
   */
  update(change: (current: Readonly<BastionConfig>) => { ok: true; config: BastionConfig } | { ok: false; error: string }): Promise<SaveResult> {
    return this.serialized(async () => {
      const changed = change(this.config);
      if (!changed.ok) return changed;
      const config = changed.config;
      if (this.saveBlocked !== null) {
        return { ok: false, error: `refusing to save ${this.path}: ${this.saveBlocked}` };
      }
      const next = { ...config, timeoutSeconds: clampTimeout(config.timeoutSeconds) };
      try {
        const text = serializeConfig(next, this.raw);
        await writeFileAtomic(this.path, text, this.writeOptions);
        await this.lastGood?.remember(text);
      } catch (err) {
        const error = err instanceof Error ? err.message : String(err);
        this.logger?.error({ path: this.path, error }, 'config.json not saved');
        return { ok: false, error };
      }
      this.config = next;
      return { ok: true };
    });
  }

  /**
   * A file that does not load leaves the config in force as it is; at start that would be the
   * defaults (learning mode), so the last good copy is put in force instead.
   */
  private async keepLastGood(error: string): Promise<ConfigLoadResult> {
    this.saveBlocked = loadFailedReason(error);
    if (!this.loadedOnce) {
      const text = await this.lastGood?.recall(this.maxBytes);
      const copy = text === null || text === undefined ? null : parseConfig(text);
      if (copy?.ok) {
        this.config = copy.config;
        this.raw = copy.raw;
        this.loadedOnce = true;
        this.logger?.error(
          { path: this.path, error, lastGood: this.lastGood?.path, mode: copy.config.mode },
          'config.json not loaded at start; the last good copy is in force',
        );
        return { ok: false, error, config: this.config };
      }
      this.logger?.error({ path: this.path, error }, 'config.json not loaded at start and no last good copy: the defaults are in force');
      return { ok: false, error, config: this.config };
    }
    this.logger?.error({ path: this.path, error }, 'config.json not loaded; keeping the last good config');
    return { ok: false, error, config: this.config };
  }

  /** Loads and saves run one at a time, in call order. */
  private serialized<T>(task: () => Promise<T>): Promise<T> {
    const run = this.tail.then(task);
    this.tail = run.catch(() => undefined);
    return run;
  }
}
