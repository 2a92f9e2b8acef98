// What the real service records of real connections: the helper on NFQUEUE in a network
// namespace, the service writing its journal lines to a Unix datagram socket bound here (as
// journald's would be) and its history to a file, curl copies connecting. The lines go through
// the control panel's own patterns; `bastion log` (a child process) finds the decisions.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO } from '../support/bastion.js';
import { DatagramReceiver, parseNativeEntry } from '../support/datagramReceiver.js';
import { TestFirewall } from '../support/firewall.js';
import { guiParse, journalctlLine } from '../support/guiLogParser.js';
import { copyPrograms, fetchFrom } from '../support/guiPrograms.js';

const TSX = join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs');
const CLI = join(REPO, 'cli', 'bastion.ts');

function bastionLog(...args: string[]): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', TSX, CLI, 'log', '--json', ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`bastion log failed: ${stderr}`));
      else
        resolve(
          stdout
            .trim()
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as Record<string, unknown>),
        );
    });
  });
}

describe('the service records real connections', () => {
  it('a journal line the Logs tab parses and a history entry bastion log finds, for an allow and a deny by rule', async () => {
    const receiver = await DatagramReceiver.bind();
    let fw: TestFirewall | null = null;
    try {
      const dir = receiver.dir;
      const history = join(dir, 'history.sqlite');
      fw = new TestFirewall({ config: { mode: 'enforcement' }, daemonArgs: ['--journal-socket', receiver.path, '--history', history] });
      const exe = copyPrograms(fw, ['curl-ok', 'curl-no']);
      writeFileSync(fw.rulesPath, JSON.stringify({ [`${exe['curl-ok']}:80`]: true, [`${exe['curl-no']}:80`]: false }));
      await fw.start();
      assert.equal((await fetchFrom(fw, exe['curl-ok']!, 5)).code, 0);
      assert.notEqual((await fetchFrom(fw, exe['curl-no']!, 2)).code, 0);

      const deadline = Date.now() + 10_000;
      const mine = () =>
        receiver.received.map(parseNativeEntry).filter((f) => f['BASTION_PROGRAM'] === exe['curl-ok'] || f['BASTION_PROGRAM'] === exe['curl-no']);
      while (new Set(mine().map((f) => f['BASTION_PROGRAM'])).size < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const parsed = mine().map((f) => guiParse(journalctlLine(f)));
      assert.ok(
        parsed.every((p) => p !== null),
        `unparsed: ${JSON.stringify(mine())}`,
      );
      const byProgram = new Map(parsed.map((p) => [p!['path'], p!]));
      assert.deepEqual(byProgram.get(exe['curl-ok']), {
        type: 'RULE',
        action: 'ALLOW',
        app: 'curl-ok',
        path: exe['curl-ok'],
        ip: fw.net.serverV4,
        port: '80',
        user: '0',
      });
      assert.deepEqual(byProgram.get(exe['curl-no']), {
        type: 'RULE',
        action: 'BLOCK',
        app: 'curl-no',
        path: exe['curl-no'],
        ip: fw.net.serverV4,
        port: '80',
        user: '0',
      });

      // The history is written every 500 ms.
      let rows: Record<string, unknown>[] = [];
      while (Date.now() < deadline + 5_000) {
        rows = await bastionLog('--history', history, '--program', exe['curl-no']!);
        if (rows.length > 0) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.ok(rows.length > 0, 'the deny is not in the history');
      assert.deepEqual(
        {
          app_path: rows[0]!['app_path'],
          dest_ip: rows[0]!['dest_ip'],
          dest_port: rows[0]!['dest_port'],
          allow: rows[0]!['allow'],
          reason: rows[0]!['reason'],
        },
        { app_path: exe['curl-no'], dest_ip: fw.net.serverV4, dest_port: 80, allow: false, reason: 'rule' },
      );
      const allowed = await bastionLog('--history', history, '--verdict', 'allow', '--program', 'curl-ok');
      assert.ok(allowed.length > 0 && allowed.every((r) => r['app_path'] === exe['curl-ok']));
    } finally {
      await fw?.close();
      receiver.close();
    }
  });
});
