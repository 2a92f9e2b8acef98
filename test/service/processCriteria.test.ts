// What extended rules read about a process: the script an interpreter runs (from argv and
// cwd) and the Flatpak/Snap app id (from /proc/PID/cgroup).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { appIdFromCgroup } from '../../helper/identify/appId.js';
import { scriptOf } from '../../service/rules/scriptOf.js';

describe('the script an interpreter runs', () => {
  const cases: [string, string[], string | undefined, string | null][] = [
    ['/usr/bin/python3.11', ['python3', '-u', 'app.py', '--flag'], '/srv', '/srv/app.py'],
    ['/usr/bin/python3.11', ['python3', '-X', 'dev', '/opt/a/../b/app.py'], '/srv', '/opt/b/app.py'],
    ['/usr/bin/python3.11', ['python3', '-c', 'import x', 'app.py'], '/srv', null],
    ['/usr/bin/python3.11', ['python3', '-uc', 'import x'], '/srv', null],
    ['/usr/bin/python3.11', ['python3', '-m', 'http.server'], '/srv', null],
    ['/usr/bin/node', ['node', '--require', 'x.js', 'server.js'], '/app', '/app/server.js'],
    ['/usr/bin/node', ['node', '-e', 'x', 'server.js'], '/app', null],
    ['/usr/bin/dash', ['sh', '-e', './run.sh'], '/home/a', '/home/a/run.sh'],
    ['/usr/bin/bash', ['bash', '-c', 'curl x'], '/', null],
    ['/usr/bin/perl', ['perl', '-I', 'lib', 'tool.pl'], '/t', '/t/tool.pl'],
    ['/usr/bin/ruby3.1', ['ruby', 'a.rb'], '/t', '/t/a.rb'],
    ['/usr/lib/jvm/bin/java', ['java', '-Xmx1g', '-jar', 'app.jar'], '/srv', '/srv/app.jar'],
    ['/usr/lib/jvm/bin/java', ['java', '-cp', 'x.jar', 'Main'], '/srv', null],
    ['/usr/bin/curl', ['curl', 'x.py'], '/srv', null],
    ['/usr/bin/python3.11', ['python3', 'app.py'], undefined, null],
  ];
  for (const [exe, argv, cwd, script] of cases) {
    it(`${argv.join(' ')} in ${cwd ?? '(no cwd)'} -> ${script ?? 'no script'}`, () => {
      assert.equal(scriptOf(exe, argv, cwd), script);
    });
  }
});

describe('the app id of a cgroup', () => {
  it('reads Flatpak and Snap scopes, and nothing from other cgroups', () => {
    assert.equal(
      appIdFromCgroup('0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-flatpak-org.mozilla.firefox-12345.scope\n'),
      'org.mozilla.firefox',
    );
    assert.equal(
      appIdFromCgroup('0::/user.slice/user-1000.slice/user@1000.service/app.slice/snap.firefox.firefox-0b9c5d1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e.scope\n'),
      'firefox',
    );
    assert.equal(appIdFromCgroup('1:name=systemd:/app-flatpak-org.gnome.Maps-7.scope\n0::/\n'), 'org.gnome.Maps');
    assert.equal(appIdFromCgroup('0::/user.slice/user-1000.slice/session-2.scope\n'), null);
    assert.equal(appIdFromCgroup('4:memory:/app-flatpak-org.evil.App-1.scope\n0::/\n'), null);
  });
});
