// `bastion run`, the README's first command for a newcomer: helper and service together. Its
// decisions must be in the history that `bastion log` reads, and its bus must sit in a
// directory of its own, not in the GUI group's /run/bastion.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { DEFAULTS } from '../../cli/defaults.js';
import { CLI, TSX, startBastion, tempDir, type BastionProcess } from '../support/bastion.js';
import { TestNetwork } from '../support/netns.js';

describe('bastion run, as the README starts it', () => {
  const dir = tempDir('bastion-run-');
  const net = TestNetwork.create();
  const stateDir = `${dir.path}/state`;
  const endpointDir = `${dir.path}/bastion-helper`;
  let run: BastionProcess;
  const server = net.spawn(net.server, process.execPath, ['-e', "require('http').createServer((q, r) => r.end('ok')).listen(80)"]);

  before(async () => {
    run = startBastion(
      [
        'run',
        '--mode',
        'learning',
        '--queue',
        '17',
        '--config',
        `${dir.path}/config.json`,
        '--rules',
        `${dir.path}/rules.json`,
        '--socket',
        `${dir.path}/gui.sock`,
        '--endpoint',
        `ipc://${endpointDir}/helper.sock`,
        '--state-dir',
        stateDir,
      ],
      net.client,
    );
    await run.waitFor('helper connected', 30_000);
  });
  after(async () => {
    await run?.stop('SIGINT');
    server.kill('SIGKILL');
    net.destroy();
    dir.remove();
  });

  it("puts the helper's bus in a directory of its own by default, which only root reaches", () => {
    assert.equal(DEFAULTS.endpoint, 'ipc:///run/bastion-helper/helper.sock');
    assert.equal(statSync(endpointDir).mode & 0o777, 0o750);
  });

  it('keeps its decisions where `bastion log` finds them', async () => {
    for (let i = 0; i < 20 && net.run(net.client, 'curl', ['-s', '-o', '/dev/null', '-m', '2', `http://${net.serverV4}/`]).code !== 0; i++) {
      await new Promise((r) => setTimeout(r, 250));
    }
    await run.stop('SIGINT');
    assert.equal(statSync(stateDir).mode & 0o777, 0o750);
    const out = execFileSync(process.execPath, ['--import', TSX, CLI, 'log', '--history', `${stateDir}/history.sqlite`, '--json'], { encoding: 'utf8' });
    const rows = out
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(
      rows.some((r) => r['dest_ip'] === net.serverV4 && r['dest_port'] === 80),
      out,
    );
  });
});
