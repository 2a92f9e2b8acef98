// `bastion status | rules | mode` as child processes against the real service's socket.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO } from '../support/bastion.js';
import { GuiDaemon } from '../support/guiDaemon.js';

const TSX = join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs');
const CLI = join(REPO, 'cli', 'bastion.ts');

function bastion(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', TSX, CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

let daemon: GuiDaemon;
const RESOLV_DIR = mkdtempSync(join(tmpdir(), 'bastion-resolv-'));
const RESOLV_CONF = join(RESOLV_DIR, 'resolv.conf');
before(async () => {
  // A resolv.conf of the test's own (the host's names other nameservers): the status shows its nameserver.
  writeFileSync(RESOLV_CONF, 'nameserver 192.0.2.53\n', { mode: 0o644 });
  daemon = await GuiDaemon.start({
    rules: { '/usr/bin/curl:443': true, '@name:python3:*': false },
    config: { mode: 'enforcement', timeout_seconds: 45 },
    args: ['--resolv-conf', RESOLV_CONF],
  });
});
after(async () => {
  await daemon?.stop();
  rmSync(RESOLV_DIR, { recursive: true, force: true });
});

describe('bastion status', () => {
  it('shows mode, helper state, rules, clients and counters', async () => {
    const r = await bastion('status', '--socket', daemon.socket);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      [
        'mode:     enforcement (default action: deny)',
        'helper:   not connected',
        'dns:      port 53 to 192.0.2.53 passes for every program, decided in the queue (allow_dns)',
        'rules:    2',
        'clients:  1',
        'decided:  0 (allowed 0, blocked 0)',
        'inbound:  not filtered by Bastion (inbound_protection is false; `bastion inbound enable` turns it on)',
        'forward:  not decided: traffic forwarded for containers and VMs (FORWARD) passes without rules, prompts or log',
        'metrics:  none (bastion daemon --metrics-dir DIR writes bastion.prom for node_exporter)',
        '',
      ].join('\n'),
    );
  });

  it('--json has the prompt and timeout figures too', async () => {
    const r = await bastion('status', '--json', '--socket', daemon.socket);
    const s = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(s['timeout_seconds'], 45);
    assert.deepEqual(s['prompts'], { open: 0, limited: 0, answering: 0 });
    assert.equal(s['monitors'], 0);
  });
});

describe('bastion rules', () => {
  it('list prints each rules.json key with its verdict', async () => {
    const r = await bastion('rules', 'list', '--socket', daemon.socket);
    assert.equal(r.stdout, 'allow  /usr/bin/curl:443\ndeny   @name:python3:*\n');
  });

  it('add and delete use the rules.json key grammar', async () => {
    // --force: wget need not be installed (test/cli/rulePaths.test.ts tests the path checks).
    assert.equal((await bastion('rules', 'add', '/usr/bin/wget', '*', '--deny', '--force', '--socket', daemon.socket)).code, 0);
    assert.equal((await bastion('rules', 'add', '/usr/bin/curl', '8080', '--socket', daemon.socket)).code, 0);
    assert.deepEqual(await daemon.rules(), {
      '/usr/bin/curl:443': true,
      '/usr/bin/curl:8080': true,
      '/usr/bin/wget:*': false,
      '@name:python3:*': false,
      applications: {},
      services: {},
    });
    assert.equal((await bastion('rules', 'delete', '/usr/bin/wget:*', '--socket', daemon.socket)).code, 0);
    const missing = await bastion('rules', 'delete', '/usr/bin/wget:*', '--socket', daemon.socket);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'bastion: no rule "/usr/bin/wget:*"\n');
    assert.equal('/usr/bin/wget:*' in (await daemon.rules()), false);
  });
});

describe('bastion rules for host names', () => {
  it('adds an @host rule for a name and for a *.suffix, lists and deletes them by key', async () => {
    assert.equal((await bastion('rules', 'add', '@host:Example.ORG.', '443', '--socket', daemon.socket)).code, 0);
    assert.equal((await bastion('rules', 'add', '@host:*.ads.test', '*', '--deny', '--socket', daemon.socket)).code, 0);
    const list = await bastion('rules', 'list', '--socket', daemon.socket);
    assert.match(list.stdout, /^allow {2}@host:example\.org:443$/m);
    assert.match(list.stdout, /^deny {3}@host:\*\.ads\.test:\*$/m);
    const bad = await bastion('rules', 'add', '@host:bad name', '443', '--socket', daemon.socket);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /rule subject "@host:bad name" is not an absolute path, @name:<comm>, @dest:<ip>:<port or \*> or @host:<name or \*\.suffix>/);
    assert.equal((await bastion('rules', 'delete', '@host:example.org:443', '--socket', daemon.socket)).code, 0);
    assert.equal((await bastion('rules', 'delete', '@host:*.ads.test:*', '--socket', daemon.socket)).code, 0);
    assert.equal(
      Object.keys(await daemon.rules()).some((k) => k.startsWith('@host:')),
      false,
    );
  });
});

