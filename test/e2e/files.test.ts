// The service's files under faults: kill -9 in the middle of rule saves, broken files at
// reload, a full disk. The rules file is always the old or the new one, never corrupt or
// empty, and the service keeps the last good state.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { describe, it, type TestContext } from 'node:test';
import { GuiConnection } from '../../cli/guiClient.js';
import { startBastion, tempDir, type BastionProcess } from '../support/bastion.js';

const SAVES = Number(process.env['BASTION_FULL'] ? 1000 : 300);

interface Service {
  daemon: BastionProcess;
  socket: string;
}

async function startService(dir: string, rulesPath = `${dir}/rules.json`, configPath = `${dir}/config.json`): Promise<Service> {
  const socket = `${dir}/gui.sock`;
  const daemon = startBastion([
    'daemon',
    '--config',
    configPath,
    '--rules',
    rulesPath,
    '--endpoint',
    `ipc://${dir}/helper.sock`,
    '--socket',
    socket,
    '--socket-group',
    'root',
    '--no-polkit',
    '--state-dir',
    dir,
  ]);
  await daemon.waitFor('policy service started');
  return { daemon, socket };
}

async function request(socket: string, message: Record<string, unknown>, reply: string): Promise<Record<string, unknown>> {
  const c = await GuiConnection.connect(socket);
  try {
    return await c.request(message, reply);
  } finally {
    c.close();
  }
}

const ruleCount = async (socket: string): Promise<number> => (await request(socket, { type: 'status' }, 'status'))['rules'] as number;

describe('rule saves interrupted by kill -9', () => {
  it(`after ${SAVES} saves with kill -9 among them, rules.json is always a whole, valid file`, async (t: TestContext) => {
    const dir = tempDir('bastion-saves-');
    let service: Service | null = null;
    try {
      const rulesPath = `${dir.path}/rules.json`;
      let sent = 0;
      let saved = 0;
      let kills = 0;
      while (sent < SAVES) {
        assert.ok(kills < 100, 'no progress');
        service = await startService(dir.path);
        const conn = await GuiConnection.connect(service.socket);
        // Queue a chunk of saves, then kill while some are still being written.
        const chunkEnd = Math.min(SAVES, sent + 60);
        for (let i = sent; i < chunkEnd; i++) {
          conn.send({ type: 'add_rule', app_path: `/opt/app-${i}`, app_name: '', port: 443, allow: i % 2 === 0, all_ports: false });
        }
        await new Promise((r) => setTimeout(r, 30 + Math.random() * 250));
        service.daemon.child.kill('SIGKILL');
        await service.daemon.exited;
        conn.close();
        kills++;
        // Before the first save completes there is no file yet: that is the old state.
        const parsed = existsSync(rulesPath) ? (JSON.parse(readFileSync(rulesPath, 'utf8')) as Record<string, unknown>) : {};
        assert.equal(typeof parsed, 'object');
        // Saves are applied in order, so a whole file holds exactly the first k rules: any
        // other set would be a mix of two states.
        const rules = Object.keys(parsed).filter((k) => k.startsWith('/opt/app-'));
        assert.ok(rules.length >= saved, `rules.json went back from ${saved} to ${rules.length} rules`);
        saved = rules.length;
        assert.deepEqual(rules.sort(), Array.from({ length: rules.length }, (_, i) => `/opt/app-${i}:443`).sort());
        for (const k of rules) assert.equal(parsed[k], Number(k.slice(9, -4)) % 2 === 0);
        // The next run resumes after what was saved (unsaved messages died with the service).
        sent = rules.length;
      }
      assert.ok(kills >= 3);
      t.diagnostic(`${SAVES} saves, ${kills} kill -9 of the service among them; rules.json read after each kill: never corrupt, empty or mixed`);
      service = await startService(dir.path);
      assert.equal(await ruleCount(service.socket), SAVES);
      // Temp files of interrupted saves are gone once a save succeeded.
      assert.deepEqual(
        readdirSync(dir.path).filter((n) => n.endsWith('.tmp')),
        [],
      );
    } finally {
      await service?.daemon.stop();
      dir.remove();
    }
  });
});

