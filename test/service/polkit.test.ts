// Rule edits on the GUI socket go through real polkit: a private system bus (dbus-daemon with
// a system-bus configuration in a temporary directory) and polkitd, started here. polkitd runs
// in a mount namespace of its own where our action file and a rules file granting a test group
// are bind-mounted over its actions and rules directories, so nothing on the machine changes.
// The service runs as a test user that owns the action (as user bastion owns it when
// installed); clients run as two other users, one in the granted group, one not.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO } from '../support/bastion.js';

const CLI = join(REPO, 'cli', 'bastion.ts');
const TSX = join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs');
const POLICY = join(REPO, 'polkit', 'com.bastion.firewall.policy');
const ACTION = 'com.bastion.firewall.manage-rules';

const prefix = `bpk${randomBytes(3).toString('hex')}`;
const names = {
  socketGroup: `${prefix}s`, // may use the GUI socket: the service and both clients
  editGroup: `${prefix}e`, // granted the action by the test's polkit rule
  service: `${prefix}svc`,
  member: `${prefix}in`,
  outsider: `${prefix}out`,
};

interface Ids {
  uid: number;
  gid: number;
}

const created = { groups: [] as string[], users: [] as string[] };
const processes: ChildProcess[] = [];
let dir = '';
let busAddress = '';

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function ids(user: string): Ids {
  return { uid: Number(sh('id', ['-u', user]).trim()), gid: Number(sh('id', ['-g', user]).trim()) };
}

function addGroup(name: string): void {
  sh('groupadd', ['--system', name]);
  created.groups.push(name);
}

function addUser(name: string, primary: string, extra: string[]): void {
  sh('useradd', [
    '--system',
    '--no-create-home',
    '--home-dir',
    '/nonexistent',
    '--shell',
    '/usr/sbin/nologin',
    '-g',
    primary,
    ...(extra.length ? ['-G', extra.join(',')] : []),
    name,
  ]);
  created.users.push(name);
}

/** Runs `child` and resolves once a line of its output satisfies `ready`. */
function waitForOutput(child: ChildProcess, what: string, ready: (line: string) => boolean, timeoutMs = 20000): Promise<string> {
  return new Promise((resolve, reject) => {
    const seen: string[] = [];
    const timer = setTimeout(() => reject(new Error(`${what}: not ready within ${timeoutMs} ms; output:\n${seen.join('\n')}`)), timeoutMs);
    const onLine = (chunk: Buffer): void => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line === '') continue;
        seen.push(line);
        if (ready(line)) {
          clearTimeout(timer);
          resolve(line);
        }
      }
    };
    child.stdout?.on('data', onLine);
    child.stderr?.on('data', onLine);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${signal ?? code}); output:\n${seen.join('\n')}`));
    });
  });
}

function started(child: ChildProcess): ChildProcess {
  processes.push(child);
  return child;
}

async function stopAll(): Promise<void> {
  await Promise.all(
    processes.splice(0).map(
      (p) =>
        new Promise<void>((resolve) => {
          if (p.exitCode !== null || p.signalCode !== null) return resolve();
          const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
          p.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          p.kill('SIGTERM');
        }),
    ),
  );
}

function busConfig(socketPath: string): string {
  return `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${socketPath}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`;
}

const grantRule = (group: string): string => `polkit.addRule(function (action, subject) {
  if (action.id == "${ACTION}" && subject.isInGroup("${group}")) return polkit.Result.YES;
});
`;

async function startBusAndPolkit(): Promise<void> {
  const busDir = join(dir, 'bus');
  mkdirSync(busDir, { mode: 0o755 });
  const socketPath = join(busDir, 'system_bus_socket');
  writeFileSync(join(busDir, 'system.conf'), busConfig(socketPath));
  const bus = started(
    spawn('dbus-daemon', ['--config-file', join(busDir, 'system.conf'), '--nofork', '--print-address=1'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  busAddress = (await waitForOutput(bus, 'dbus-daemon', (l) => l.startsWith('unix:'))).trim();
  chmodSync(socketPath, 0o666); // as the real system bus: everyone may connect, the policy decides

  // polkitd drops to its own user: everything it reads must be world-readable.
  const actions = join(dir, 'polkit-actions');
  const rules = join(dir, 'polkit-rules');
  mkdirSync(actions, { mode: 0o755 });
  mkdirSync(rules, { mode: 0o755 });
  const policy = readFileSync(POLICY, 'utf8').replace('unix-user:bastion', `unix-user:${names.service}`);
  writeFileSync(join(actions, 'com.bastion.firewall.policy'), policy, { mode: 0o644 });
  writeFileSync(join(rules, '50-bastion-test.rules'), grantRule(names.editGroup), { mode: 0o644 });
  const polkitd = started(
    spawn(
      'unshare',
      [
        '--mount',
        '--propagation',
        'private',
        '--',
        'sh',
        '-c',
        'mount --bind "$1" /usr/share/polkit-1/actions && mount --bind "$2" /etc/polkit-1/rules.d && ' +
          'mount --bind "$2" /usr/share/polkit-1/rules.d && exec /usr/lib/polkit-1/polkitd --no-debug',
        'sh',
        actions,
        rules,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: busAddress },
      },
    ),
  );
  // Ready when it answers for our action (root is always authorized once polkitd is up).
  const deadline = Date.now() + 20000;
  for (;;) {
    try {
      sh('env', [`DBUS_SYSTEM_BUS_ADDRESS=${busAddress}`, 'pkaction', '--action-id', ACTION]);
      break;
    } catch (err) {
      if (polkitd.exitCode !== null) throw new Error(`polkitd exited (${polkitd.exitCode})`);
      if (Date.now() > deadline) throw new Error(`polkitd did not register ${ACTION}: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

