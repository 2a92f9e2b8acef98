// The package installed into a fresh Debian 12 root (debootstrap --variant=minbase bookworm)
// with apt, so Debian's own nodejs 18 runs it. Slow (debootstrap and a Debian mirror: one to
// several minutes), so it runs only with BASTION_TEST_DEB_INSTALL=1: `npm run test:deb-install`.
// CI checks the unpacked package instead (test/debian.test.ts).
//
// In the root: apt installs the .deb and its dependencies; `bastion --version` and
// `bastion check-config` run from the installed files; systemd-analyze verifies the installed
// units; then, in a network namespace of its own, a helper installs its iptables rules and is
// killed with SIGKILL (leaving them), and `apt-get remove` must leave no rule behind; purge
// removes /etc/bastion.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO } from './support/bastion.js';
import { buildDeb } from './support/deb.js';

const ENABLED = process.env['BASTION_TEST_DEB_INSTALL'] === '1';
const MIRROR = process.env['BASTION_DEBIAN_MIRROR'] ?? 'http://deb.debian.org/debian';
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

let work = '';
let root = '';
let debName = '';

interface Ran {
  code: number | null;
  out: string;
}

function run(cmd: string, args: string[], timeoutMs = 600_000): Ran {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/**
 * A shell command inside the root, with a clean environment (nothing of the host's leaks in),
 * in mount and pid namespaces of its own with its own /proc: a SIGHUP that the reload scripts
 * send to every `bastion-daemon` reaches none of the host's. `isolated` adds a network
 * namespace, so iptables touches only that (apt needs the host's network otherwise).
 */
function inRoot(script: string, isolated = false): Ran {
  const outer =
    `mount -t proc proc "$1/proc" && ${isolated ? 'ip link set lo up && ' : ''}exec chroot "$1" /usr/bin/env -i ` +
    'PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive sh -c "$2"';
  return run('unshare', [...(isolated ? ['--net'] : []), '--mount', '--pid', '--fork', '--propagation', 'private', 'sh', '-c', outer, 'sh', root, script]);
}

const timings: string[] = [];
function timed<T>(what: string, fn: () => T): T {
  const started = Date.now();
  const result = fn();
  timings.push(`${what}: ${Math.round((Date.now() - started) / 1000)} s`);
  return result;
}

describe('installing the package into a fresh Debian 12 root', { skip: ENABLED ? false : 'set BASTION_TEST_DEB_INSTALL=1 (npm run test:deb-install)' }, () => {
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'bastion-deb-install-'));
    const deb = timed('build the .deb', () => buildDeb());
    debName = basename(deb);
    root = join(work, 'root');
    const boot = timed('debootstrap --variant=minbase bookworm', () => run('debootstrap', ['--variant=minbase', 'bookworm', root, MIRROR], 1_200_000));
    assert.equal(boot.code, 0, boot.out.slice(-4000));
    copyFileSync('/etc/resolv.conf', join(root, 'etc', 'resolv.conf'));
    copyFileSync(deb, join(root, 'tmp', debName));
  });

  after(() => {
    process.stderr.write(`timings: ${timings.join('; ')}\n`);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("installs with apt, pulling Debian's own nodejs, iptables and polkitd", () => {
    const r = timed('apt-get install ./bastion-firewall.deb', () =>
      inRoot(`apt-get update -q && apt-get install -y -q --no-install-recommends /tmp/${debName}`),
    );
    assert.equal(r.code, 0, r.out.slice(-4000));
    const node = inRoot('node --version');
    assert.match(node.out.trim(), /^v18\./, 'Debian 12 ships nodejs 18');
  });

  it('runs bastion --version and the configuration check from the installed files', () => {
    assert.deepEqual(inRoot('bastion --version'), { code: 0, out: `${VERSION}\n` });
    assert.deepEqual(inRoot('bastion check-config'), {
      code: 0,
      out: '/etc/bastion/config.json: ok (mode learning, prompts time out after 60 s)\n/etc/bastion/rules.json: ok (0 rules)\n',
    });
    const broken = inRoot('echo "{" > /tmp/broken.json && bastion check-config --rules /tmp/broken.json');
    assert.equal(broken.code, 1);
    assert.match(broken.out, /^\/tmp\/broken\.json: invalid: \/tmp\/broken\.json: not valid JSON: /);
  });

  it("keeps a decision history with the packaged SQLite addon on Debian's nodejs 18, and only root and group bastion can read it", () => {
    const r = inRoot(`
      install -d -o bastion -g bastion -m 0750 /var/lib/bastion /run/bastion-test
      runuser -u bastion -- bastion daemon --no-polkit --endpoint ipc:///run/bastion-test/h.sock --socket /run/bastion-test/gui.sock \
        --socket-group bastion --history /var/lib/bastion/history.sqlite > /tmp/daemon.log 2>&1 &
      pid=$!
      for i in $(seq 100); do grep -q '"GUI socket listening"' /tmp/daemon.log && break; sleep 0.2; done
      grep -q '"decision history open"' /tmp/daemon.log || cat /tmp/daemon.log
      kill $pid; wait $pid 2>/dev/null
      stat -c %U:%G:%a /var/lib/bastion/history.sqlite
      bastion log --history /var/lib/bastion/history.sqlite --json && echo "log: ok"
      useradd -M -G bastion reader && useradd -M outsider
      runuser -u reader -- bastion log --history /var/lib/bastion/history.sqlite --json && echo "group bastion: ok"
      runuser -u outsider -- bastion log --history /var/lib/bastion/history.sqlite --json 2>&1 || echo "outsider: refused"
    `);
    assert.equal(r.code, 0, r.out);
    assert.equal(
      r.out,
      [
        'bastion:bastion:640',
        'log: ok',
        'group bastion: ok',
        'bastion: cannot read /var/lib/bastion/history.sqlite (no history yet, or you are not in group bastion)',
        'outsider: refused',
        '',
      ].join('\n'),
    );
  });

  it('creates the bastion user, gives it /etc/bastion, and enables both units', () => {
    assert.match(inRoot('id bastion').out, /^uid=\d+\(bastion\) gid=\d+\(bastion\)/);
    assert.equal(
      inRoot('stat -c %U:%G:%a /etc/bastion /etc/bastion/rules.json /etc/bastion/config.json').out,
      'bastion:bastion:755\nbastion:bastion:640\nbastion:bastion:644\n',
    );
    for (const unit of ['bastion-firewall.service', 'bastion-helper.service']) {
      // An absolute link, meant for inside the root: read it, do not follow it.
      assert.equal(readlinkSync(join(root, 'etc/systemd/system/multi-user.target.wants', unit)), `/lib/systemd/system/${unit}`);
    }
    const verify = run('systemd-analyze', ['verify', `--root=${root}`, 'bastion-firewall.service', 'bastion-helper.service']);
    assert.deepEqual(verify, { code: 0, out: '' });
  });

  it('replaces rules.json through bastion-reload-rules as the GUI does, and refuses a broken one', () => {
    const good = inRoot(`printf '{"/usr/bin/curl:443": true}' > /tmp/new.json && bastion-reload-rules /tmp/new.json /etc/bastion/rules.json`);
    assert.equal(good.code, 0, good.out);
    assert.equal(JSON.parse(readFileSync(join(root, 'etc/bastion/rules.json'), 'utf8'))['/usr/bin/curl:443'], true);
    assert.equal(statSync(join(root, 'etc/bastion/rules.json')).mode & 0o777, 0o640);
    const bad = inRoot(`echo nonsense > /tmp/bad.json && bastion-reload-rules /tmp/bad.json /etc/bastion/rules.json`);
    assert.equal(bad.code, 1);
    assert.match(bad.out, /^\/tmp\/bad\.json: not valid JSON: /);
    assert.equal(JSON.parse(readFileSync(join(root, 'etc/bastion/rules.json'), 'utf8'))['/usr/bin/curl:443'], true);
  });

  it('leaves no iptables rule behind on remove, even after the helper was killed, and purge clears /etc/bastion and the history', () => {
    const r = timed('helper, kill -9, apt-get remove and purge', () =>
      inRoot(
        `
      bastion helper --endpoint ipc:///run/bastion-helper/helper.sock > /tmp/helper.log 2>&1 &
      pid=$!
      for i in $(seq 100); do grep -q '"helper started"' /tmp/helper.log && break; sleep 0.2; done
      echo "installed: $(iptables -S | grep -c BASTION-OUT) $(ip6tables -S | grep -c BASTION-OUT)"
      kill -9 $pid; wait $pid 2>/dev/null
      echo "after kill -9: $(iptables -S | grep -c BASTION-OUT) $(ip6tables -S | grep -c BASTION-OUT)"
      apt-get remove -y -q bastion-firewall > /tmp/remove.log 2>&1 || { cat /tmp/remove.log; exit 1; }
      echo "after remove: $(iptables -S | grep -c BASTION-OUT) $(ip6tables -S | grep -c BASTION-OUT)"
      apt-get purge -y -q bastion-firewall > /tmp/purge.log 2>&1 || { cat /tmp/purge.log; exit 1; }
      echo "after purge: $(ls -d /etc/bastion 2>/dev/null || echo no /etc/bastion), $(ls -d /var/lib/bastion 2>/dev/null || echo no /var/lib/bastion)"
    `,
        true,
      ),
    );
    assert.equal(r.code, 0, r.out);
    assert.equal(r.out, 'installed: 3 3\nafter kill -9: 3 3\nafter remove: 0 0\nafter purge: no /etc/bastion, no /var/lib/bastion\n');
  });
});
