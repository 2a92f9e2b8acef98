// The product as a user gets it: the .deb installed with apt into a fresh Debian 12 root, that
// root booted with systemd (systemd-nspawn), and both units checked from inside as a user and
// an administrator would: they start, pair, decide, log in the GUI's words, keep their files
// across an upgrade, let nothing out across a fail-closed restart, and leave nothing behind.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { BootedRoot, repackWithVersion, type Ran } from '../support/bootedRoot.js';
import { buildDeb } from '../support/deb.js';
import { guiParse } from '../support/guiLogParser.js';

const SKIP = process.env['BASTION_SKIP_BOOT'] === '1' ? 'BASTION_SKIP_BOOT=1' : false;
const ALLOWED_PORT = 80;
const BLOCKED_PORT = 8080;
/** A copy of curl under another path: another program, which no rule names. */
const OTHER = '/usr/local/bin/fetch';

/** Accepts on both ports and prints each accepted connection's port: what got out. */
const SERVER = `
  const net = require('net');
  for (const port of [${ALLOWED_PORT}, ${BLOCKED_PORT}]) {
    net.createServer((s) => { process.stdout.write(port + '\\n'); s.end('HTTP/1.0 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok'); }).listen(port);
  }`;

let box: BootedRoot;
let server: ChildProcess;
let accepted: number[] = [];
let work = '';
let deb = '';
const timings: string[] = [];

function ok(r: Ran, what: string): string {
  assert.equal(r.code, 0, `${what}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

function timed<T>(what: string, fn: () => T): T {
  const started = Date.now();
  const result = fn();
  timings.push(`${what} ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return result;
}

/** curl from inside as `program`, as root: true when the server answered. */
function connect(port: number, program = '/usr/bin/curl', maxTime = 3): boolean {
  const r = box.sh(`${program} -s -o /dev/null --max-time ${maxTime} http://${box.net.serverV4}:${port}/`);
  return r.code === 0;
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`timed out waiting for ${what}`);
}

const active = (unit: string): string => box.enter(['systemctl', 'is-active', unit]).stdout.trim();
const mainPid = (unit: string): string => box.enter(['systemctl', 'show', '-P', 'MainPID', unit]).stdout.trim();
const journal = (unit: string): string => box.enter(['journalctl', '-u', unit, '--no-pager', '-o', 'short']).stdout;
const paired = (): boolean => /helper:\s+connected/.test(box.sh('bastion status').stdout);
const ourRules = (): string =>
  ['iptables', 'ip6tables']
    .map((ipt) =>
      box
        .enter([ipt, '-S'])
        .stdout.split('\n')
        .filter((l) => l.includes('BASTION'))
        .join('\n'),
    )
    .join('\n')
    .trim();

