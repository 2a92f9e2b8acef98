import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it, mock } from 'node:test';
import type { StoreLogger } from '../../service/config.js';
import { RulesStore } from '../../service/rules/rulesStore.js';

const FIXTURE = new URL('../fixtures/rules-rust-daemon.json', import.meta.url);

let dir: string;
let fixtureText: string;
before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'bastion-rules-'));
  fixtureText = await fsp.readFile(FIXTURE, 'utf8');
});
after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});
afterEach(() => {
  mock.restoreAll();
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

/** A rules.json in its own directory (null: no file), and a store for it. */
async function storeWith(text: string | null, opts: { maxBytes?: number; logger?: StoreLogger } = {}): Promise<{ store: RulesStore; file: string }> {
  const d = await fsp.mkdtemp(path.join(dir, 'case-'));
  const file = path.join(d, 'rules.json');
  if (text !== null) await fsp.writeFile(file, text);
  return { store: new RulesStore({ path: file, ...opts }), file };
}

/** Every file write fails as the kernel would fail it with code, until mock.restoreAll(). */
async function failWrites(code: string, message: string): Promise<void> {
  const probe = await fsp.open(path.join(dir, `probe-${code}`), 'w');
  const fileHandleProto = Object.getPrototypeOf(probe) as { writeFile: () => Promise<void> };
  await probe.close();
  mock.method(fileHandleProto, 'writeFile', async () => {
    throw Object.assign(new Error(`${code}: ${message}, write`), { code });
  });
}

const curl443 = { exe: '/usr/bin/curl', comm: 'curl', destIp: '192.0.2.1', destPort: 443 };

describe('RulesStore.load', () => {
  it('starts with no rules when the file is missing, and does not create it', async () => {
    const { store, file } = await storeWith(null);
    assert.deepEqual(await store.load(), { ok: true, count: 0, warnings: [], missing: true });
    assert.equal(store.rules.size, 0);
    await assert.rejects(fsp.stat(file), { code: 'ENOENT' });
  });

  it("loads the old daemon's rules.json: 10 rules, meta keys skipped", async () => {
    const { store } = await storeWith(fixtureText);
    assert.deepEqual(await store.load(), { ok: true, count: 10, warnings: [], missing: false });
    assert.deepEqual(store.rules.match({ exe: '/opt/tools/sync agent', comm: 'sync agent', destIp: '192.0.2.1', destPort: 443 }), {
      allow: true,
      key: '/opt/tools/sync agent:443',
    });
  });

  it('logs and returns the warnings for skipped entries', async () => {
    const logger = recordingLogger();
    const { store, file } = await storeWith('{"/usr/bin/curl:443": true, "/usr/bin/curl:https": true}', { logger });
    const warnings = ['skipped: rule key "/usr/bin/curl:https" has port part "https"; expected 1-65535, "*" or "0"'];
    assert.deepEqual(await store.load(), { ok: true, count: 1, warnings, missing: false });
    assert.deepEqual(logger.calls, [{ level: 'warn', obj: { path: file, warnings }, msg: 'rules.json: entries skipped' }]);
  });

  const broken: [name: string, content: string | 'symlink', error: (file: string) => string][] = [
    ['corrupt', '{"/usr/bin/curl:443": tru}', (f) => `${f}: not valid JSON: ${jsonError('{"/usr/bin/curl:443": tru}')}`],
    ['truncated', '{\n  "/usr/bin/curl:*": true,\n  "/usr/b', (f) => `${f}: not valid JSON: ${jsonError('{\n  "/usr/bin/curl:*": true,\n  "/usr/b')}`],
    ['non-object', '["/usr/bin/curl:*"]', (f) => `${f}: rules must be a JSON object, got an array`],
    ['too large', `{"/usr/bin/curl:*": true, "pad": "${'x'.repeat(300)}"}`, (f) => `${f} is too large (336 bytes; the limit is 200 bytes)`],
    ['symlinked', 'symlink', (f) => `${f} is a symlink; refusing to follow it`],
  ];
  for (const [name, content, error] of broken) {
    it(`refuses a ${name} rules.json, keeps the previous rules and never overwrites the file`, async () => {
      const logger = recordingLogger();
      const { store, file } = await storeWith('{"/usr/bin/curl:443": false}', { maxBytes: 200, logger });
      assert.equal((await store.load()).ok, true);

      if (content === 'symlink') {
        await fsp.writeFile(`${file}.real`, '{}');
        await fsp.rm(file);
        await fsp.symlink(`${file}.real`, file);
      } else {
        await fsp.writeFile(file, content);
      }
      const onDisk = await fsp.readFile(file, 'utf8');

      assert.deepEqual(await store.load(), { ok: false, error: error(file), inForce: 'the previous rules stay in force' });
      assert.deepEqual(store.rules.match(curl443), { allow: false, key: '/usr/bin/curl:443' });
      assert.deepEqual(logger.calls, [
        { level: 'error', obj: { path: file, error: error(file), rules: 1 }, msg: 'rules.json not loaded; keeping the rules in force' },
      ]);

      const refusal = `refusing to save ${file}: the file on disk could not be loaded (${error(file)}); fix or remove it, then reload`;
      assert.deepEqual(await store.setRule('/usr/bin/wget', '*', true), { ok: false, error: refusal });
      assert.deepEqual(await store.deleteKey('/usr/bin/curl:443'), { ok: false, error: refusal });
      assert.deepEqual(await store.save(), { ok: false, error: refusal });
      assert.equal(await fsp.readFile(file, 'utf8'), onDisk);
      assert.equal(store.rules.size, 1);
    });
  }

  it('accepts changes again once the file is fixed and reloaded', async () => {
    const { store, file } = await storeWith('{"/usr/bin/curl:443": tru');
    assert.equal((await store.load()).ok, false);
    await fsp.writeFile(file, '{"/usr/bin/curl:443": true}');
    assert.equal((await store.load()).ok, true);
    assert.deepEqual(await store.setRule('/usr/bin/wget', 80, false), { ok: true, key: '/usr/bin/wget:80' });
  });

  it('refuses to change rules before the file was loaded', async () => {
    const { store, file } = await storeWith(fixtureText);
    assert.deepEqual(await store.setRule('/usr/bin/wget', 80, false), {
      ok: false,
      error: `refusing to save ${file}: it has not been loaded yet`,
    });
    assert.equal(await fsp.readFile(file, 'utf8'), fixtureText);
  });
});

describe('RulesStore saving', () => {
  it('round-trips the old daemon\'s file: keys sorted, ":0" written as ":*", meta keys kept', async () => {
    const { store, file } = await storeWith(fixtureText);
    await store.load();
    assert.deepEqual(await store.save(), { ok: true });
    assert.equal(await fsp.readFile(file, 'utf8'), fixtureText.replace('"/usr/bin/wget:0"', '"/usr/bin/wget:*"'));
  });

  it('saves a new rule sorted and pretty-printed, mode 0640, with no temp file left behind', async () => {
    const { store, file } = await storeWith(null);
    await store.load();
    assert.deepEqual(await store.setRule('/usr/bin/curl', 443, true), { ok: true, key: '/usr/bin/curl:443' });
    assert.deepEqual(await store.setRule('/usr/bin/curl', 0, false), { ok: true, key: '/usr/bin/curl:*' });
    assert.equal(
      await fsp.readFile(file, 'utf8'),
      '{\n  "/usr/bin/curl:*": false,\n  "/usr/bin/curl:443": true,\n  "applications": {},\n  "services": {}\n}\n',
    );
    assert.equal((await fsp.stat(file)).mode & 0o777, 0o640);
    assert.deepEqual(await fsp.readdir(path.dirname(file)), ['rules.json']);
    assert.deepEqual(store.rules.match(curl443), { allow: true, key: '/usr/bin/curl:443' });
  });

  it('uses the mode it is given', async () => {
    const d = await fsp.mkdtemp(path.join(dir, 'case-'));
    const store = new RulesStore({ path: path.join(d, 'rules.json'), mode: 0o600 });
    await store.load();
    await store.setRule('/usr/bin/curl', 443, true);
    assert.equal((await fsp.stat(path.join(d, 'rules.json'))).mode & 0o777, 0o600);
  });

  it('refuses an invalid rule and leaves rules and file unchanged', async () => {
    const { store, file } = await storeWith(fixtureText);
    await store.load();
    assert.deepEqual(await store.setRule('curl', 443, true), {
      ok: false,
      error: 'rule subject "curl" is not an absolute path, @name:<comm>, @dest:<ip>:<port or *> or @host:<name or *.suffix>',
    });
    assert.equal(store.rules.size, 10);
    assert.equal(await fsp.readFile(file, 'utf8'), fixtureText);
  });

  it('deletes a key and saves', async () => {
    const { store, file } = await storeWith(fixtureText);
    await store.load();
    assert.deepEqual(await store.deleteKey('/usr/bin/curl:*'), { ok: true, deleted: true });
    const saved = JSON.parse(await fsp.readFile(file, 'utf8')) as Record<string, unknown>;
    assert.equal('/usr/bin/curl:*' in saved, false);
    assert.equal(saved['/usr/bin/curl:25'], false);
    assert.equal(store.rules.size, 9);
  });

  for (const key of ['applications', '/usr/bin/curl:8080', '/usr/bin/nothing']) {
    it(`deleting ${JSON.stringify(key)} changes nothing and does not rewrite the file`, async () => {
      const { store, file } = await storeWith(fixtureText);
      await store.load();
      assert.deepEqual(await store.deleteKey(key), { ok: true, deleted: false });
      assert.equal(await fsp.readFile(file, 'utf8'), fixtureText);
      assert.equal(store.rules.size, 10);
    });
  }

  it('two quick edits are saved one after the other and both survive', async () => {
    const { store, file } = await storeWith(null);
    await store.load();
    const results = await Promise.all([
      store.setRule('/usr/bin/curl', 443, true),
      store.setRule('/usr/bin/wget', '*', false),
      store.deleteKey('/usr/bin/curl:443'),
      store.setRule('@name:python3', 80, true),
    ]);
    assert.deepEqual(results, [
      { ok: true, key: '/usr/bin/curl:443' },
      { ok: true, key: '/usr/bin/wget:*' },
      { ok: true, deleted: true },
      { ok: true, key: '@name:python3:80' },
    ]);
    const reread = new RulesStore({ path: file });
    await reread.load();
    assert.deepEqual(reread.rules.toJSON(), {
      '/usr/bin/wget:*': false,
      '@name:python3:80': true,
      applications: {},
      services: {},
    });
  });

  it('edits made while a save is in flight share one save: 60 deletes cost at most 2 saves, not 60', async () => {
    const keys = Array.from({ length: 60 }, (_, i) => `/opt/app${i}:${1000 + i}`);
    const initial = Object.fromEntries(keys.map((k) => [k, true]));
    let saves = 0;
    const { file } = await storeWith(JSON.stringify(initial));
    const store = new RulesStore({ path: file, onChange: () => saves++ });
    await store.load();
    saves = 0;
    const first = store.deleteKey(keys[0]!);
    await new Promise((r) => setImmediate(r)); // the first save is under way
    const rest = keys.slice(1).map((k) => store.deleteKey(k));
    assert.deepEqual(
      await Promise.all([first, ...rest]),
      keys.map(() => ({ ok: true, deleted: true })),
    );
    assert.ok(saves >= 1 && saves <= 2, `${saves} saves`);
    assert.equal(store.rules.size, 0);
    assert.deepEqual(JSON.parse(await fsp.readFile(file, 'utf8')), { applications: {}, services: {} });
  });

  it('a batch whose save fails: each of its changes gets the error and none applies; an invalid edit keeps its own error', async () => {
    const { store, file } = await storeWith(fixtureText);
    await store.load();
    await failWrites('EIO', 'i/o error');
    const error = `cannot write ${file}: EIO: i/o error, write`;
    const results = await Promise.all([
      store.deleteKey('/usr/bin/curl:*'),
      store.setRule('relative/path', 80, true),
      store.deleteKey('/usr/bin/nothing'),
      store.setRule('/usr/bin/wget', 8080, true),
    ]);
    assert.deepEqual(results, [
      { ok: false, error },
      { ok: false, error: 'rule subject "relative/path" is not an absolute path, @name:<comm>, @dest:<ip>:<port or *> or @host:<name or *.suffix>' },
      { ok: true, deleted: false },
      { ok: false, error },
    ]);
    mock.restoreAll();
    assert.equal(store.rules.size, 10);
    assert.equal(await fsp.readFile(file, 'utf8'), fixtureText);
  });

  it('an edit made after load() is not saved before it: it applies to what the load read', async () => {
    const changes: string[] = [];
    const { file } = await storeWith('{}');
    const store = new RulesStore({ path: file, onChange: () => changes.push(Object.keys(store.rules.toJSON()).join(',')) });
    await store.load();
    changes.length = 0;
    const before = store.setRule('/usr/bin/a', 1, true);
    const reload = store.load();
    const after = store.setRule('/usr/bin/b', 2, true);
    await Promise.all([before, reload, after]);
    assert.deepEqual(changes, ['/usr/bin/a:1,applications,services', '/usr/bin/a:1,applications,services', '/usr/bin/a:1,/usr/bin/b:2,applications,services']);
  });

  it('refuses to save into a symlinked target and leaves the rules as they were', async () => {
    const { store, file } = await storeWith('{"/usr/bin/curl:443": false}');
    await store.load();
    await fsp.rename(file, `${file}.real`);
    await fsp.symlink(`${file}.real`, file);
    assert.deepEqual(await store.setRule('/usr/bin/curl', 443, true), {
      ok: false,
      error: `${file} is a symlink; refusing to write through it`,
    });
    assert.deepEqual(store.rules.match(curl443), { allow: false, key: '/usr/bin/curl:443' });
    assert.equal(await fsp.readFile(`${file}.real`, 'utf8'), '{"/usr/bin/curl:443": false}');
  });

  it('when the disk is full keeps the old file, removes the temp file and rolls the change back', async () => {
    const logger = recordingLogger();
    const { store, file } = await storeWith(fixtureText, { logger });
    await store.load();
    await failWrites('ENOSPC', 'no space left on device');
    const error = `cannot write ${file}: ENOSPC: no space left on device, write`;
    assert.deepEqual(await store.deleteKey('/usr/bin/curl:*'), { ok: false, error });
    assert.deepEqual(logger.calls, [{ level: 'error', obj: { path: file, error }, msg: 'rules.json not saved' }]);
    mock.restoreAll();
    assert.equal(store.rules.size, 10);
    assert.equal(await fsp.readFile(file, 'utf8'), fixtureText);
    assert.deepEqual(await fsp.readdir(path.dirname(file)), ['rules.json']);
  });
});