interface Service {
  socket: string;
  rulesPath: string;
  /** The daemon's log so far (JSON lines). */
  log: string[];
}

async function startService(name: string, extraArgs: string[]): Promise<Service> {
  const svc = ids(names.service);
  const base = join(dir, name);
  const etc = join(base, 'etc');
  const run = join(base, 'run');
  mkdirSync(base, { mode: 0o755 });
  mkdirSync(etc, { mode: 0o755 });
  mkdirSync(run, { mode: 0o750 });
  chownSync(etc, svc.uid, svc.gid);
  chownSync(run, svc.uid, svc.gid); // the group is the socket group: the clients may enter
  const rulesPath = join(etc, 'rules.json');
  writeFileSync(rulesPath, JSON.stringify({ '/usr/bin/existing:80': true, applications: {}, services: {} }, null, 2) + '\n');
  chownSync(rulesPath, svc.uid, svc.gid);
  const socket = join(run, 'bastion-daemon.sock');
  const child = started(
    spawn(
      process.execPath,
      [
        '--import',
        TSX,
        CLI,
        'daemon',
        '--config',
        join(etc, 'config.json'),
        '--rules',
        rulesPath,
        '--socket',
        socket,
        '--socket-group',
        names.socketGroup,
        '--endpoint',
        `ipc://${join(run, 'helper.sock')}`,
        ...extraArgs,
      ],
      {
        uid: svc.uid,
        gid: svc.gid,
        cwd: base,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: busAddress, HOME: base, BASTION_LOG_LEVEL: 'info' },
      },
    ),
  );
  const log: string[] = [];
  child.stderr?.on('data', (d: Buffer) => log.push(...d.toString('utf8').split('\n').filter(Boolean)));
  child.stdout?.on('data', (d: Buffer) => log.push(...d.toString('utf8').split('\n').filter(Boolean)));
  await waitForOutput(child, `bastion daemon ${extraArgs.join(' ')}`, (l) => l.includes('policy service started'));
  return { socket, rulesPath, log };
}

/** A GUI client as `user`: sends `messages`, then list_rules; returns every non-stats reply. */
const CLIENT = `
const net = require('node:net');
const [socketPath, json] = process.argv.slice(1);
const s = net.connect(socketPath);
const out = [];
let buf = '';
s.on('connect', () => {
  for (const m of JSON.parse(json)) s.write(JSON.stringify(m) + '\\n');
  s.write(JSON.stringify({ type: 'list_rules' }) + '\\n');
});
s.on('data', (d) => {
  buf += d;
  let nl;
  while ((nl = buf.indexOf('\\n')) >= 0) {
    const m = JSON.parse(buf.slice(0, nl));
    buf = buf.slice(nl + 1);
    if (m.type === 'stats_update') continue;
    out.push(m);
    if (m.type === 'rules_list') { process.stdout.write(JSON.stringify(out)); s.end(); }
  }
});
s.on('error', (e) => { process.stderr.write(String(e)); process.exit(3); });
setTimeout(() => { process.stderr.write('no rules_list'); process.exit(4); }, 15000).unref();
`;

function runClient(user: string | null, socket: string, messages: object[]): Promise<Record<string, unknown>[]> {
  const who = user === null ? null : ids(user);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', CLIENT, socket, JSON.stringify(messages)], {
      ...(who && { uid: who.uid, gid: who.gid }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`client as ${user ?? 'root'} exited ${code}: ${stderr}`));
      resolve(JSON.parse(stdout) as Record<string, unknown>[]);
    });
  });
}

/**
 * The pid-reuse attack: a client connects, hands its socket to a child (fd 3 of the child,
 * whose output goes to the parent's fd 3) and exits. The child waits for SIGUSR1, then sends
 * `messages` and list_rules and writes the replies.
 */
