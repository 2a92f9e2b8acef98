// A session answer binds to the uid of the process that was asked about: two real users run
// the same program through the real helper and service; a "session" allow for the first user's
// connection must not let the second user's connection out (it gets its own prompt).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { TestFirewall } from '../support/firewall.js';
import type { FetchResult } from '../support/guiPrograms.js';
import { TrayClient } from '../support/guiTray.js';

const prefix = `bses${randomBytes(3).toString('hex')}`;
const users = { alice: `${prefix}a`, bob: `${prefix}b` };
const created: string[] = [];

const sh = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** One HTTP GET as `user` from the client namespace. */
function fetchAs(fw: TestFirewall, user: string, exe: string, timeoutS: number): Promise<FetchResult> {
  const started = performance.now();
  const child = fw.net.spawn(fw.net.client, 'setpriv', [
    `--reuid=${user}`,
    `--regid=${sh('id', ['-g', user]).trim()}`,
    '--clear-groups',
    exe,
    '-s',
    '-o',
    '/dev/null',
    '-m',
    String(timeoutS),
    `http://${fw.net.serverV4}/`,
  ]);
  child.stdout?.resume();
  child.stderr?.resume();
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, connectMs: 0, wallMs: performance.now() - started })));
}

describe('session answers per user', () => {
  before(() => {
    for (const name of Object.values(users)) {
      sh('useradd', ['--system', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', '--user-group', name]);
      created.push(name);
    }
  });

  after(() => {
    for (const name of created) sh('userdel', [name]);
  });

  it("a session allow for one user's program does not let another user's same program out", async () => {
    const fw = new TestFirewall({ config: { mode: 'enforcement', timeout_seconds: 60 } });
    try {
      // The users must reach the program: the test directory is traversable, its bin readable.
      chmodSync(fw.dir.path, 0o711);
      mkdirSync(`${fw.dir.path}/bin`, { mode: 0o755 });
      const exe = `${fw.dir.path}/bin/curl-shared`;
      copyFileSync('/usr/bin/curl', exe);
      chmodSync(exe, 0o755);
      await fw.start();
      const tray = await TrayClient.connect(fw.guiSocket);

      const alice = fetchAs(fw, users.alice, exe, 20);
      const reqAlice = await tray.nextRequest('curl-shared');
      tray.answer(reqAlice, { allow: true, duration: 'session' });
      assert.equal((await alice).code, 0);
      // Alice again: her session answer decides, nobody is asked.
      assert.equal((await fetchAs(fw, users.alice, exe, 20)).code, 0);
      assert.equal(tray.ofType('connection_request').length, 1);

      // Bob, same program: asked about on his own, and denied.
      const bob = fetchAs(fw, users.bob, exe, 5);
      const reqBob = await tray.nextRequest('curl-shared');
      assert.notEqual(reqBob['request_id'], reqAlice['request_id']);
      tray.answer(reqBob, { allow: false, duration: 'once' });
      assert.equal((await bob).code, 7, "bob's connection got out (7: refused by --deny-with reject)");
      const answered = fw.daemon!.lines.filter((l) => l.msg === 'prompt answered');
      assert.equal(answered.length, 2);
      await tray.close();
    } finally {
      await fw.close();
    }
  });
});
