// The GUI socket's transport promises (gui-protocol.md, "Transport"): mode 0660 and group access
// only, peer credentials read on accept, and never a symlink followed or removed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { startBastion, tempDir } from '../support/bastion.js';
import { TrayClient } from '../support/guiTray.js';

function daemonArgs(dir: string, socket: string): string[] {
  writeFileSync(`${dir}/config.json`, '{"mode": "enforcement"}');
  return [
    'daemon',
    '--config',
    `${dir}/config.json`,
    '--rules',
    `${dir}/rules.json`,
    '--endpoint',
    `ipc://${dir}/helper.sock`,
    '--socket',
    socket,
    '--socket-group',
    'root',
    '--no-polkit',
  ];
}

/** Tries to connect as another user; resolves with "connected" or the error code. */
function connectAs(uid: number, gid: number, path: string): Promise<string> {
  const probe = spawn(
    process.execPath,
    [
      '-e',
      `require('net').connect(process.argv[1]).on('connect', () => { console.log('connected'); process.exit(0); }).on('error', (e) => { console.log(e.code); process.exit(1); })`,
      path,
    ],
    { uid, gid, stdio: ['ignore', 'pipe', 'ignore'] },
  );
  let out = '';
  probe.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  return new Promise((resolve) => probe.once('exit', () => resolve(out.trim())));
}

describe('the GUI socket on disk', () => {
  it("is mode 0660: a user in the socket's group may connect, anyone else gets EACCES; peers are logged with their credentials", async () => {
    const dir = tempDir('bastion-gui-perm-');
    chmodSync(dir.path, 0o755);
    mkdirSync(`${dir.path}/run`, { mode: 0o755 }); // traversable, so only the socket's own mode decides
    const socket = `${dir.path}/run/gui.sock`;
    const daemon = startBastion(daemonArgs(dir.path, socket), undefined, 'debug'); // peers are logged at debug
    try {
      await daemon.waitFor('GUI socket listening');
      const st = lstatSync(socket);
      assert.equal(st.mode & 0o777, 0o660);
      assert.equal(st.gid, 0);
      assert.equal(await connectAs(65534, 65534, socket), 'EACCES');
      assert.equal(await connectAs(65534, 0, socket), 'connected');
      const tray = await TrayClient.connect(socket);
      await tray.waitFor((m) => m['type'] === 'stats_update', 'stats_update');
      for (let i = 0; i < 100 && daemon.count('GUI client connected') < 2; i++) await new Promise((r) => setTimeout(r, 20));
      const peers = daemon.lines.filter((l) => l.msg === 'GUI client connected').map((l) => l['peer'] as { pid: number; uid: number; gid: number });
      assert.deepEqual(
        peers.map((p) => [p.uid, p.gid]),
        [
          [65534, 0],
          [0, 0],
        ],
      );
      assert.ok(peers.every((p) => p.pid > 0));
      await tray.close();
    } finally {
      await daemon.stop();
      dir.remove();
    }
  });

  it('refuses to start when a symlink is planted at the socket path, and leaves it alone', async () => {
    const dir = tempDir('bastion-gui-link-');
    const target = `${dir.path}/elsewhere`;
    writeFileSync(target, 'precious');
    const socket = `${dir.path}/gui.sock`;
    symlinkSync(target, socket);
    const daemon = startBastion(daemonArgs(dir.path, socket));
    try {
      const line = await daemon.waitFor('refusing socket path');
      assert.equal(line.msg, `refusing socket path ${socket}: a symlink is planted there`);
      assert.equal(await daemon.exited, 1);
      assert.equal(readlinkSync(socket), target);
      assert.equal(readFileSync(target, 'utf8'), 'precious');
    } finally {
      await daemon.stop();
      dir.remove();
    }
  });
});
