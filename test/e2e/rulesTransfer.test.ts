// `bastion rules export`, `import` and `suggest` end to end: the real CLI against the real
// service over its socket, with the real helper deciding real connections in test namespaces.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { CLI, TSX } from '../support/bastion.js';
import { TestFirewall, type FirewallSetup } from '../support/firewall.js';

const CURL = '/usr/bin/curl';

function bastion(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', TSX, CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function withFirewall(setup: FirewallSetup, prepare: (fw: TestFirewall) => void, fn: (fw: TestFirewall) => Promise<void>): Promise<void> {
  const fw = new TestFirewall(setup);
  try {
    prepare(fw);
    await fw.start();
    await fn(fw);
  } finally {
    await fw.close();
  }
}

function curl(fw: TestFirewall, port: number, host = fw.net.serverV4): boolean {
  const url = host.includes(':') ? `http://[${host}]:${port}/` : `http://${host}:${port}/`;
  return fw.net.run(fw.net.client, CURL, ['-s', '-o', '/dev/null', '-m', '2', url], 8000).code === 0;
}

describe('export and import', () => {
  it('round-trips every rule: importing an export again changes nothing, and into a new service gives the same rules and verdicts', async () => {
    let exported: unknown[] = [];
    const file = `/tmp/bastion-export-${process.pid}.json`;
    await withFirewall(
      { rules: { [`${CURL}:80`]: true, '@name:python3:*': false }, serverPorts: [80, 81, 82] },
      (fw) => {
        mkdirSync(`${fw.dir.path}/rules.d`);
        writeFileSync(`${fw.dir.path}/rules.d/a.json`, JSON.stringify([{ action: 'allow', exe: CURL, port: 81, user: 0 }]));
      },
      async (fw) => {
        writeFileSync(file, JSON.stringify([{ action: 'allow', exe: CURL, dest: '198.18.0.0/15', port: 82, proto: 'tcp' }]));
        const imported = bastion('rules', 'import', file, '--socket', fw.guiSocket);
        assert.equal(imported.code, 0, imported.stderr);
        assert.equal(imported.stdout, 'added 1, replaced 0, unchanged 0, refused 0\n');
        assert.equal(curl(fw, 82), true);
        const out = bastion('rules', 'export', '--socket', fw.guiSocket);
        assert.equal(out.code, 0, out.stderr);
        exported = JSON.parse(out.stdout) as unknown[];
        assert.deepEqual(exported, [
          { action: 'allow', exe: CURL, port: 80 },
          { action: 'deny', comm: 'python3' },
          { action: 'allow', exe: CURL, user: 0, port: 81 },
          { action: 'allow', exe: CURL, dest: '198.18.0.0/15', port: 82, proto: 'tcp' },
        ]);
        writeFileSync(file, out.stdout);
        const again = bastion('rules', 'import', file, '--socket', fw.guiSocket);
        assert.equal(again.stdout, 'added 0, replaced 0, unchanged 4, refused 0\n', 'importing the export again changed something');
        // A rule contradicting rules.d is refused, and says so.
        writeFileSync(`${file}.bad`, JSON.stringify([{ action: 'deny', exe: CURL, port: 81, user: 0 }]));
        const refused = bastion('rules', 'import', `${file}.bad`, '--socket', fw.guiSocket);
        assert.equal(refused.code, 1);
        assert.match(refused.stderr, /refused: rule 1: .*rules\.d\/a\.json#1 allows the same connections/);
        // `rules add` with a criterion makes an extended rule; @dest:<ip> PORT a rules.json one.
        assert.equal(bastion('rules', 'add', '*', '83', '--user', '0', '--deny', '--socket', fw.guiSocket).code, 0);
        assert.equal(bastion('rules', 'add', `@dest:${fw.net.serverV6}`, '83', '--socket', fw.guiSocket).code, 0);
        const listed = bastion('rules', 'list', '--socket', fw.guiSocket).stdout.split('\n');
        assert.ok(listed.includes(`allow  @dest:${fw.net.serverV6}:83:*`), listed.join('\n'));
        assert.ok(
          listed.some((l) => l.startsWith('deny   {"user":0,"port":83}') && l.endsWith('(imported)')),
          listed.join('\n'),
        );
        assert.ok(
          listed.some((l) => l.includes('rules.d/a.json#1 (read-only)')),
          listed.join('\n'),
        );
        assert.equal(bastion('rules', 'add', `@dest:${fw.net.serverV4}:83`, '83', '--socket', fw.guiSocket).code, 2);
        // An invalid file changes nothing and names the rule.
        writeFileSync(
          `${file}.bad`,
          JSON.stringify([
            { action: 'allow', exe: CURL, port: 83 },
            { action: 'allow', port: 'x' },
          ]),
        );
        const invalid = bastion('rules', 'import', `${file}.bad`, '--socket', fw.guiSocket);
        assert.equal(invalid.code, 1);
        assert.equal(invalid.stderr, 'bastion: nothing imported: rule 2: "port" must be 1-65535 (leave it out for every port)\n');
      },
    );
    await withFirewall(
      { serverPorts: [80, 81, 82] },
      () => undefined,
      async (fw) => {
        assert.equal(curl(fw, 82), false, 'a new service has no rules yet');
        const imported = bastion('rules', 'import', file, '--socket', fw.guiSocket);
        assert.equal(imported.stdout, 'added 4, replaced 0, unchanged 0, refused 0\n');
        const out = JSON.parse(bastion('rules', 'export', '--socket', fw.guiSocket).stdout) as unknown[];
        assert.deepEqual(out, exported);
        assert.equal(curl(fw, 80), true);
        assert.equal(curl(fw, 81), true);
        assert.equal(curl(fw, 82), true);
      },
    );
    spawnSync('rm', ['-f', file, `${file}.bad`]);
  });
});

describe('learning, then suggest, import and enforcement', () => {
  it('the programs learned pass under enforcement after their suggested rules are imported; others do not', async () => {
    await withFirewall(
      { config: { mode: 'learning' }, serverPorts: [80, 81, 82] },
      () => undefined,
      async (fw) => {
        assert.equal(curl(fw, 80), true);
        assert.equal(curl(fw, 81, fw.net.serverV6), true);
        const history = `${fw.dir.path}/history.sqlite`;
        let suggested: Record<string, unknown>[] = [];
        for (let i = 0; i < 50 && suggested.length < 2; i++) {
          await new Promise((r) => setTimeout(r, 200)); // the history is written in batches
          const r = bastion('rules', 'suggest', '--since', '1h', '--history', history);
          assert.equal(r.code, 0, r.stderr);
          suggested = JSON.parse(r.stdout) as Record<string, unknown>[];
        }
        assert.deepEqual(suggested, [
          { action: 'allow', exe: CURL, proto: 'tcp', port: 80 },
          { action: 'allow', exe: CURL, proto: 'tcp', port: 81 },
        ]);
        assert.equal(bastion('mode', 'enforcement', '--socket', fw.guiSocket).code, 0);
        assert.equal(curl(fw, 80), false, 'enforcement without rules still allowed curl');
        const file = `${fw.dir.path}/suggested.json`;
        writeFileSync(file, JSON.stringify(suggested));
        const imported = bastion('rules', 'import', file, '--socket', fw.guiSocket);
        assert.equal(imported.stdout, 'added 2, replaced 0, unchanged 0, refused 0\n', imported.stderr);
        assert.equal(curl(fw, 80), true);
        assert.equal(curl(fw, 81, fw.net.serverV6), true);
        assert.equal(curl(fw, 82), false, 'a port never learned was allowed');
      },
    );
  });
});
