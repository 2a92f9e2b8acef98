// Rules that do what they say: a path rule names the program the kernel reports for a process
// (links resolved), so `bastion rules add /usr/bin/python3 80` saves /usr/bin/python3.11, an
// alternatives link saves its final target, and a typo is refused instead of saved as a rule
// that never matches. The service's add_rule (the GUI's) resolves links too.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GuiConnection } from '../../cli/guiClient.js';
import { resolveProgramPath } from '../../common/programPath.js';
import { CLI, TSX } from '../support/bastion.js';
import { GuiDaemon } from '../support/guiDaemon.js';

function bastion(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', TSX, CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

// An alternatives chain as Debian makes it: bin/nc -> alternatives/nc -> real/nc.openbsd.
const root = realpathSync(mkdtempSync(join(tmpdir(), 'bastion-rulepaths-')));
const NC = join(root, 'bin', 'nc');
const NC_OPENBSD = join(root, 'real', 'nc.openbsd');
mkdirSync(join(root, 'bin'));
mkdirSync(join(root, 'alternatives'));
mkdirSync(join(root, 'real'));
writeFileSync(NC_OPENBSD, '#!/bin/sh\n', { mode: 0o755 });
symlinkSync(NC_OPENBSD, join(root, 'alternatives', 'nc'));
symlinkSync(join(root, 'alternatives', 'nc'), NC);
symlinkSync(join(root, 'real', 'gone'), join(root, 'bin', 'dangling'));

after(() => rmSync(root, { recursive: true, force: true }));

describe('resolveProgramPath', () => {
  const cases: [string, string, Awaited<ReturnType<typeof resolveProgramPath>>][] = [
    ['a regular file: itself', NC_OPENBSD, { ok: true, path: NC_OPENBSD, linkedFrom: null }],
    ['a link chain: its final target', NC, { ok: true, path: NC_OPENBSD, linkedFrom: NC }],
    ['a missing file: refused as missing', join(root, 'bin', 'crul'), { ok: false, missing: true, error: 'no such file' }],
    ['a dangling link: refused as missing', join(root, 'bin', 'dangling'), { ok: false, missing: true, error: 'no such file' }],
    ['a directory: refused', join(root, 'bin'), { ok: false, missing: false, error: `${join(root, 'bin')} is not a regular file` }],
  ];
  for (const [name, path, expected] of cases) {
    it(name, async () => assert.deepEqual(await resolveProgramPath(path), expected));
  }
});

describe('bastion rules add with a path', () => {
  let daemon: GuiDaemon;
  before(async () => {
    daemon = await GuiDaemon.start({ rules: {}, config: { mode: 'enforcement' } });
  });
  after(async () => {
    await daemon?.stop();
  });

  it('saves the program a link names and shows both (an alternatives chain)', async () => {
    const r = await bastion('rules', 'add', NC, '80', '--socket', daemon.socket);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${NC} → ${NC_OPENBSD}: the rule names the program itself\n`);
    assert.equal((await daemon.rules())[`${NC_OPENBSD}:80`], true);
    assert.equal(`${NC}:80` in (await daemon.rules()), false);
  });

  it('saves /usr/bin/python3 as the interpreter it links to', async () => {
    const target = realpathSync('/usr/bin/python3');
    const r = await bastion('rules', 'add', '/usr/bin/python3', '80', '--socket', daemon.socket);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await daemon.rules())[`${target}:80`], true);
  });

  it('refuses a path that does not exist (a typo), and saves nothing', async () => {
    const before = await daemon.rules();
    const r = await bastion('rules', 'add', '/usr/bin/crul', '443', '--socket', daemon.socket);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'bastion: /usr/bin/crul: no such file: a rule for it would never match (--force keeps it, for a program not installed yet)\n');
    assert.deepEqual(await daemon.rules(), before);
  });

  it('refuses a directory even with --force', async () => {
    const r = await bastion('rules', 'add', join(root, 'bin'), '443', '--force', '--socket', daemon.socket);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /is not a regular file: a rule for it would never match\n$/);
  });

  it('keeps a missing path as given with --force, with a warning', async () => {
    const r = await bastion('rules', 'add', '/opt/later/bin/tool', '443', '--force', '--socket', daemon.socket);
    assert.equal(r.code, 0);
    assert.equal(r.stderr, 'bastion: warning: /opt/later/bin/tool: no such file; kept as given (--force)\n');
    assert.equal((await daemon.rules())['/opt/later/bin/tool:443'], true);
  });

  it("the service's add_rule (the GUI's) saves a link's target too, and a path it cannot find as given", async () => {
    const conn = await GuiConnection.connect(daemon.socket);
    try {
      conn.send({ type: 'add_rule', app_path: NC, app_name: 'nc', port: 8080, allow: false, all_ports: false });
      conn.send({ type: 'add_rule', app_path: '/home/someone/bin/tool', app_name: 'tool', port: 22, allow: true, all_ports: false });
      const rules = (await conn.request({ type: 'list_rules' }, 'rules_list'))['rules'] as Record<string, unknown>;
      assert.equal(rules[`${NC_OPENBSD}:8080`], false);
      assert.equal(`${NC}:8080` in rules, false);
      assert.equal(rules['/home/someone/bin/tool:22'], true);
    } finally {
      conn.close();
    }
    // The log line comes through a pipe, the reply through the socket: it may come a moment later.
    const logged = (): boolean =>
      daemon.proc!.lines.some((l) => l.msg === 'rule path is a link: the rule names its target' && l['given'] === NC && l['saved'] === NC_OPENBSD);
    for (let i = 0; i < 100 && !logged(); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(logged());
  });
});