describe('the package installed with apt and booted with systemd', { skip: SKIP }, () => {
  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'bastion-boot-test-'));
    deb = timed('build the .deb', () => buildDeb());
    box = timed('unpack the cached root and apt-get install the .deb', () => BootedRoot.install(deb));
    server = box.spawnServer(process.execPath, ['-e', SERVER]);
    server.stdout?.setEncoding('utf8').on('data', (c: string) => accepted.push(...c.split('\n').filter(Boolean).map(Number)));
    const started = Date.now();
    await box.boot();
    timings.push(`boot ${((Date.now() - started) / 1000).toFixed(1)} s`);
    ok(box.sh(`cp /usr/bin/curl ${OTHER}`), 'copy curl');
  });

  after(async () => {
    process.stderr.write(`boot test timings: ${timings.join('; ')}\n`);
    server?.kill('SIGKILL');
    await box?.destroy();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('starts both units at boot, and the helper records callers with eBPF', async () => {
    await waitFor('both units active', () => active('bastion-helper') === 'active' && active('bastion-firewall') === 'active');
    await waitFor('the helper paired with the service', paired);
    assert.match(journal('bastion-helper'), /connect\(\)\/sendmsg\(\) callers recorded by eBPF/);
    // The chain's two filters are pinned in the helper's directory of systemd's bpf file system,
    // for IPv4 and IPv6 alike: UDP datagrams allowed in the kernel, and SYNs noted for the fast path.
    const rules = ourRules().split('\n');
    for (const filter of [
      '-A BASTION-OUT -p udp -m conntrack --ctstate NEW -m bpf --object-pinned /sys/fs/bpf/bastion/bastion-BASTION-OUT-udp-allow ',
      '-A BASTION-OUT -p tcp -m tcp --tcp-flags SYN,ACK SYN -m bpf --object-pinned /sys/fs/bpf/bastion/bastion-BASTION-OUT-flow-note ',
    ])
      assert.equal(rules.filter((l) => l.startsWith(filter)).length, 2, `${filter}in:\n${ourRules()}`);
  });

  it('bastion status works as root and as a member of group bastion, and says the identity is eBPF', () => {
    const root = ok(box.sh('bastion status'), 'status as root');
    assert.match(root, /^mode: {5}learning/m);
    assert.match(root, /^identity: eBPF caller records \(process and executable\)$/m);
    ok(box.sh('useradd -m -G bastion alice && useradd -m -G bastion bob && useradd -m outsider'), 'useradd');
    const alice = ok(box.sh('bastion status', 'alice'), 'status as alice');
    assert.match(alice, /^helper: {3}connected/m);
    const outsider = box.sh('bastion status', 'outsider');
    assert.notEqual(outsider.code, 0);
    assert.match(outsider.stderr, /permission denied \(only root and group bastion may use it\)/);
    assert.match(outsider.stderr, /to fix: sudo adduser \$USER bastion, then log out and in again/);
  });

  it('a rule for curl lets curl out in enforcement, another program is denied, and both decisions are in the journal as the GUI reads them', async () => {
    ok(box.sh('bastion mode enforcement'), 'bastion mode enforcement');
    ok(box.sh(`bastion rules add /usr/bin/curl ${ALLOWED_PORT}`), 'bastion rules add');
    assert.equal(connect(ALLOWED_PORT), true, 'curl, allowed by its rule, did not get out');
    assert.equal(connect(ALLOWED_PORT, OTHER, 2), false, 'a program without a rule got out');
    const server = box.net.serverV4;
    const logged = () =>
      journal('bastion-firewall')
        .split('\n')
        .map(guiParse)
        .filter((p) => p !== null);
    // curl was let out by the kernel: its report reaches the service on the helper's next
    // 100 ms report tick, and the journal after that, so the line may follow curl's exit.
    const curlAllowed = (): boolean =>
      logged().some(
        (p) => p.type === 'RULE' && p['action'] === 'ALLOW' && p['path'] === '/usr/bin/curl' && p['ip'] === server && p['port'] === String(ALLOWED_PORT),
      );
    const fetchBlocked = (): boolean =>
      logged().some((p) => p.type === 'BLOCK' && p['app'] === 'fetch' && p['ip'] === server && p['port'] === String(ALLOWED_PORT));
    await waitFor('a [RULE:ALLOW] line for curl and a [BLOCK] line for fetch in the journal', () => curlAllowed() && fetchBlocked(), 10_000).catch(() => {});
    assert.ok(curlAllowed(), `no [RULE:ALLOW] line for curl: ${JSON.stringify(logged())}`);
    assert.ok(fetchBlocked(), `no [BLOCK] line for fetch: ${JSON.stringify(logged())}`);
  });

  it('a member of group bastion adds a rule only when polkit allows it', () => {
    box.enter([
      'sh',
      '-c',
      `cat > /etc/polkit-1/rules.d/50-bastion-test.rules <<'EOF'
polkit.addRule(function (action, subject) {
  if (action.id == "com.bastion.firewall.manage-rules" && subject.user == "alice") return polkit.Result.YES;
});
EOF`,
    ]);
    // --force: the tools are not installed, and a rule for a missing path is refused otherwise.
    const bob = box.sh('bastion rules add --force /usr/bin/bobs-tool 443', 'bob');
    assert.notEqual(bob.code, 0, bob.stdout);
    assert.match(bob.stderr + bob.stdout, /not authorized|refused/i);
    ok(box.sh('bastion rules add --force /usr/bin/alices-tool 443', 'alice'), 'alice adds a rule');
    const rules = ok(box.sh('bastion rules list'), 'rules list');
    assert.match(rules, /\/usr\/bin\/alices-tool:443/);
    assert.doesNotMatch(rules, /bobs-tool/);
  });

  it("the packaged desktop agent runs on Debian's Node 18 for a member of group bastion: its panel lets in the one-time login only", () => {
    // No desktop here: the panel alone (--no-notifications), in a runtime directory of alice's own.
    const script = [
      'set -e',
      'export XDG_RUNTIME_DIR=$(mktemp -d)',
      "bastion agent --no-notifications --open-with '' >$XDG_RUNTIME_DIR/agent.log 2>&1 &",
      'agent=$!',
      'for i in $(seq 50); do [ -S $XDG_RUNTIME_DIR/bastion-agent.sock ] && break; sleep 0.2; done',
      'url=$(bastion ui --print)',
      // No % but in curl's format: systemd-run expands specifiers in the command line.
      'base=$(echo "$url" | cut -d/ -f1-3)',
      'echo "base $base"',
      'echo "anonymous $(curl -s -o /dev/null -w %{http_code} $base/)"',
      'echo "login $(curl -s -c $XDG_RUNTIME_DIR/jar -o /dev/null -w %{http_code} $url)"',
      'echo "page $(curl -s -b $XDG_RUNTIME_DIR/jar -o /dev/null -w %{http_code} $base/)"',
      'echo "again $(curl -s -o /dev/null -w %{http_code} $url)"',
      'kill $agent',
    ].join('\n');
    const r = ok(box.sh(script, 'alice'), 'the agent and bastion ui');
    const codes = Object.fromEntries(
      r
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split(' ') as [string, string]),
    );
    assert.equal(codes['anonymous'], '403', r);
    assert.match(codes['login'] ?? '', /^30[23]$/, r);
    assert.equal(codes['page'], '200', r);
    assert.equal(codes['again'], '403', 'a login URL works once');
  });

  it('systemctl restart bastion-firewall: both units come back, the helper pairs again, the rules are kept', async () => {
    const before = [mainPid('bastion-firewall'), mainPid('bastion-helper')];
    ok(box.enter(['systemctl', 'restart', 'bastion-firewall']), 'restart');
    await waitFor('the helper paired again', paired);
    const after = [mainPid('bastion-firewall'), mainPid('bastion-helper')];
    assert.notEqual(after[0], before[0]);
    assert.notEqual(after[1], before[1], 'BindsTo= restarts the helper with the service');
    assert.match(ok(box.sh('bastion rules list'), 'rules list'), /\/usr\/bin\/curl:80/);
    assert.equal(connect(ALLOWED_PORT), true);
  });

  it('fail-closed: nothing gets out during a restart of either unit, and the chain stays while no helper runs', async (t: TestContext) => {
    box.enter([
      'sh',
      '-c',
      'mkdir -p /etc/systemd/system/bastion-helper.service.d && printf "[Service]\\nExecStart=\\nExecStart=/usr/bin/bastion helper --endpoint ipc:///run/bastion-helper/helper.sock --fail-closed\\n" > /etc/systemd/system/bastion-helper.service.d/fail-closed.conf && systemctl daemon-reload',
    ]);
    ok(box.enter(['systemctl', 'restart', 'bastion-firewall']), 'restart into fail-closed');
    await waitFor('the helper paired', paired);
    // A program without a rule tries the blocked port in a loop while both units restart.
    accepted = [];
    const loop = `end=$(($(date +%s) + 6)); n=0; while [ $(date +%s) -lt $end ]; do ${OTHER} -s -o /dev/null --max-time 0.3 http://${box.net.serverV4}:${BLOCKED_PORT}/ ; n=$((n+1)); done; echo $n`;
    const attempts = box.shAsync(loop, 60_000);
    ok(box.enter(['sh', '-c', 'sleep 1; systemctl restart bastion-firewall; sleep 1; systemctl restart bastion-helper']), 'restarts');
    const tries = Number((await attempts).stdout.trim());
    await new Promise((r) => setTimeout(r, 200)); // the server's last lines
    t.diagnostic(`fail-closed restarts of both units: ${tries} attempts, ${accepted.filter((p) => p === BLOCKED_PORT).length} got out`);
    assert.equal(accepted.filter((p) => p === BLOCKED_PORT).length, 0, 'a connection got out during a fail-closed restart');
    await waitFor('the helper paired again', paired);
    ok(box.enter(['systemctl', 'stop', 'bastion-firewall']), 'stop');
    assert.match(ourRules(), /-A OUTPUT -j BASTION-OUT/, 'fail-closed: the chain stays while no helper runs');
    assert.equal(connect(ALLOWED_PORT, '/usr/bin/curl', 2), false, 'traffic passed while the fail-closed firewall was stopped');
    box.enter(['sh', '-c', 'rm -r /etc/systemd/system/bastion-helper.service.d && systemctl daemon-reload']);
    ok(box.enter(['systemctl', 'start', 'bastion-firewall']), 'start');
    await waitFor('the helper paired', paired);
  });

  it('a broken rules.json: systemctl reload fails and says why, a restart keeps the last good rules in force', async () => {
    const good = ok(box.enter(['cat', '/etc/bastion/rules.json']), 'read rules.json');
    box.enter(['sh', '-c', 'printf \'{"/usr/bin/curl:80": tru\' > /etc/bastion/rules.json']);
    const reload = box.enter(['systemctl', 'reload', 'bastion-firewall']);
    assert.notEqual(reload.code, 0, 'reload of a broken rules.json succeeded');
    assert.match(journal('bastion-firewall'), /rules\.json: invalid/);
    ok(box.enter(['systemctl', 'restart', 'bastion-firewall']), 'restart with a broken rules.json');
    await waitFor('the helper paired', paired);
    assert.match(journal('bastion-firewall'), /rules\.json not loaded at start; the last good copy is in force/);
    assert.match(ok(box.sh('bastion status'), 'status'), /^mode: {5}enforcement/m);
    assert.equal(connect(ALLOWED_PORT), true, 'the last good rule for curl is not in force');
    assert.equal(connect(ALLOWED_PORT, OTHER, 2), false, 'a program without a rule got out after a restart with a broken rules.json');
    box.enter(['sh', '-c', `cat > /etc/bastion/rules.json <<'EOF'\n${good}EOF`]);
    ok(box.enter(['systemctl', 'reload', 'bastion-firewall']), 'reload of the fixed file');
  });

  it('an upgrade keeps rules.json and config.json and restarts both units', async (t: TestContext) => {
    const files = ok(box.enter(['cat', '/etc/bastion/rules.json', '/etc/bastion/config.json']), 'read files');
    const before = [mainPid('bastion-firewall'), mainPid('bastion-helper')];
    const newer = repackWithVersion(deb, '99.0.0', work);
    copyFileSync(newer, join(box.root, 'root/newer.deb'));
    const started = Date.now();
    ok(
      box.enter(['sh', '-c', 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends /root/newer.deb'], 300_000),
      'apt-get install newer',
    );
    t.diagnostic(`upgrade with apt: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.equal(ok(box.enter(['cat', '/etc/bastion/rules.json', '/etc/bastion/config.json']), 'read files'), files);
    await waitFor('the helper paired after the upgrade', paired);
    assert.equal(ok(box.enter(['dpkg-query', '-W', '-f', '${Version}', 'bastion-firewall']), 'dpkg-query'), '99.0.0');
    const after = [mainPid('bastion-firewall'), mainPid('bastion-helper')];
    assert.notEqual(after[0], before[0], 'the service was not restarted');
    assert.notEqual(after[1], before[1], 'the helper was not restarted');
  });

  it('systemd-analyze security rates both units', (t: TestContext) => {
    for (const unit of ['bastion-firewall.service', 'bastion-helper.service']) {
      const out = box.enter(['systemd-analyze', 'security', '--no-pager', unit]).stdout;
      const level = /Overall exposure level for \S+: ([\d.]+) (\S+)/.exec(out);
      assert.ok(level, out.slice(-2000));
      t.diagnostic(`systemd-analyze security ${unit}: ${level[1]} ${level[2]}`);
      assert.ok(Number(level[1]) <= (unit === 'bastion-firewall.service' ? 2 : 4), `${unit}: exposure ${level[1]}`);
    }
  });

  it('systemctl stop leaves no iptables or ip6tables rule, and apt-get purge removes what the package made', async () => {
    ok(box.enter(['systemctl', 'stop', 'bastion-firewall']), 'stop');
    await waitFor('the helper stopped', () => active('bastion-helper') === 'inactive');
    assert.equal(ourRules(), '');
    assert.equal(ok(box.enter(['ls', '-A', '/sys/fs/bpf/bastion']), 'list the pins'), '', 'pinned filters left after stop');
    ok(box.enter(['sh', '-c', 'DEBIAN_FRONTEND=noninteractive apt-get purge -y -q bastion-firewall'], 300_000), 'purge');
    const left = box.enter([
      'sh',
      '-c',
      'ls -d /etc/bastion /var/lib/bastion /run/bastion /run/bastion-helper /sys/fs/bpf/bastion /usr/lib/bastion-firewall /lib/systemd/system/bastion-*.service /usr/bin/bastion 2>/dev/null; true',
    ]);
    assert.equal(left.stdout, '');
    assert.equal(ourRules(), '');
  });
});