const HANDOVER_PARENT = `
const net = require('node:net');
const { spawn } = require('node:child_process');
const [socketPath, childCode, json] = process.argv.slice(1);
const s = net.connect(socketPath, () => {
  const child = spawn(process.execPath, ['-e', childCode, json], { stdio: ['ignore', 3, 'ignore', s], detached: true });
  child.unref();
  process.exit(0);
});
`;
const HANDOVER_CHILD = `
const net = require('node:net');
const s = new net.Socket({ fd: 3, readable: true, writable: true });
const out = [];
let buf = '';
s.on('data', (d) => {
  buf += d;
  let nl;
  while ((nl = buf.indexOf('\\n')) >= 0) {
    const m = JSON.parse(buf.slice(0, nl));
    buf = buf.slice(nl + 1);
    if (m.type === 'stats_update') continue;
    out.push(m);
    if (m.type === 'rules_list') { process.stdout.write(JSON.stringify(out) + '\\n'); process.exit(0); }
  }
});
process.on('SIGUSR1', () => {
  for (const m of JSON.parse(process.argv[1])) s.write(JSON.stringify(m) + '\\n');
  s.write(JSON.stringify({ type: 'list_rules' }) + '\\n');
});
process.stdout.write('ready ' + process.pid + '\\n');
`;

/** Spawns `sleep` as `user` until one gets exactly `pid` (ns_last_pid; other forks may race). */
async function processWithPid(user: string, pid: number): Promise<ChildProcess | null> {
  const who = ids(user);
  for (let attempt = 0; attempt < 200; attempt++) {
    writeFileSync('/proc/sys/kernel/ns_last_pid', String(pid - 1));
    const child = started(spawn('sleep', ['600'], { uid: who.uid, gid: who.gid, stdio: 'ignore' }));
    if (child.pid === pid) return child;
    child.kill('SIGKILL');
  }
  return null;
}

