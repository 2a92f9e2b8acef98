// A desktop user outside group bastion (issue 17): the CLI, run as an unprivileged user made for
// the test (useradd, then setpriv drops to it), against the real service's socket in group root,
// mode 0660. Refused with EACCES, it says the one step that fixes it; a socket nobody listens
// on, or none, says that the service is not running.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO } from '../support/bastion.js';
import { GuiDaemon } from '../support/guiDaemon.js';
import { LocalUser } from '../support/localUser.js';

const TSX = join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs');
const CLI = join(REPO, 'cli', 'bastion.ts');

let daemon: GuiDaemon;
let user: LocalUser;

/** `bastion <args>` as the test user: its own group only, or group root (the socket's) too. */
function bastionAs(groups: 'own' | 'socket group', ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const privileges = [`--reuid=${user.uid}`, `--regid=${user.name}`, groups === 'own' ? '--clear-groups' : '--groups=0', '--reset-env'];
  return new Promise((resolve) => {
    execFile('setpriv', [...privileges, process.execPath, '--import', TSX, CLI, ...args], { cwd: user.home, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

before(async () => {
  user = LocalUser.create();
  daemon = await GuiDaemon.start({ config: { mode: 'enforcement', allow_lan: false } });
  chmodSync(daemon.dir.path, 0o755); // traversable: only the socket's own mode decides
});
after(async () => {
  await daemon?.stop();
  await user?.remove();
});

describe('the GUI socket for a user outside its group', () => {
  it("the socket is root's group, mode 0660, and the user is in neither", () => {
    assert.equal(execFileSync('stat', ['-c', '%a %G', daemon.socket], { encoding: 'utf8' }), '660 root\n');
    assert.equal(execFileSync('id', ['-Gn', user.name], { encoding: 'utf8' }), `${user.name}\n`);
  });

  for (const command of [['status'], ['rules', 'list'], ['monitor']]) {
    it(`bastion ${command.join(' ')}: permission denied, and the one step that fixes it`, async () => {
      const r = await bastionAs('own', ...command, '--socket', daemon.socket);
      assert.equal(r.code, 1);
      assert.equal(r.stdout, '');
      assert.equal(
        r.stderr,
        `bastion: cannot connect to ${daemon.socket}: permission denied (only root and group bastion may use it)\n` +
          'bastion: to fix: sudo adduser $USER bastion, then log out and in again (or run newgrp bastion in this shell)\n',
      );
    });
  }

  it("in the socket's group the same user gets its answer (the step is the fix)", async () => {
    const r = await bastionAs('socket group', 'rules', 'list', '--socket', daemon.socket);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
  });

  it('a socket nobody listens on: the service is not running, and where to see why', async () => {
    const stale = join(daemon.dir.path, 'stale.sock');
    // Bound and never listened on: what a killed service leaves behind.
    execFileSync('python3', ['-c', 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', stale]);
    chmodSync(stale, 0o666);
    const r = await bastionAs('own', 'status', '--socket', stale);
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      `bastion: cannot connect to ${stale}: the service is not running (nothing listens there)\nbastion: systemctl status bastion-firewall says why\n`,
    );
  });
});

describe("bastion config for a user in the socket's group who may not change it", () => {
  it('get works (reading needs only the socket); set is refused with the reason, logged as a warning, and nothing changes', async () => {
    const got = await bastionAs('socket group', 'config', 'get', 'allow_lan', '--socket', daemon.socket);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, 'false\n');
    const before = readFileSync(daemon.configPath, 'utf8');
    const set = await bastionAs('socket group', 'config', 'set', 'allow_lan', 'true', '--socket', daemon.socket);
    assert.equal(set.code, 1);
    assert.equal(set.stderr, 'bastion: not authorized to change the configuration: only root may change rules when polkit is disabled\n');
    assert.equal(readFileSync(daemon.configPath, 'utf8'), before);
    const refusal = await daemon.proc!.waitFor('refused a change from a GUI client');
    assert.equal(refusal.level, 40);
    assert.equal(refusal['request'], 'set_config');
    assert.equal((refusal['peer'] as { uid: number }).uid, user.uid);
  });
});