describe('broken files at reload (SIGHUP)', () => {
  const cases: [string, (path: string) => void, RegExp][] = [
    ['corrupt', (p) => writeFileSync(p, '{"/usr/bin/curl:80": tru'), /not valid JSON/],
    ['truncated (empty)', (p) => writeFileSync(p, ''), /not valid JSON/],
    ['non-object', (p) => writeFileSync(p, '[1, 2, 3]'), /must be a JSON object|not an object|array/],
    [
      '100 MB',
      (p) => {
        writeFileSync(p, '{}');
        truncateSync(p, 100 * 1024 * 1024);
      },
      /too large/,
    ],
    [
      'symlinked',
      (p) => {
        rmSync(p);
        writeFileSync(`${p}.target`, '{"/usr/bin/evil:*": true}');
        symlinkSync(`${p}.target`, p);
      },
      /symlink/,
    ],
  ];

  for (const [name, breakFile, message] of cases) {
    it(`a ${name} rules.json is refused with a clear log line and the last good rules stay`, async () => {
      const dir = tempDir('bastion-reload-');
      const rulesPath = `${dir.path}/rules.json`;
      writeFileSync(rulesPath, JSON.stringify({ '/usr/bin/curl:80': true, '/usr/bin/wget:*': false }));
      const service = await startService(dir.path);
      try {
        assert.equal(await ruleCount(service.socket), 2);
        breakFile(rulesPath);
        service.daemon.child.kill('SIGHUP');
        const line = await service.daemon.waitFor('rules.json not loaded; keeping the rules in force');
        assert.match(String(line['error']), message);
        assert.equal(await ruleCount(service.socket), 2);
        const listed = await request(service.socket, { type: 'list_rules' }, 'rules_list');
        assert.equal((listed['rules'] as Record<string, unknown>)['/usr/bin/curl:80'], true);
      } finally {
        await service.daemon.stop();
        dir.remove();
      }
    });

    it(`a ${name} config.json is refused with a clear log line and the last good config stays`, async () => {
      const dir = tempDir('bastion-reload-');
      const configPath = `${dir.path}/config.json`;
      writeFileSync(configPath, JSON.stringify({ mode: 'enforcement', default_action: 'deny' }));
      const service = await startService(dir.path);
      try {
        breakFile(configPath);
        service.daemon.child.kill('SIGHUP');
        const line = await service.daemon.waitFor('config.json refused');
        assert.match(String(line['error']), message);
        const status = await request(service.socket, { type: 'status' }, 'status');
        assert.equal(status['mode'], 'enforcement');
      } finally {
        await service.daemon.stop();
        dir.remove();
      }
    });
  }
});

describe('a start with a broken file', () => {
  it('starts from the last good rules and config, not from none and the defaults, and says so', async () => {
    const dir = tempDir('bastion-start-');
    const rulesPath = `${dir.path}/rules.json`;
    const configPath = `${dir.path}/config.json`;
    writeFileSync(rulesPath, JSON.stringify({ '/usr/bin/curl:80': true, '/usr/bin/wget:*': false }));
    writeFileSync(configPath, JSON.stringify({ mode: 'enforcement', default_action: 'deny' }));
    let service = await startService(dir.path);
    try {
      await service.daemon.stop();
      writeFileSync(rulesPath, '{"/usr/bin/curl:80": tru');
      writeFileSync(configPath, '{"mode": ');
      service = await startService(dir.path);
      const rules = await service.daemon.waitFor('rules.json not loaded at start; the last good copy is in force');
      assert.equal(rules['rules'], 2);
      assert.equal(rules['lastGood'], `${dir.path}/rules.last-good.json`);
      await service.daemon.waitFor('config.json not loaded at start; the last good copy is in force');
      const status = await request(service.socket, { type: 'status' }, 'status');
      assert.equal(status['rules'], 2);
      assert.equal(status['mode'], 'enforcement');
      // The broken file is the user's: never overwritten while it does not load.
      assert.equal(readFileSync(rulesPath, 'utf8'), '{"/usr/bin/curl:80": tru');
    } finally {
      await service.daemon.stop();
      dir.remove();
    }
  });

  it('without a last good copy, says that no rules are in force', async () => {
    const dir = tempDir('bastion-start-');
    writeFileSync(`${dir.path}/rules.json`, '{"/usr/bin/curl:80": tru');
    const service = await startService(dir.path);
    try {
      await service.daemon.waitFor('rules.json not loaded at start and no last good copy: no rules in force');
      assert.equal(await ruleCount(service.socket), 0);
    } finally {
      await service.daemon.stop();
      dir.remove();
    }
  });
});

describe('a full disk', () => {
  it('a rule save on a full disk is refused and keeps the old file', async () => {
    const dir = tempDir('bastion-full-');
    const mount = `${dir.path}/etc`;
    mkdirSync(mount);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mount]);
    let service: Service | null = null;
    try {
      const rulesPath = `${mount}/rules.json`;
      const original = JSON.stringify({ '/usr/bin/curl:80': true }, null, 2) + '\n';
      writeFileSync(rulesPath, original);
      service = await startService(dir.path, rulesPath);
      // Fill the file system: the next save's temporary file cannot be written.
      try {
        writeFileSync(`${mount}/filler`, Buffer.alloc(128 * 1024));
      } catch {
        // ENOSPC once it is full: exactly what we want
      }
      const reply = await request(
        service.socket,
        { type: 'add_rule', app_path: '/usr/bin/wget', app_name: 'wget', port: 443, allow: true, all_ports: false },
        'error',
      );
      assert.equal(reply['type'], 'error');
      assert.match(String(reply['error']), /ENOSPC|no space/i);
      assert.equal(readFileSync(rulesPath, 'utf8'), original);
      assert.equal(await ruleCount(service.socket), 1);
    } finally {
      await service?.daemon.stop();
      execFileSync('umount', [mount]);
      dir.remove();
    }
  });
});
