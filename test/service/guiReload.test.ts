// SIGHUP as the GUI's helper scripts send it (`pkill -HUP -x bastion-daemon`): the service's
// process name is bastion-daemon, and the signal reloads rules.json and config.json.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { GuiDaemon } from '../support/guiDaemon.js';
import { TrayClient } from '../support/guiTray.js';

let daemon: GuiDaemon;
before(async () => {
  daemon = await GuiDaemon.start({ rules: { '/usr/bin/curl:443': true }, config: { mode: 'enforcement', timeout_seconds: 30 } });
});
after(async () => {
  await daemon?.stop();
});

/** The helper scripts' command, limited to our own child so parallel test runs are left alone. */
function hangUp(): void {
  execFileSync('pkill', ['-HUP', '-x', '-P', String(process.pid), 'bastion-daemon']);
}

async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, what: string): Promise<T> {
  let v = await read();
  for (let i = 0; i < 100 && !ok(v); i++) {
    await new Promise((r) => setTimeout(r, 50));
    v = await read();
  }
  assert.ok(ok(v), `${what}: ${JSON.stringify(v)}`);
  return v;
}

describe('SIGHUP', () => {
  it("the service's process name (comm) is bastion-daemon, so pkill -x finds it", () => {
    assert.equal(readFileSync(`/proc/${daemon.pid}/comm`, 'utf8').trim(), 'bastion-daemon');
    const found = execFileSync('pgrep', ['-x', '-P', String(process.pid), 'bastion-daemon'])
      .toString()
      .trim()
      .split('\n');
    assert.deepEqual(found, [String(daemon.pid)]);
  });

  it('reloads rules.json and config.json; the tray sees the new mode at once', async () => {
    const tray = await TrayClient.connect(daemon.socket);
    await tray.waitFor((m) => m['type'] === 'stats_update', 'stats_update');
    writeFileSync(daemon.rulesPath, JSON.stringify({ '/usr/bin/wget:*': false, applications: {}, services: {} }, null, 2));
    writeFileSync(daemon.configPath, JSON.stringify({ mode: 'learning', timeout_seconds: 90, popup_enabled: true }, null, 2));
    hangUp();
    await until(
      () => daemon.rules(),
      (r) => '/usr/bin/wget:*' in r && !('/usr/bin/curl:443' in r),
      'rules after SIGHUP',
    );
    const status = await until(
      () => daemon.request({ type: 'status' }, 'status'),
      (s) => s['mode'] === 'learning',
      'mode after SIGHUP',
    );
    assert.equal(status['timeout_seconds'], 90);
    await tray.waitFor(
      (m) => m['type'] === 'stats_update' && (m['stats'] as Record<string, unknown>)['learning_mode'] === true,
      'stats_update in learning mode',
    );
    await tray.close();
  });

  it('a corrupt rules.json on SIGHUP keeps the rules in force and the file as it is', async () => {
    const rulesBefore = await daemon.rules();
    const corrupt = '{"/usr/bin/wget:*": false, ';
    writeFileSync(daemon.rulesPath, corrupt);
    const errorsBefore = daemon.proc!.count('rules.json not loaded');
    hangUp();
    await daemon.proc!.waitFor('reloading');
    await until(
      async () => daemon.proc!.count('rules.json not loaded'),
      (n) => n > errorsBefore,
      'an error logged',
    );
    assert.deepEqual(await daemon.rules(), rulesBefore);
    assert.equal(readFileSync(daemon.rulesPath, 'utf8'), corrupt);
    // Edits are refused rather than overwriting what the user has to fix.
    const tray = await TrayClient.connect(daemon.socket);
    // A second SIGHUP with a tray connected: it is told, as a balloon.
    hangUp();
    const notice = await tray.waitFor((m) => m['type'] === 'notification', 'notification');
    assert.deepEqual(Object.keys(notice), ['type', 'title', 'message', 'level']);
    assert.equal(notice['title'], 'rules.json not loaded');
    assert.equal(notice['level'], 'error');
    assert.match(String(notice['message']), /not valid JSON.*; the previous rules stay in force$/);
    tray.writeLine({ type: 'add_rule', app_name: 'nc', app_path: '/usr/bin/nc', port: 1, allow: true, all_ports: false });
    const error = await tray.waitFor((m) => m['type'] === 'error', 'error');
    assert.match(String(error['error']), /^refusing to save .*rules\.json: the file on disk could not be loaded/);
    assert.equal(readFileSync(daemon.rulesPath, 'utf8'), corrupt);
    await tray.close();
  });
});
