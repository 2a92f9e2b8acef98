// The Debian package, as CI can check it on every run: built with dpkg-buildpackage (through
// scripts/build-deb.sh), linted, its units verified by systemd, and its installed files run
// from the unpacked package. Installing it into a fresh Debian 12 root with Debian's own
// nodejs 18 is test/debian-install.test.ts (`npm run test:deb-install`).
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
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
      // The desktop agent: its user unit, autostart entry, the panel's launcher, icon and assets.
      'usr/lib/systemd/user/bastion-agent.service',
      'etc/xdg/autostart/bastion-agent.desktop',
      'usr/share/applications/bastion-firewall.desktop',
      'usr/share/icons/hicolor/scalable/apps/bastion-firewall.svg',
      `${LIB}/dist/cli/agent/agentCommand.js`,
      `${LIB}/dist/ui/panel.js`,
      `${LIB}/dist/ui/panel.css`,
      `${LIB}/dist/ui/index.html`,
      `${LIB}/dist/ui/icon.svg`,
    ]) {
      assert.ok(existsSync(join(root, path)), `${path} is missing`);
    }
    // Development tools stay out: tsx (and its esbuild binaries), typescript, eslint, node-gyp.
    const modules = readdirSync(join(root, LIB, 'node_modules'));
    for (const dev of ['tsx', 'esbuild', 'typescript', 'eslint', 'node-gyp']) assert.ok(!modules.includes(dev), `${dev} is shipped`);
  });

  it('ships what runs and nothing else: every file matches the allowlist', (t) => {
    // dpkg-deb -c: "-rw-r--r-- root/root 337 2026-11-28 12:00 ./etc/bastion/config.json", and
    // " -> target" after a symbolic link's path.
    const listing = execFileSync('dpkg-deb', ['-c', deb], { encoding: 'utf8', maxBuffer: 64 << 20 });
    const files = listing
      .split('\n')
      .filter((line) => line !== '' && !line.startsWith('d'))
      .map((line) =>
        line
          .split(/\s+/)
          .slice(5)
          .join(' ')
          .replace(/ -> .*$/, '')
          .replace(/^\.\//, ''),
      );
    const installedKb = Number(execFileSync('dpkg-deb', ['-f', deb, 'Installed-Size'], { encoding: 'utf8' }).trim());
    t.diagnostic(`${files.length} files, installed size ${(installedKb / 1024).toFixed(1)} MiB`);

    // The npm packages npm ci installs for production (not dev, not optional), by name.
    const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean; optional?: boolean; devOptional?: boolean }>;
    };
    const production = new Set(
      Object.entries(lock.packages)
        .filter(([path, p]) => path.startsWith('node_modules/') && !p.dev && !p.optional && !p.devOptional)
        .map(([path]) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length)),
    );
    const pkg = `(?:${[...production].map((n) => n.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('|')})`;
    const arch = process.arch; // zeromq names its prebuilt addons after Node's arch
    const allowed: RegExp[] = [
      /^etc\/bastion\/(config|rules)\.json$/,
      /^lib\/systemd\/system\/bastion-(firewall|helper)\.service$/,
      /^usr\/bin\/bastion(-reload-rules|-reload-config)?$/,
      /^usr\/lib\/(sysusers|tmpfiles)\.d\/bastion-firewall\.conf$/,
      /^usr\/share\/polkit-1\/actions\/com\.bastion\.firewall\.policy$/,
      /^usr\/lib\/systemd\/user\/bastion-agent\.service$/,
      /^etc\/xdg\/autostart\/bastion-agent\.desktop$/,
      /^usr\/share\/applications\/bastion-firewall\.desktop$/,
      /^usr\/share\/icons\/hicolor\/scalable\/apps\/bastion-firewall\.svg$/,
      // The control panel, bundled at package time (scripts/build-ui.mjs).
      new RegExp(`^${LIB}/dist/ui/(index\\.html|panel\\.js|panel\\.css|icon\\.svg)$`),
      /^usr\/share\/doc\/bastion-firewall\/(copyright|changelog(\.Debian)?\.gz|README\.md\.gz)$/,
      /^usr\/share\/man\/man1\/bastion(-reload-rules|-reload-config)?\.1\.gz$/,
      new RegExp(`^${LIB}/(package\\.json|proto/bastion\\.proto|native/build/Release/bastion_native\\.node)$`),
      new RegExp(`^${LIB}/dist/(cli|common|helper|service)/([\\w.-]+/)*[\\w.-]+\\.js$`),
      // A production dependency's JavaScript and JSON, and its license files (top level).
      new RegExp(`^${LIB}/node_modules/(${pkg}/node_modules/)*${pkg}/([\\w.-]+/)*[\\w.-]+\\.(js|cjs|mjs|json)$`),
      new RegExp(`^${LIB}/node_modules/(${pkg}/node_modules/)*${pkg}/(LICEN[CS]E|COPYING|NOTICE)[\\w.-]*$`, 'i'),
      // The two npm addons: sqlite3's, built against libsqlite3, and zeromq's for this platform.
      new RegExp(`^${LIB}/node_modules/sqlite3/build/Release/node_sqlite3\\.node$`),
      new RegExp(`^${LIB}/node_modules/zeromq/build/linux/${arch}/node/glibc-\\d+-Release/addon\\.node$`),
    ];
    const unexpected = files.filter((f) => !allowed.some((re) => re.test(f)));
    assert.deepEqual(unexpected, [], `${unexpected.length} files outside the allowlist:\n${unexpected.join('\n')}`);

    // Whatever the allowlist says: no tests, declarations, source maps, development leftovers.
    for (const bad of ['/test/', '/tests/', '.d.ts', '.map', '.claude', 'CLAUDE.md', '.github', '@types', '/.bin/']) {
      const found = files.filter((f) => f.includes(bad));
      assert.deepEqual(found, [], `shipped files with ${bad} in their path`);
    }
    // Only what is loaded: no browser bundles, no packages used only to build or install the
    // addons (prebuild-install, node-addon-api, tar), one zeromq addon for this architecture.
    for (const dropped of [
      'protobufjs/dist/',
      'node_modules/prebuild-install/',
      'node_modules/node-addon-api/',
      'node_modules/tar/',
      'cmake-ts/build/main.js',
    ]) {
      assert.deepEqual(
        files.filter((f) => f.includes(dropped)),
        [],
        `${dropped} is shipped`,
      );
    }
    assert.equal(files.filter((f) => f.endsWith('.node')).length, 3, 'bastion_native.node, node_sqlite3.node and one zeromq addon');
  });

  it('marks the files in /etc/bastion as conffiles and depends on what it runs on', () => {
    const control = join(work, 'control');
    execFileSync('dpkg-deb', ['-e', deb, control]);
    assert.deepEqual(readFileSync(join(control, 'conffiles'), 'utf8').trim().split('\n').sort(), [
      '/etc/bastion/config.json',
      '/etc/bastion/rules.json',
      '/etc/xdg/autostart/bastion-agent.desktop',
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

  it("searches a decision history with its own SQLite addon, linked to Debian's libsqlite3", () => {
    const addon = join(root, LIB, 'node_modules', 'sqlite3', 'build', 'Release', 'node_sqlite3.node');
    assert.match(execFileSync('ldd', [addon], { encoding: 'utf8' }), /libsqlite3\.so\.0 => /);
    assert.ok(!existsSync(join(root, LIB, 'node_modules', 'sqlite3', 'deps')), 'the bundled SQLite sources are shipped');
    const history = join(work, 'history.sqlite');
    const sql =
      'CREATE TABLE decisions (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, pid INTEGER NOT NULL, uid INTEGER, program TEXT NOT NULL, comm TEXT, host TEXT, dest TEXT NOT NULL, port INTEGER NOT NULL, protocol TEXT NOT NULL, allow INTEGER NOT NULL, reason TEXT NOT NULL, rule TEXT, connections INTEGER NOT NULL);' +
      "INSERT INTO decisions VALUES (1, 1764936000000, 42, 1000, '/usr/bin/curl', 'curl', NULL, '192.0.2.1', 443, 'TCP', 0, 'rule', '/usr/bin/curl:443', 1);";
    execFileSync('sqlite3', [history, sql]);
    const cli = join(root, LIB, 'dist', 'cli', 'bastion.js');
    const r = run(process.execPath, [cli, 'log', '--history', history, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { rule_key: string }).rule_key, '/usr/bin/curl:443');
  });

  it('loads every production dependency from its own node_modules: zeromq, sqlite3 and protobufjs work', () => {
    // Each module resolved from the unpacked package (never the source tree's node_modules),
    // then used: a ZeroMQ message over inproc, an SQLite query through the addon built against
    // libsqlite3, and a bus message encoded and decoded by the shipped wire code (protobufjs
    // with the descriptor generated from proto/bastion.proto into dist/common/generated).
    const lib = join(root, LIB);
    const script = `
      import { createRequire } from 'node:module';
      const lib = process.argv[1];
      const require = createRequire(lib + '/package.json');
      const deps = Object.keys(require('./package.json').dependencies);
      const where = {};
      for (const dep of deps) { require(dep); where[dep] = require.resolve(dep).startsWith(lib + '/node_modules/'); }
      const zmq = require('zeromq');
      const a = new zmq.Pair(), b = new zmq.Pair();
      await a.bind('inproc://package-test');
      b.connect('inproc://package-test');
      await b.send('ping');
      const [ping] = await a.receive();
      a.close(); b.close();
      const sqlite3 = require('sqlite3');
      const db = new sqlite3.Database(':memory:');
      const sqlite = await new Promise((ok, fail) => db.get('SELECT 6 * 7 AS answer', (e, row) => (e ? fail(e) : ok(row.answer))));
      db.close();
      const wire = await import(lib + '/dist/common/wire.js');
      const hello = { role: 'service', softwareVersion: 'x', protocolVersion: wire.PROTOCOL_VERSION, pid: 1, capabilities: [], queueNum: 0, ackDeadlineMs: 1, maxHoldMs: 2 };
      const decoded = wire.decodeBusMessage(wire.encodeBusMessage({ kind: 'hello', hello }));
      console.log(JSON.stringify({ deps, where, zmq: ping.toString(), sqlite, proto: decoded.ok && decoded.message.kind === 'hello' && decoded.message.hello.maxHoldMs }));
    `;
    const r = run(process.execPath, ['--input-type=module', '-e', script, lib], { cwd: work });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { deps: string[]; where: Record<string, boolean>; zmq: string; sqlite: number; proto: number | false };
    assert.deepEqual(out.deps.sort(), ['@homebridge/dbus-native', 'commander', 'dns-packet', 'pino', 'pino-pretty', 'protobufjs', 'sqlite3', 'zeromq']);
    for (const dep of out.deps) assert.equal(out.where[dep], true, `${dep} was not loaded from the package`);
    assert.deepEqual({ zmq: out.zmq, sqlite: out.sqlite, proto: out.proto }, { zmq: 'ping', sqlite: 42, proto: 2 });
  });

  it('starts the policy service from its own files (bastion daemon), which stops on SIGTERM', async () => {
    // Unprivileged, with the shipped defaults: it loads the rules, opens its SQLite history,
    // listens on the GUI socket and waits for the helper over ZeroMQ (which never comes here).
    const dir = join(work, 'daemon');
    mkdirSync(join(dir, 'state'), { recursive: true });
    const group = execFileSync('id', ['-gn'], { encoding: 'utf8' }).trim();
    const child = spawn(
      process.execPath,
      [
        join(root, LIB, 'dist', 'cli', 'bastion.js'),
        'daemon',
        '--no-polkit',
        '--config',
        join(root, 'etc', 'bastion', 'config.json'),
        '--rules',
        join(root, 'etc', 'bastion', 'rules.json'),
        '--endpoint',
        `ipc://${dir}/helper.sock`,
        '--socket',
        join(dir, 'gui.sock'),
        '--socket-group',
        group,
        '--state-dir',
        join(dir, 'state'),
        '--journal-socket',
        join(dir, 'no-journal'),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 20_000;
      while (!out.includes('policy service started') && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.match(out, /policy service started/, out);
      assert.match(out, /decision history open/, out);
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0, out);
    assert.match(out, /policy service stopped/, out);
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