describe('bastion mode', () => {
  it('switches the mode, saves it in config.json and tells the service', async () => {
    assert.equal((await bastion('mode', 'learning', '--socket', daemon.socket)).code, 0);
    const s = await daemon.request({ type: 'status' }, 'status');
    assert.equal(s['mode'], 'learning');
    const bad = await bastion('mode', 'paranoid', '--socket', daemon.socket);
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr, 'bastion: field "mode" must be "learning" or "enforcement"\n');
    assert.equal((await bastion('mode', 'enforcement', '--socket', daemon.socket)).code, 0);
  });

  it('says how to fix a missing socket', async () => {
    const r = await bastion('status', '--socket', `${daemon.dir.path}/nothing.sock`);
    const path = `${daemon.dir.path}/nothing.sock`;
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      `bastion: cannot connect to ${path}: the service is not running (no socket there)\nbastion: systemctl status bastion-firewall says why\n`,
    );
  });
});

describe('a service that does not answer', () => {
  it('status gives up after 5 s with one line saying so, not a stack trace', async () => {
    // Accepts and reads, never answers: a service stuck behind something else.
    const dir = mkdtempSync(join(tmpdir(), 'bastion-mute-'));
    const path = join(dir, 'gui.sock');
    const mute = createServer((conn) => conn.resume());
    await new Promise<void>((resolve) => mute.listen(path, resolve));
    try {
      const r = await bastion('status', '--socket', path);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, 'bastion: no status reply within 5000 ms\n');
    } finally {
      mute.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the service's log of CLI calls", () => {
  it('connects and disconnects at debug level only: a CLI call puts no line in the journal at info', async () => {
    const d = await GuiDaemon.start({ logLevel: 'debug' });
    try {
      assert.equal((await bastion('status', '--socket', d.socket)).code, 0);
      await d.proc!.waitFor('GUI client disconnected');
      const lines = d.proc!.lines.filter((l) => l.msg === 'GUI client connected' || l.msg === 'GUI client disconnected');
      assert.deepEqual(
        lines.map((l) => [l.msg, l.level]),
        [
          ['GUI client connected', 20],
          ['GUI client disconnected', 20],
        ],
      );
      assert.equal((lines[0]!['peer'] as { uid: number }).uid, 0, 'the peer is still logged, at debug');
    } finally {
      await d.stop();
    }
  });
});

describe('bastion config', () => {
  let d: GuiDaemon;
  const file = (): Record<string, unknown> => JSON.parse(readFileSync(d.configPath, 'utf8')) as Record<string, unknown>;
  before(async () => {
    // gui_theme: a key this project does not know, which a rewrite must keep.
    d = await GuiDaemon.start({ config: { mode: 'enforcement', timeout_seconds: 45, gui_theme: 'dark' } });
  });
  after(async () => {
    await d?.stop();
  });

  it('get: every key config.json holds, in force, one per line', async () => {
    const r = await bastion('config', 'get', '--socket', d.socket);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      [
        'mode                    enforcement',
        'timeout_seconds         45',
        'default_action          deny',
        'allow_localhost         true',
        'allow_lan               false',
        'allow_dns               true',
        'end_connections         true',
        'popup_enabled           true',
        'notifications_enabled   true',
        'log_decisions           false',
        'inbound_protection      false',
        'journal_decisions       true',
        'history_max_entries     1000000',
        'history_retention_days  30',
        '',
      ].join('\n'),
    );
  });

  it('get KEY prints the value alone; --json the JSON value; an unknown key is named with the keys there are', async () => {
    assert.equal((await bastion('config', 'get', 'timeout_seconds', '--socket', d.socket)).stdout, '45\n');
    assert.equal((await bastion('config', 'get', 'default_action', '--json', '--socket', d.socket)).stdout, '"deny"\n');
    const bad = await bastion('config', 'get', 'colour', '--socket', d.socket);
    assert.equal(bad.code, 1);
    assert.equal(
      bad.stderr,
      'bastion: unknown config key "colour"; the keys: mode, timeout_seconds, default_action, allow_localhost, allow_lan, allow_dns, end_connections, popup_enabled, ' +
        'notifications_enabled, log_decisions, inbound_protection, journal_decisions, history_max_entries, history_retention_days\n',
    );
  });

  it('set: saved in config.json (unknown keys kept) and in force at once', async () => {
    for (const [key, value] of [
      ['allow_lan', 'true'],
      ['default_action', 'allow'],
      ['timeout_seconds', '90'],
      ['history_retention_days', '7'],
      ['log_decisions', 'true'],
    ]) {
      const r = await bastion('config', 'set', key!, value!, '--socket', d.socket);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr + r.stdout, '', `${key} ${value}`);
    }
    assert.deepEqual(file(), {
      mode: 'enforcement',
      timeout_seconds: 90,
      gui_theme: 'dark',
      default_action: 'allow',
      allow_localhost: true,
      allow_lan: true,
      allow_dns: true,
      end_connections: true,
      popup_enabled: true,
      notifications_enabled: true,
      log_decisions: true,
      inbound_protection: false,
      journal_decisions: true,
      history_max_entries: 1_000_000,
      history_retention_days: 7,
    });
    const status = await d.request({ type: 'status' }, 'status');
    assert.deepEqual([status['default_action'], status['timeout_seconds']], ['allow', 90]);
    assert.equal((await bastion('config', 'get', 'allow_lan', '--socket', d.socket)).stdout, 'true\n');
    assert.ok(d.proc!.lines.some((l) => l.msg === 'config.json changed by a GUI client' && l['key'] === 'allow_lan' && l['value'] === true && l.level === 30));
  });

  it('set mode switches the mode as bastion mode does', async () => {
    assert.equal((await bastion('config', 'set', 'mode', 'learning', '--socket', d.socket)).code, 0);
    assert.equal((await d.request({ type: 'status' }, 'status'))['mode'], 'learning');
    assert.equal(file()['mode'], 'learning');
    assert.equal((await bastion('config', 'set', 'mode', 'enforcement', '--socket', d.socket)).code, 0);
  });

  it("refuses a bad value with the config.json parser's own error, and changes nothing", async () => {
    const before = readFileSync(d.configPath, 'utf8');
    const cases: [string, string, string][] = [
      ['timeout_seconds', 'abc', 'timeout_seconds must be a whole number of seconds, got "abc"'],
      ['timeout_seconds', '30.5', 'timeout_seconds must be a whole number of seconds, got 30.5'],
      ['allow_lan', 'yes', 'allow_lan must be true or false, got "yes"'],
      ['allow_localhost', '1', 'allow_localhost must be true or false, got 1'],
      ['default_action', 'maybe', 'default_action must be "allow" or "deny", got "maybe"'],
      ['mode', 'paranoid', 'mode must be "learning" or "enforcement", got "paranoid"'],
      ['history_retention_days', '0', 'history_retention_days must be a whole number from 1 to 3650, got 0'],
      ['history_max_entries', '20000000', 'history_max_entries must be a whole number from 0 to 10000000, got 20000000'],
      [
        'colour',
        'blue',
        'unknown config key "colour"; the keys: mode, timeout_seconds, default_action, allow_localhost, allow_lan, allow_dns, end_connections, popup_enabled, notifications_enabled, log_decisions, inbound_protection, journal_decisions, history_max_entries, history_retention_days',
      ],
    ];
    for (const [key, value, error] of cases) {
      const r = await bastion('config', 'set', key, value, '--socket', d.socket);
      assert.equal(r.code, 1, `${key} ${value}`);
      assert.equal(r.stderr, `bastion: ${error}\n`);
    }
    assert.equal(readFileSync(d.configPath, 'utf8'), before);
    // The very words check-config (and a reload) say about that value in the file.
    const other = `${d.dir.path}/other.json`;
    writeFileSync(other, JSON.stringify({ timeout_seconds: 'abc' }));
    const check = await bastion('check-config', '--config', other);
    assert.equal(check.code, 1);
    assert.ok(check.stderr.endsWith(`${other}: timeout_seconds must be a whole number of seconds, got "abc"\n`), check.stderr);
  });

  it("a timeout outside 5..300 is clamped, as in the file, with the parser's warning", async () => {
    const r = await bastion('config', 'set', 'timeout_seconds', '1000', '--socket', d.socket);
    assert.equal(r.code, 0);
    assert.equal(r.stderr, 'bastion: warning: timeout_seconds 1000 is outside 5..300; using 300\n');
    assert.equal(file()['timeout_seconds'], 300);
    assert.equal((await d.request({ type: 'status' }, 'status'))['timeout_seconds'], 300);
  });
});

describe('bastion config under bastion daemon --mode', () => {
  it('another key leaves the --mode of this run in force; set mode replaces it', async () => {
    const d = await GuiDaemon.start({ config: { mode: 'learning' }, args: ['--mode', 'enforcement'] });
    try {
      assert.equal((await bastion('config', 'set', 'allow_lan', 'true', '--socket', d.socket)).code, 0);
      assert.equal((await d.request({ type: 'status' }, 'status'))['mode'], 'enforcement');
      assert.equal((await bastion('config', 'get', 'mode', '--socket', d.socket)).stdout, 'enforcement\n');
      const saved = JSON.parse(readFileSync(d.configPath, 'utf8')) as Record<string, unknown>;
      assert.deepEqual([saved['mode'], saved['allow_lan']], ['learning', true]);
      assert.equal((await bastion('config', 'set', 'mode', 'learning', '--socket', d.socket)).code, 0);
      assert.equal((await d.request({ type: 'status' }, 'status'))['mode'], 'learning');
    } finally {
      await d.stop();
    }
  });
});
