// The Debian package, as CI can check it on every run: built with dpkg-buildpackage (through
// scripts/build-deb.sh), linted, its units verified by systemd, and its installed files run
// from the unpacked package. Installing it into a fresh Debian 12 root with Debian's own
// nodejs 18 is test/debian-install.test.ts (`npm run test:deb-install`).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO } from './support/bastion.js';
import { buildDeb } from './support/deb.js';

const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const LIB = 'usr/lib/bastion-firewall';
const UNITS = ['bastion-firewall.service', 'bastion-helper.service'];

let work = '';
let deb = '';
let root = ''; // the package unpacked

function run(cmd: string, args: string[], opts: { cwd?: string } = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

before(() => {
  work = mkdtempSync(join(tmpdir(), 'bastion-deb-test-'));
  deb = buildDeb();
  root = join(work, 'root');
  execFileSync('dpkg-deb', ['-x', deb, root]);
});
after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the bastion-firewall package', () => {
  it('is named bastion-firewall_<version>_<arch>.deb after package.json and the build architecture', () => {
    const arch = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
    assert.equal(deb.split('/').pop(), `bastion-firewall_${VERSION}_${arch}.deb`);
  });

  it('installs the CLI, both processes, both units, the polkit policy, the reload scripts and the default files', () => {
    for (const path of [
      'usr/bin/bastion',
      'usr/bin/bastion-reload-rules',
      'usr/bin/bastion-reload-config',
      `${LIB}/dist/cli/bastion.js`,
      `${LIB}/dist/helper/helper.js`,
      `${LIB}/dist/service/daemon.js`,
      `${LIB}/native/build/Release/bastion_native.node`,
      `${LIB}/proto/bastion.proto`,
      `${LIB}/package.json`,
      `${LIB}/node_modules/zeromq/package.json`,
      'lib/systemd/system/bastion-firewall.service',
      'lib/systemd/system/bastion-helper.service',
      'usr/lib/sysusers.d/bastion-firewall.conf',
      'usr/lib/tmpfiles.d/bastion-firewall.conf',
      'usr/share/polkit-1/actions/com.bastion.firewall.policy',
      'etc/bastion/config.json',
      'etc/bastion/rules.json',
    ]) {
      assert.ok(existsSync(join(root, path)), `${path} is missing`);
    }
    // Development tools stay out: tsx (and its esbuild binaries), typescript, eslint, node-gyp.
    const modules = readdirSync(join(root, LIB, 'node_modules'));
    for (const dev of ['tsx', 'esbuild', 'typescript', 'eslint', 'node-gyp']) assert.ok(!modules.includes(dev), `${dev} is shipped`);
  });

  it('marks the files in /etc/bastion as conffiles and depends on what it runs on', () => {
    const control = join(work, 'control');
    execFileSync('dpkg-deb', ['-e', deb, control]);
    assert.deepEqual(readFileSync(join(control, 'conffiles'), 'utf8').trim().split('\n').sort(), [
      '/etc/bastion/config.json',
      '/etc/bastion/rules.json',
    ]);
    const depends = execFileSync('dpkg-deb', ['-f', deb, 'Depends'], { encoding: 'utf8' });
    for (const dep of ['nodejs (>= 18)', 'iptables', 'polkitd', 'adduser', 'libnetfilter-queue1', 'libmnl0', 'libsqlite3-0']) {
      assert.ok(depends.includes(dep), `Depends lacks ${dep}: ${depends}`);
    }
    for (const script of ['postinst', 'postrm', 'prerm']) {
      assert.equal(run('sh', ['-n', join(control, script)]).code, 0, `${script} is not valid sh`);
    }
    const postinst = readFileSync(join(control, 'postinst'), 'utf8');
    // Enabled and started on install (restarted on upgrade), by dh_installsystemd's snippets.
    for (const unit of UNITS) assert.match(postinst, new RegExp(`deb-systemd-helper enable '${unit}'`));
    assert.match(postinst, /_dh_action=start/);
    assert.match(postinst, /deb-systemd-invoke \$_dh_action 'bastion-firewall.service' 'bastion-helper.service'/);
    assert.match(readFileSync(join(control, 'prerm'), 'utf8'), /deb-systemd-invoke stop/);
    assert.match(readFileSync(join(control, 'postrm'), 'utf8'), /-D OUTPUT -j BASTION-OUT/);
  });

  it('has no lintian errors', (t) => {
    const started = Date.now();
    const r = run('lintian', ['--tag-display-limit', '0', deb]);
    const lines = (r.stdout + r.stderr).split('\n').filter((l) => /^[EW]: /.test(l));
    const errors = lines.filter((l) => l.startsWith('E: '));
    const warnings = lines.filter((l) => l.startsWith('W: '));
    t.diagnostic(`lintian (${Math.round((Date.now() - started) / 1000)} s): ${errors.length} errors, ${warnings.length} warnings`);
    for (const w of warnings) t.diagnostic(w);
    assert.deepEqual(errors, []);
  });

  it('runs from its own files: bastion --version and the configuration check of the shipped defaults', () => {
    const cli = join(root, LIB, 'dist', 'cli', 'bastion.js');
    assert.equal(run(process.execPath, [cli, '--version']).stdout.trim(), VERSION);
    const config = join(root, 'etc', 'bastion', 'config.json');
    const rules = join(root, 'etc', 'bastion', 'rules.json');
    const ok = run(process.execPath, [cli, 'check-config', '--config', config, '--rules', rules]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, `${config}: ok (mode learning, prompts time out after 60 s)\n${rules}: ok (0 rules)\n`);

    const broken = join(work, 'broken-rules.json');
    writeFileSync(broken, '{"/usr/bin/curl:80": tru');
    const bad = run(process.execPath, [cli, 'check-config', '--rules', broken]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, new RegExp(`^${broken}: invalid: ${broken}: not valid JSON: `));
  });

  it('searches a decision history with its own SQLite addon, linked to Debian\'s libsqlite3', () => {
    const addon = join(root, LIB, 'node_modules', 'sqlite3', 'build', 'Release', 'node_sqlite3.node');
    assert.match(execFileSync('ldd', [addon], { encoding: 'utf8' }), /libsqlite3\.so\.0 => /);
    assert.ok(!existsSync(join(root, LIB, 'node_modules', 'sqlite3', 'deps')), 'the bundled SQLite sources are shipped');
    const history = join(work, 'history.sqlite');
    const sql = "CREATE TABLE decisions (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, pid INTEGER NOT NULL, uid INTEGER, program TEXT NOT NULL, comm TEXT, host TEXT, dest TEXT NOT NULL, port INTEGER NOT NULL, protocol TEXT NOT NULL, allow INTEGER NOT NULL, reason TEXT NOT NULL, rule TEXT, connections INTEGER NOT NULL);" +
      "INSERT INTO decisions VALUES (1, 1764936000000, 42, 1000, '/usr/bin/curl', 'curl', NULL, '192.0.2.1', 443, 'TCP', 0, 'rule', '/usr/bin/curl:443', 1);";
    execFileSync('sqlite3', [history, sql]);
    const cli = join(root, LIB, 'dist', 'cli', 'bastion.js');
    const r = run(process.execPath, [cli, 'log', '--history', history, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { rule_key: string }).rule_key, '/usr/bin/curl:443');
  });

  it('has units that systemd-analyze verify accepts', () => {
    // The package's files, plus what the units name outside it: Debian's stock units (targets)
    // and /bin/sh (ExecReload).
    const verifyRoot = join(work, 'verify-root');
    cpSync(root, verifyRoot, { recursive: true, verbatimSymlinks: true });
    mkdirSync(join(verifyRoot, 'bin'), { recursive: true });
    cpSync('/bin/sh', join(verifyRoot, 'bin', 'sh'), { dereference: true });
    for (const unit of readdirSync('/lib/systemd/system')) {
      const target = join(verifyRoot, 'lib', 'systemd', 'system', unit);
      if (!existsSync(target)) cpSync(join('/lib/systemd/system', unit), target, { recursive: true, verbatimSymlinks: true });
    }
    const r = run('systemd-analyze', ['verify', `--root=${verifyRoot}`, ...UNITS.map((u) => `/lib/systemd/system/${u}`)]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal((r.stdout + r.stderr).trim(), '');
  });

  it('keeps both units hardened (systemd-analyze security)', (t) => {
    const limits: Record<string, number> = { 'bastion-helper.service': 3.5, 'bastion-firewall.service': 1.5 };
    for (const unit of UNITS) {
      const r = run('systemd-analyze', ['security', '--offline=true', '--no-pager', join(root, 'lib', 'systemd', 'system', unit)]);
      const score = /Overall exposure level for \S+: ([\d.]+)/.exec(r.stdout + r.stderr);
      assert.ok(score, r.stdout + r.stderr);
      t.diagnostic(`systemd-analyze security ${unit}: ${score[1]}`);
      assert.ok(Number(score[1]) <= limits[unit]!, `${unit} exposure ${score[1]} is above ${limits[unit]}`);
    }
  });
});