async function waitUntil(what: string, test: () => boolean, timeoutMs = 20000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const addRule = (path: string): object => ({ type: 'add_rule', app_path: path, app_name: 'x', port: 443, allow: true, all_ports: false });

describe('rule edits authorized by polkit', () => {
  let service: Service;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bastion-polkit-'));
    chmodSync(dir, 0o755);
    addGroup(names.socketGroup);
    addGroup(names.editGroup);
    addUser(names.service, names.socketGroup, []);
    addUser(names.member, names.socketGroup, [names.editGroup]);
    addUser(names.outsider, names.socketGroup, []);
    await startBusAndPolkit();
    service = await startService('polkit', []);
  });

  after(async () => {
    await stopAll();
    for (const user of created.users.splice(0)) {
      try {
        sh('userdel', [user]);
      } catch {
        // already gone
      }
    }
    for (const group of created.groups.splice(0)) {
      try {
        sh('groupdel', [group]);
      } catch {
        // already gone
      }
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a client in the granted group adds a rule, and it is saved', async () => {
    const replies = await runClient(names.member, service.socket, [addRule('/usr/bin/member-app')]);
    assert.deepEqual(
      replies.filter((m) => m['type'] === 'error'),
      [],
    );
    const listed = replies.at(-1)!['rules'] as Record<string, unknown>;
    assert.equal(listed['/usr/bin/member-app:443'], true);
    assert.equal(JSON.parse(readFileSync(service.rulesPath, 'utf8'))['/usr/bin/member-app:443'], true);
  });

  it('a client outside the group is refused with an error, and nothing changes', async () => {
    const before = readFileSync(service.rulesPath, 'utf8');
    const replies = await runClient(names.outsider, service.socket, [
      addRule('/usr/bin/outsider-app'),
      { type: 'delete_rule', key: '/usr/bin/existing:80' },
      { type: 'set_mode', mode: 'enforcement' },
    ]);
    const errors = replies.filter((m) => m['type'] === 'error');
    assert.deepEqual(
      errors.map((e) => e['request']),
      ['add_rule', 'delete_rule', 'set_mode'],
    );
    const uid = ids(names.outsider).uid;
    assert.equal(errors[0]!['error'], `not authorized to add rules: ${ACTION} needs authentication and no polkit authentication agent of uid ${uid} answered`);
    assert.match(String(errors[1]!['error']), /^not authorized to delete rules: /);
    assert.match(String(errors[2]!['error']), /^not authorized to change the mode: /);
    assert.equal(
      replies.some((m) => m['type'] === 'rule_deleted' || m['type'] === 'mode_changed'),
      false,
    );
    const listed = replies.at(-1)!['rules'] as Record<string, unknown>;
    assert.equal(listed['/usr/bin/outsider-app:443'], undefined);
    assert.equal(listed['/usr/bin/existing:80'], true);
    assert.equal(readFileSync(service.rulesPath, 'utf8'), before);
  });

  it('a client that hands its socket to a child and exits is refused, even when its pid now names a process polkit would allow', async () => {
    const before = readFileSync(service.rulesPath, 'utf8');
    const outPath = join(dir, 'handover.out');
    const outFd = openSync(outPath, 'w', 0o644);
    const member = ids(names.member);
    const parent = spawn(process.execPath, ['-e', HANDOVER_PARENT, service.socket, HANDOVER_CHILD, JSON.stringify([addRule('/usr/bin/handed-over')])], {
      uid: member.uid,
      gid: member.gid,
      stdio: ['ignore', 'ignore', 'inherit', outFd],
    });
    closeSync(outFd);
    const parentPid = parent.pid!;
    await new Promise((r) => parent.once('exit', r));
    await waitUntil('the child is ready', () => readFileSync(outPath, 'utf8').startsWith('ready '));
    const childPid = Number(/^ready (\d+)/.exec(readFileSync(outPath, 'utf8'))![1]);
    try {
      // The pid of the client that connected now names a process of the granted user.
      const reused = await processWithPid(names.member, parentPid);
      assert.ok(reused, `could not get pid ${parentPid} again`);
      process.kill(childPid, 'SIGUSR1');
      await waitUntil('the child got its replies', () => readFileSync(outPath, 'utf8').split('\n').length > 2);
    } finally {
      try {
        process.kill(childPid, 'SIGKILL');
      } catch {
        // it had exited
      }
    }
    const replies = JSON.parse(readFileSync(outPath, 'utf8').split('\n')[1]!) as Record<string, unknown>[];
    const errors = replies.filter((m) => m['type'] === 'error');
    assert.deepEqual(
      errors.map((e) => e['error']),
      [`not authorized to add rules: the process that connected (pid ${parentPid}) is gone; its pid now names another process`],
    );
    assert.equal((replies.at(-1)!['rules'] as Record<string, unknown>)['/usr/bin/handed-over:443'], undefined);
    assert.equal(readFileSync(service.rulesPath, 'utf8'), before);
  });

  it('a refused edit reaches the person as a notification the tray shows, and the daemon logs it', async () => {
    const uid = ids(names.outsider).uid;
    const replies = await runClient(names.outsider, service.socket, [addRule('/usr/bin/outsider-app')]);
    const error = `not authorized to add rules: ${ACTION} needs authentication and no polkit authentication agent of uid ${uid} answered`;
    // JSON.stringify of the parsed line gives back the service's bytes (plain ASCII, same key order).
    assert.deepEqual(
      replies.filter((m) => m['type'] !== 'rules_list').map((m) => JSON.stringify(m)),
      [
        `{"type":"error","error":"${error}","request":"add_rule"}`,
        `{"type":"notification","title":"Bastion: change refused","message":"${error}","level":"warning"}`,
      ],
    );
    const logged = service.log.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['msg'] === 'refused a change from a GUI client');
    assert.ok(
      logged.some((l) => l['request'] === 'add_rule' && l['error'] === error),
      service.log.slice(-5).join('\n'),
    );
  });

  it('clear_cache is a rule edit: refused for the outsider (error and notification), done for the granted user', async () => {
    const outsider = await runClient(names.outsider, service.socket, [{ type: 'clear_cache', cache_key: '/usr/bin/curl:443' }]);
    assert.deepEqual(
      outsider.filter((m) => m['type'] === 'error').map((m) => m['request']),
      ['clear_cache'],
    );
    assert.match(String(outsider.find((m) => m['type'] === 'error')!['error']), /^not authorized to clear remembered answers: /);
    assert.equal(outsider.filter((m) => m['type'] === 'notification').length, 1);
    const member = await runClient(names.member, service.socket, [{ type: 'clear_cache', cache_key: '/usr/bin/curl:443' }]);
    assert.deepEqual(
      member.filter((m) => m['type'] === 'error' || m['type'] === 'notification'),
      [],
    );
  });

  it('reading needs no authorization: the outsider still lists the rules', async () => {
    const replies = await runClient(names.outsider, service.socket, []);
    assert.deepEqual(
      replies.map((m) => m['type']),
      ['rules_list'],
    );
  });

  it('with --no-polkit only root may edit: the granted client is refused, root is not', async () => {
    const rootOnly = await startService('no-polkit', ['--no-polkit']);
    const member = await runClient(names.member, rootOnly.socket, [addRule('/usr/bin/member-app')]);
    assert.deepEqual(
      member.filter((m) => m['type'] === 'error').map((e) => e['error']),
      ['not authorized to add rules: only root may change rules when polkit is disabled'],
    );
    const root = await runClient(null, rootOnly.socket, [addRule('/usr/bin/root-app')]);
    assert.deepEqual(
      root.filter((m) => m['type'] === 'error'),
      [],
    );
    assert.equal((root.at(-1)!['rules'] as Record<string, unknown>)['/usr/bin/root-app:443'], true);
  });
});
