// bastion check-config and bastion install-file (the work of bastion-reload-rules/-config):
// validation with the service's own parsers, and replacing a file only the safe way.
import assert from 'node:assert/strict';
import { chownSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { checkConfigFiles } from '../../cli/checkConfigCommand.js';
import { installFile, type InstallFileOptions } from '../../cli/installFileCommand.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'bastion-config-files-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('bastion check-config', () => {
  it('reports each file named: its mode and timeout, its rule count, and skipped entries as warnings that fail the check', async () => {
    const config = file('c1.json', '{"mode": "enforcement", "timeout_seconds": 2}');
    const rules = file('r1.json', '{"/usr/bin/curl:80": true, "/usr/bin/x:port": true}');
    assert.deepEqual(await checkConfigFiles({ config, rules }), {
      ok: false,
      lines: [
        `${config}: warning: timeout_seconds 2 is outside 5..300; using 5`,
        `${config}: ok (mode enforcement, prompts time out after 5 s)`,
        `${rules}: warning: skipped: rule key "/usr/bin/x:port" has port part "port"; expected 1-65535, "*" or "0"`,
        `${rules}: ok (1 rules)`,
      ],
    });
  });

  it('validates host rules: a name or *.suffix counts, anything else is named in a warning', async () => {
    const rules = file(
      'r-host.json',
      JSON.stringify({
        '@host:example.org:443': true,
        '@host:*.ads.test:*': false,
        '@dest:10.201.1.2:*:*': true,
        '@host:bad name.test:443': true,
        '@host:*:80': true,
      }),
    );
    const forms = 'an absolute path, @name:<comm>, @dest:<ip>:<port or *> or @host:<name or *.suffix>';
    assert.deepEqual(await checkConfigFiles({ rules }), {
      ok: false,
      lines: [
        `${rules}: warning: skipped: rule key "@host:bad name.test:443" has subject "@host:bad name.test"; expected ${forms}`,
        `${rules}: warning: skipped: rule key "@host:*:80" has subject "@host:*"; expected ${forms}`,
        `${rules}: ok (3 rules)`,
      ],
    });
  });

  it('fails on a broken file and names what is wrong; a missing file means the defaults', async () => {
    const rules = file('r2.json', '[]');
    const missing = join(dir, 'absent.json');
    assert.deepEqual(await checkConfigFiles({ config: missing, rules }), {
      ok: false,
      lines: [`${missing}: not found; the defaults apply`, `${rules}: invalid: ${rules}: rules must be a JSON object, got an array`],
    });
  });

  it('refuses a symlink, as the service would', async () => {
    const link = join(dir, 'link.json');
    symlinkSync(file('target.json', '{}'), link);
    const report = await checkConfigFiles({ rules: link });
    assert.deepEqual(report, { ok: false, lines: [`${link}: invalid: ${link} is a symlink; refusing to follow it`] });
  });
});

describe('bastion install-file', () => {
  const options = (o: Partial<InstallFileOptions>): InstallFileOptions => ({
    kind: 'rules',
    source: '',
    target: join(dir, 'rules.json'),
    dir,
    callerUid: null,
    owner: null,
    ...o,
  });

  it('replaces rules.json with the validated file, mode 0640, owned by the service user', async () => {
    const source = file('new-rules.json', '{"/usr/bin/curl:443": true}\n');
    const result = await installFile(options({ source, owner: { uid: 65534, gid: 65534 } }));
    assert.deepEqual(result, { ok: true, warnings: [] });
    const st = statSync(join(dir, 'rules.json'));
    assert.equal(readFileSync(join(dir, 'rules.json'), 'utf8'), '{"/usr/bin/curl:443": true}\n');
    assert.deepEqual([st.mode & 0o777, st.uid, st.gid], [0o640, 65534, 65534]);
  });

  it('refuses, changing nothing: another target, a symlinked source, invalid content, a source of another user', async () => {
    const before = readFileSync(join(dir, 'rules.json'), 'utf8');
    const good = file('good.json', '{"/usr/bin/wget:80": false}');
    const link = join(dir, 'source-link.json');
    symlinkSync(good, link);
    const foreign = file('foreign.json', '{}');
    chownSync(foreign, 65534, 65534);
    const cases: [Partial<InstallFileOptions>, string][] = [
      [{ source: good, target: '/etc/passwd' }, `refusing /etc/passwd: only ${join(dir, 'rules.json')} may be replaced`],
      [
        { source: good, kind: 'config', target: join(dir, 'rules.json') },
        `refusing ${join(dir, 'rules.json')}: only ${join(dir, 'config.json')} may be replaced`,
      ],
      [{ source: link }, `${link} is a symlink; refusing to follow it`],
      [{ source: file('bad.json', '{"a": ') }, `${join(dir, 'bad.json')}: not valid JSON: `],
      [{ source: foreign, callerUid: 1000 }, `${foreign} does not belong to the calling user (uid 1000)`],
      [
        { source: file('bad-config.json', '{"mode": "off"}'), kind: 'config', target: join(dir, 'config.json') },
        `${join(dir, 'bad-config.json')}: mode must be "learning" or "enforcement", got "off"`,
      ],
    ];
    for (const [o, error] of cases) {
      const result = await installFile(options(o));
      assert.equal(result.ok, false);
      assert.ok(!result.ok && result.error.startsWith(error), `${!result.ok && result.error} should start with ${error}`);
    }
    assert.equal(readFileSync(join(dir, 'rules.json'), 'utf8'), before);
  });
});
