// The package's postinst run for real, as dpkg runs it (`postinst configure`), against a copy
// of /etc bind-mounted over /etc in a mount namespace of its own: adduser, chown and chmod act
// on the copy and nothing on the machine changes. The attacker is user bastion, who owns
// /etc/bastion and so may swap rules.json for a symlink at any moment. The race is won on
// purpose: `chmod` and `chown` in PATH are wrappers that plant the symlink first (as bastion
// could between the script's test and its command), then run the real command.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO } from './support/bastion.js';

const POSTINST = join(REPO, 'debian', 'bastion-firewall.postinst');
const SECRET = '/etc/bastion-postinst-test-secret';

let work = '';

/** Runs `script` with /etc replaced by the copy, as root, in a private mount namespace. */
function inCopiedEtc(script: string): { code: number | null; out: string } {
  const outer = 'mount --bind "$1/etc" /etc && exec sh -c "$2"';
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', outer, 'sh', work, script], {
    encoding: 'utf8',
    env: { PATH: `${work}/wrappers:/usr/sbin:/usr/bin:/sbin:/bin`, LANG: 'C.UTF-8' },
  });
  if (r.error) throw r.error;
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** A wrapper that swaps rules.json for a symlink to the root-owned secret, then runs the real command. */
function racingWrapper(name: string, real: string): string {
  return `#!/bin/sh
for a in "$@"; do
  if [ "$a" = /etc/bastion/rules.json ]; then rm -f /etc/bastion/rules.json; ln -s ${SECRET} /etc/bastion/rules.json; fi
done
exec ${real} "$@"
# ${name}
`;
}

describe('the package postinst', () => {
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'bastion-postinst-'));
    // cp -a keeps owners and modes: adduser and chown see /etc as it is.
    const cp = spawnSync('cp', ['-a', '/etc', join(work, 'etc')]);
    assert.equal(cp.status, 0, String(cp.stderr));
    mkdirSync(join(work, 'wrappers'));
    for (const [name, real] of [
      ['chmod', '/bin/chmod'],
      ['chown', '/bin/chown'],
    ] as const) {
      writeFileSync(join(work, 'wrappers', name), racingWrapper(name, real), { mode: 0o755 });
    }
  });

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('never changes the owner or mode of a file that rules.json is swapped for a symlink to', () => {
    const r = inCopiedEtc(`set -e
      rm -rf /etc/bastion && mkdir /etc/bastion && echo '{}' > /etc/bastion/rules.json && echo '{}' > /etc/bastion/config.json
      echo secret > ${SECRET} && /bin/chown 0:0 ${SECRET} && /bin/chmod 0600 ${SECRET}
      sh ${POSTINST} configure
      echo "secret: $(stat -c '%u:%g %a' ${SECRET})"
      echo "link: $(stat -c '%U %F' /etc/bastion/rules.json)"
      echo "config: $(stat -c '%U:%G %a' /etc/bastion/config.json)"
      echo "dir: $(stat -c '%U:%G %a' /etc/bastion)"
      echo "bus: $(id -nG bastion)"`);
    assert.equal(r.code, 0, r.out);
    const lines = r.out.split('\n');
    // The wrappers did plant the link: the race was won, and lost nothing.
    assert.ok(lines.includes('link: bastion symbolic link'), r.out);
    assert.ok(lines.includes('secret: 0:0 600'), r.out);
    assert.ok(lines.includes('config: bastion:bastion 644'), r.out);
    assert.ok(lines.includes('dir: bastion:bastion 755'), r.out);
    assert.match(r.out, /^bus: bastion bastion-bus$/m);
  });

  it('gives rules.json to bastion with mode 0640 and puts bastion alone in group bastion-bus', () => {
    rmSync(join(work, 'wrappers'), { recursive: true, force: true });
    const r = inCopiedEtc(`set -e
      rm -rf /etc/bastion && mkdir /etc/bastion && echo '{}' > /etc/bastion/rules.json
      sh ${POSTINST} configure && sh ${POSTINST} configure
      echo "rules: $(stat -c '%U:%G %a' /etc/bastion/rules.json)"
      echo "members: $(getent group bastion-bus | cut -d: -f4)"`);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /^rules: bastion:bastion 640$/m);
    assert.match(r.out, /^members: bastion$/m);
  });
});
