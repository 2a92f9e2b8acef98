import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigStore, DEFAULT_CONFIG, parseConfig, serializeConfig } from '../../service/config.js';
import type { BastionConfig, StoreLogger } from '../../service/config.js';

let dir: string;
before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'bastion-config-'));
});
after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

function jsonError(text: string): string {
  try {
    JSON.parse(text);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected invalid JSON');
}

function recordingLogger(): StoreLogger & { calls: { level: string; obj: object; msg?: string }[] } {
  const calls: { level: string; obj: object; msg?: string }[] = [];
  return {
    calls,
    warn: (obj, msg) => calls.push({ level: 'warn', obj, ...(msg !== undefined && { msg }) }),
    error: (obj, msg) => calls.push({ level: 'error', obj, ...(msg !== undefined && { msg }) }),
  };
}

const CUSTOM: BastionConfig = {
  mode: 'enforcement',
  timeoutSeconds: 30,
  defaultAction: 'allow',
  allowLocalhost: false,
  allowLan: true,
  allowDns: false,
  endConnections: false,
  popupEnabled: false,
  notificationsEnabled: false,
  logDecisions: true,
  inboundProtection: true,
  journalDecisions: false,
  historyMaxEntries: 5000,
  historyRetentionDays: 7,
};

const CUSTOM_TEXT = `{
  "mode": "enforcement",
  "timeout_seconds": 30,
  "default_action": "allow",
  "allow_localhost": false,
  "allow_lan": true,
  "allow_dns": false,
  "end_connections": false,
  "popup_enabled": false,
  "notifications_enabled": false,
  "log_decisions": true,
  "inbound_protection": true,
  "journal_decisions": false,
  "history_max_entries": 5000,
  "history_retention_days": 7
}
`;

describe('DEFAULT_CONFIG', () => {
  it('has the defaults gui-protocol.md states', () => {
    assert.deepEqual(DEFAULT_CONFIG, {
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
  });
});

describe('parseConfig', () => {
  it('gives the defaults for an empty object', () => {
    assert.deepEqual(parseConfig('{}'), { ok: true, config: DEFAULT_CONFIG, warnings: [], raw: {} });
  });

  it('reads every known key by its JSON name', () => {
    const result = parseConfig(CUSTOM_TEXT);
    assert.ok(result.ok);
    assert.deepEqual(result.config, CUSTOM);
    assert.deepEqual(result.warnings, []);
  });

  it('keeps unknown keys in raw', () => {
    const result = parseConfig('{"theme": "dark", "mode": "learning"}');
    assert.ok(result.ok);
    assert.deepEqual(result.raw, { theme: 'dark', mode: 'learning' });
  });

  const clamped: [given: number, used: number, warnings: string[]][] = [
    [1, 5, ['timeout_seconds 1 is outside 5..300; using 5']],
    [0, 5, ['timeout_seconds 0 is outside 5..300; using 5']],
    [-10, 5, ['timeout_seconds -10 is outside 5..300; using 5']],
    [1000, 300, ['timeout_seconds 1000 is outside 5..300; using 300']],
    [5, 5, []],
    [300, 300, []],
  ];
  for (const [given, used, warnings] of clamped) {
    it(`uses timeout ${used} for timeout_seconds ${given}${warnings.length > 0 ? ', with a warning' : ''}`, () => {
      const result = parseConfig(`{"timeout_seconds": ${given}}`);
      assert.ok(result.ok);
      assert.equal(result.config.timeoutSeconds, used);
      assert.deepEqual(result.warnings, warnings);
    });
  }

  const badValues: [text: string, error: string][] = [
    ['{"mode": "fast"}', 'mode must be "learning" or "enforcement", got "fast"'],
    ['{"mode": null}', 'mode must be "learning" or "enforcement", got null'],
    ['{"timeout_seconds": "60"}', 'timeout_seconds must be a whole number of seconds, got "60"'],
    ['{"timeout_seconds": 30.5}', 'timeout_seconds must be a whole number of seconds, got 30.5'],
    ['{"default_action": "block"}', 'default_action must be "allow" or "deny", got "block"'],
    ['{"allow_localhost": "yes"}', 'allow_localhost must be true or false, got "yes"'],
    ['{"allow_lan": 1}', 'allow_lan must be true or false, got 1'],
    ['{"popup_enabled": null}', 'popup_enabled must be true or false, got null'],
    ['{"notifications_enabled": []}', 'notifications_enabled must be true or false, got []'],
    ['{"log_decisions": "false"}', 'log_decisions must be true or false, got "false"'],
    ['{"inbound_protection": {}}', 'inbound_protection must be true or false, got {}'],
    ['{"mode": "fast", "allow_lan": "no"}', 'mode must be "learning" or "enforcement", got "fast"; allow_lan must be true or false, got "no"'],
  ];
  for (const [text, error] of badValues) {
    it(`refuses ${text}, naming the key and value`, () => {
      assert.deepEqual(parseConfig(text), { ok: false, error });
    });
  }

  const notObjects: [text: string, error: string][] = [
    ['[]', 'must be a JSON object, got an array'],
    ['null', 'must be a JSON object, got null'],
    ['42', 'must be a JSON object, got a number'],
    ['"learning"', 'must be a JSON object, got a string'],
  ];
  for (const [text, error] of notObjects) {
    it(`refuses ${text} as not an object`, () => {
      assert.deepEqual(parseConfig(text), { ok: false, error });
    });
  }

  for (const text of ['{"mode": "learning",', '', 'mode = learning']) {
    it(`refuses invalid JSON ${JSON.stringify(text)}`, () => {
      assert.deepEqual(parseConfig(text), { ok: false, error: `not valid JSON: ${jsonError(text)}` });
    });
  }
});

describe('serializeConfig', () => {
  it('writes every known key by its JSON name, 2-space indented with a trailing newline', () => {
    assert.equal(serializeConfig(CUSTOM, {}), CUSTOM_TEXT);
  });

  it('keeps unknown keys where they were and updates known keys in place', () => {
    const raw = { theme: 'dark', mode: 'learning', extra: { a: [1, 2] } };
    const text = serializeConfig({ ...DEFAULT_CONFIG, mode: 'enforcement' }, raw);
    assert.deepEqual(Object.keys(JSON.parse(text)), [
      'theme',
      'mode',
      'extra',
      'timeout_seconds',
      'default_action',
      'allow_localhost',
      'allow_lan',
      'allow_dns',
      'end_connections',
      'popup_enabled',
      'notifications_enabled',
      'log_decisions',
      'inbound_protection',
      'journal_decisions',
      'history_max_entries',
      'history_retention_days',
    ]);
    const back = parseConfig(text);
    assert.ok(back.ok);
    assert.equal(back.config.mode, 'enforcement');
    assert.deepEqual(back.raw['extra'], { a: [1, 2] });
  });
});

describe('ConfigStore', () => {
  async function storeWith(text: string | null, logger?: StoreLogger): Promise<{ store: ConfigStore; file: string }> {
    const d = await fsp.mkdtemp(path.join(dir, 'case-'));
    const file = path.join(d, 'config.json');
    if (text !== null) await fsp.writeFile(file, text);
    return { store: new ConfigStore({ path: file, maxBytes: 4096, ...(logger && { logger }) }), file };
  }

  it('gives the defaults when the file is missing, and does not create it', async () => {
    const { store, file } = await storeWith(null);
    assert.deepEqual(await store.load(), { ok: true, config: DEFAULT_CONFIG, warnings: [], missing: true });
    assert.deepEqual(store.current, DEFAULT_CONFIG);
    await assert.rejects(fsp.stat(file), { code: 'ENOENT' });
  });

  it('loads a good file and reports clamping warnings', async () => {
    const logger = recordingLogger();
    const { store, file } = await storeWith('{"mode": "enforcement", "timeout_seconds": 900}', logger);
    assert.deepEqual(await store.load(), {
      ok: true,
      config: { ...DEFAULT_CONFIG, mode: 'enforcement', timeoutSeconds: 300 },
      warnings: ['timeout_seconds 900 is outside 5..300; using 300'],
      missing: false,
    });
    assert.deepEqual(logger.calls, [
      {
        level: 'warn',
        obj: { path: file, warnings: ['timeout_seconds 900 is outside 5..300; using 300'] },
        msg: 'config.json loaded with warnings',
      },
    ]);
  });

  const broken: [name: string, content: string | 'symlink', error: (file: string) => string][] = [
    ['corrupt', '{"mode": enforcement}', (f) => `${f}: not valid JSON: ${jsonError('{"mode": enforcement}')}`],
    ['truncated', '{"mode": "learning", "timeout_', (f) => `${f}: not valid JSON: ${jsonError('{"mode": "learning", "timeout_')}`],
    ['non-object', '["learning"]', (f) => `${f}: must be a JSON object, got an array`],
    ['wrongly typed', '{"allow_lan": "yes"}', (f) => `${f}: allow_lan must be true or false, got "yes"`],
    ['too large', `{"pad": "${'x'.repeat(5000)}"}`, (f) => `${f} is too large (5011 bytes; the limit is 4096 bytes)`],
    ['symlinked', 'symlink', (f) => `${f} is a symlink; refusing to follow it`],
  ];
  for (const [name, content, error] of broken) {
    it(`refuses a ${name} config.json, keeps the last good config and does not overwrite the file`, async () => {
      const logger = recordingLogger();
      const { store, file } = await storeWith(CUSTOM_TEXT, logger);
      assert.equal((await store.load()).ok, true);

      if (content === 'symlink') {
        await fsp.writeFile(`${file}.real`, '{"mode": "learning"}');
        await fsp.rm(file);
        await fsp.symlink(`${file}.real`, file);
      } else {
        await fsp.writeFile(file, content);
      }
      const onDisk = await fsp.readFile(file, 'utf8');

      assert.deepEqual(await store.load(), { ok: false, error: error(file), config: CUSTOM });
      assert.deepEqual(store.current, CUSTOM);
      assert.deepEqual(logger.calls, [
        { level: 'error', obj: { path: file, error: error(file) }, msg: 'config.json not loaded; keeping the last good config' },
      ]);

      assert.deepEqual(await store.save({ ...CUSTOM, mode: 'learning' }), {
        ok: false,
        error: `refusing to save ${file}: the file on disk could not be loaded (${error(file)}); fix or remove it, then reload`,
      });
      assert.equal(await fsp.readFile(file, 'utf8'), onDisk);
      assert.deepEqual(store.current, CUSTOM);
    });
  }

  it('refuses a bad file at start-up and keeps the defaults', async () => {
    const { store, file } = await storeWith('{"mode": "fast"}');
    assert.deepEqual(await store.load(), {
      ok: false,
      error: `${file}: mode must be "learning" or "enforcement", got "fast"`,
      config: DEFAULT_CONFIG,
    });
    assert.deepEqual(store.current, DEFAULT_CONFIG);
  });

  it('refuses to save before the file was loaded', async () => {
    const { store, file } = await storeWith(CUSTOM_TEXT);
    assert.deepEqual(await store.save(DEFAULT_CONFIG), {
      ok: false,
      error: `refusing to save ${file}: it has not been loaded yet`,
    });
    assert.equal(await fsp.readFile(file, 'utf8'), CUSTOM_TEXT);
  });

  it('saves atomically, keeps unknown keys and leaves no temp file behind', async () => {
    const { store, file } = await storeWith('{"theme": "dark", "mode": "learning"}\n');
    await store.load();
    assert.deepEqual(await store.save({ ...DEFAULT_CONFIG, mode: 'enforcement' }), { ok: true });
    assert.equal(await fsp.readFile(file, 'utf8'), serializeConfig({ ...DEFAULT_CONFIG, mode: 'enforcement' }, { theme: 'dark', mode: 'learning' }));
    assert.deepEqual(await fsp.readdir(path.dirname(file)), ['config.json']);
    assert.equal(store.current.mode, 'enforcement');

    const again = new ConfigStore({ path: file });
    const loaded = await again.load();
    assert.ok(loaded.ok);
    assert.equal(loaded.config.mode, 'enforcement');
  });

  it('clamps the timeout it saves', async () => {
    const { store, file } = await storeWith(null);
    await store.load();
    await store.save({ ...DEFAULT_CONFIG, timeoutSeconds: 2 });
    assert.equal(store.current.timeoutSeconds, 5);
    assert.equal(JSON.parse(await fsp.readFile(file, 'utf8')).timeout_seconds, 5);
  });

  it('refuses to save into a symlinked target', async () => {
    const { store, file } = await storeWith(null);
    await store.load();
    await fsp.writeFile(`${file}.real`, 'precious');
    await fsp.symlink(`${file}.real`, file);
    assert.deepEqual(await store.save(CUSTOM), { ok: false, error: `${file} is a symlink; refusing to write through it` });
    assert.equal(await fsp.readFile(`${file}.real`, 'utf8'), 'precious');
    assert.deepEqual(store.current, DEFAULT_CONFIG);
  });

  it('reloads after the file is fixed', async () => {
    const { store, file } = await storeWith('{"mode": "fast"}');
    assert.equal((await store.load()).ok, false);
    await fsp.writeFile(file, CUSTOM_TEXT);
    assert.deepEqual(await store.load(), { ok: true, config: CUSTOM, warnings: [], missing: false });
    assert.deepEqual(await store.save(DEFAULT_CONFIG), { ok: true });
  });
});
