// Only the service's user reaches the helper's bus (issue: a member of the GUI group could
// become the helper's peer, answer every packet and read every record). Two layers, each
// tested with real users, real ZeroMQ and the real ends of the bus: the socket's directory
// belongs to a group of the service user alone, and the helper's peer check (ZAP with the
// kernel's SO_PEERCRED) refuses any other uid even when it can reach the socket.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, lstatSync, mkdtempSync, openSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../common/log.js';
import type { Hello } from '../../common/wire.js';
import { parseZapPeerAddress } from '../../helper/busGatekeeper.js';
import { ServiceLink } from '../../helper/serviceLink.js';
import { BastionProcess, REPO } from '../support/bastion.js';

const TSX = join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs');
const CHILD = join(REPO, 'test', 'support', 'busServiceChild.ts');
const prefix = `bbus${randomBytes(3).toString('hex')}`;
const names = {
  guiGroup: `${prefix}g`, // like group bastion: the GUI socket's
  busGroup: `${prefix}b`, // like group bastion-bus
  service: `${prefix}svc`,
  guiUser: `${prefix}gui`, // a desktop user of the GUI
  misplaced: `${prefix}mis`, // a desktop user an admin put in the bus group by mistake
};
const created = { users: [] as string[], groups: [] as string[] };
const children: BastionProcess[] = [];
let dir = '';

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

const uidOf = (user: string): number => Number(sh('id', ['-u', user]).trim());
const gidOf = (group: string): number => Number(sh('getent', ['group', group]).split(':')[2]);

/** `node ARGS` as `user` with that user's groups, its stderr (JSON log lines) collected. */
function runAs(user: string, args: string[]): BastionProcess {
  const logPath = join(dir, `log-${children.length}`);
  const writeFd = openSync(logPath, 'w', 0o600);
  const readFd = openSync(logPath, 'r');
  unlinkSync(logPath);
  const child = spawn('setpriv', [`--reuid=${user}`, `--regid=${sh('id', ['-g', user]).trim()}`, '--init-groups', process.execPath, ...args], {
    stdio: ['ignore', 'pipe', writeFd],
  });
  closeSync(writeFd);
  const p = new BastionProcess(child, readFd);
  children.push(p);
  return p;
}

const hello: Hello = {
  role: 'helper',
  softwareVersion: 'test',
  protocolVersion: 1,
  pid: process.pid,
  capabilities: [],
  queueNum: 1,
  ackDeadlineMs: 1000,
  maxHoldMs: 1000,
};

describe('parseZapPeerAddress', () => {
  const cases: [string, ReturnType<typeof parseZapPeerAddress>][] = [
    ['localhost:105:110:4242', { uid: 105, gid: 110, pid: 4242 }],
    [':0:0:1', { uid: 0, gid: 0, pid: 1 }],
    ['localhost', null], // no SO_PEERCRED: refused, never guessed
    ['127.0.0.1', null],
    ['localhost:105:110', null],
  ];
  for (const [address, want] of cases) {
    it(`reads ${JSON.stringify(address)} as ${JSON.stringify(want)}`, () => assert.deepEqual(parseZapPeerAddress(address), want));
  }
});

describe('the helper bus admits only the service user', () => {
  let link: ServiceLink;
  const up: Hello[] = [];
  let endpoint = '';

  before(async () => {
    for (const g of [names.guiGroup, names.busGroup]) {
      sh('groupadd', ['--system', g]);
      created.groups.push(g);
    }
    const addUser = (name: string, extra: string[]): void => {
      sh('useradd', [
        '--system',
        '--no-create-home',
        '--home-dir',
        '/nonexistent',
        '--shell',
        '/usr/sbin/nologin',
        '-g',
        names.guiGroup,
        '-G',
        extra.join(','),
        name,
      ]);
      created.users.push(name);
    };
    addUser(names.service, [names.busGroup]);
    addUser(names.guiUser, [names.guiGroup]);
    addUser(names.misplaced, [names.busGroup]);
    dir = mkdtempSync(join(tmpdir(), 'bastion-bus-'));
    chmodSync(dir, 0o755);
    endpoint = `ipc://${dir}/run/helper.sock`;
    link = await ServiceLink.bind(
      { endpoint, socketGid: gidOf(names.busGroup), serviceUid: uidOf(names.service), heartbeatMs: 100, silenceMs: 3000, hello },
      {
        onVerdicts: () => undefined,
        onCacheReset: () => undefined,
        onPathRules: () => undefined,
        onInboundPolicy: () => undefined,
        onEndConnections: () => undefined,
        onServiceUp: (h) => up.push(h),
        onServiceDown: () => undefined,
        onRecordsLost: () => undefined,
        counters: () => ({}) as never,
      },
      createLogger({ name: 'test-helper', json: true, level: 'silent' }),
    );
  });

  after(async () => {
    await Promise.all(children.map((c) => c.stop('SIGKILL')));
    link?.close();
    for (const u of created.users) sh('userdel', [u]);
    for (const g of created.groups) sh('groupdel', [g]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('puts the socket in a directory of the bus group that others cannot enter', () => {
    const st = lstatSync(`${dir}/run`);
    assert.equal(st.mode & 0o777, 0o750);
    assert.equal(st.gid, gidOf(names.busGroup));
    assert.equal(lstatSync(`${dir}/run/helper.sock`).mode & 0o777, 0o660);
  });

  it('a member of the GUI group cannot even reach the socket (EACCES)', async () => {
    const probe = runAs(names.guiUser, [
      '-e',
      `require('net').connect(process.argv[1]).on('connect', () => console.error('connected')).on('error', (e) => console.error(e.code))`,
      `${dir}/run/helper.sock`,
    ]);
    await probe.exited;
    assert.deepEqual(
      probe.lines.map((l) => l.msg),
      ['EACCES'],
    );
  });

  it('a user who can reach the socket but is not the service user is refused, logs why, and never becomes the peer', async () => {
    const rogue = runAs(names.misplaced, ['--import', TSX, CHILD, endpoint, '300']);
    const line = await rogue.waitFor('NOT PAIRED WITH THE HELPER (refused by the helper)');
    assert.equal(line.level, 50); // error
    assert.ok(link.refusedPeers >= 1);
    assert.equal(up.length, 0);
    assert.equal(link.serviceConnected, false);
    assert.equal(rogue.count('helper connected'), 0);
  });

  it('the service user pairs while the refused one keeps trying', async () => {
    const refusedBefore = link.refusedPeers;
    const service = runAs(names.service, ['--import', TSX, CHILD, endpoint, '300']);
    await service.waitFor('helper connected');
    // The child logs that on the helper's hello; the helper counts it paired on the child's
    // own hello, which may be read a moment later.
    for (let i = 0; i < 100 && !link.serviceConnected; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(link.serviceConnected, true);
    assert.equal(up.length, 1);
    assert.equal(up[0]!.pid, service.child.pid); // setpriv execs node: the same process
    // The rogue is still knocking, and still refused, while the service stays paired.
    while (link.refusedPeers <= refusedBefore) await new Promise((r) => setTimeout(r, 50));
    assert.equal(children[1]!.count('helper connected'), 0);
    assert.equal(link.serviceConnected, true);
    assert.equal(up.length, 1);
  });
});
