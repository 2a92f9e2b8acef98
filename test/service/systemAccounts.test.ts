// A system service installed while the service runs gets its allowance without a restart: the
// whitelist names chronyd by its user _chrony, which the package's postinst adds with useradd;
// the service watches the accounts file and looks the users up again (service/accountWatch.ts).
// The real `bastion daemon` and the real useradd/userdel (--prefix: on a copy of the system's
// account files, so the machine's own accounts are never touched); the helper's side of the bus
// is played by the test, which sends chronyd's NTP packet and reads the verdict.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Pair } from 'zeromq';
import type { PacketRecord, Verdict } from '../../common/types.js';
import { decodeBusMessage, encodeBusMessage, PROTOCOL_VERSION } from '../../common/wire.js';
import { startBastion, tempDir, type BastionProcess } from '../support/bastion.js';

const USER = '_chrony';
const CHRONYD = '/usr/sbin/chronyd';

describe('system accounts added while the service runs', () => {
  const dir = tempDir('bastion-accounts-');
  const prefix = `${dir.path}/root`;
  const passwd = `${prefix}/etc/passwd`;
  const endpoint = `ipc://${dir.path}/helper.sock`;
  let fake: Pair;
  let daemon: BastionProcess;
  let nextId = 1;

  before(async () => {
    mkdirSync(`${prefix}/etc`, { recursive: true });
    for (const file of ['passwd', 'group', 'shadow', 'gshadow']) copyFileSync(`/etc/${file}`, `${prefix}/etc/${file}`);
    if (uidInCopy(USER) !== null) execFileSync('userdel', ['--prefix', prefix, USER]);
    fake = new Pair({ linger: 0 });
    await fake.bind(endpoint);
    daemon = startBastion([
      'daemon',
      '--config',
      `${dir.path}/config.json`,
      '--rules',
      `${dir.path}/rules.json`,
      '--endpoint',
      endpoint,
      '--socket',
      `${dir.path}/gui.sock`,
      '--socket-group',
      'root',
      '--no-polkit',
      '--mode',
      'enforcement',
      '--passwd',
      passwd,
    ]);
    await fake.receive(); // the service's hello
    await fake.send(
      encodeBusMessage({
        kind: 'hello',
        hello: {
          role: 'helper',
          softwareVersion: 't',
          protocolVersion: PROTOCOL_VERSION,
          pid: 1,
          capabilities: [],
          queueNum: 1,
          ackDeadlineMs: 1000,
          maxHoldMs: 1000,
        },
      }),
    );
    await daemon.waitFor('helper connected');
    await daemon.waitFor('GUI socket listening');
  });
  after(async () => {
    fake?.close();
    await daemon?.stop();
    dir.remove();
  });

  function uidInCopy(user: string): number | null {
    try {
      const line = execFileSync('grep', [`^${user}:`, passwd]).toString();
      return Number(line.split(':')[2]);
    } catch {
      return null;
    }
  }

  /** chronyd, as uid, sends an NTP query; the service's verdict for it. */
  async function ntpVerdict(uid: number): Promise<Verdict['action']> {
    const id = nextId++;
    const record: PacketRecord = {
      packetId: id,
      family: 4,
      protocol: 17,
      srcAddr: new Uint8Array([192, 0, 2, 1]),
      dstAddr: new Uint8Array([192, 0, 2, 123]),
      srcPort: 40000 + id,
      dstPort: 123,
      icmpType: 0,
      icmpCode: 0,
      inIfindex: 0,
      outIfindex: 2,
      uid,
      gid: uid,
      malformed: false,
      process: {
        pid: 4242,
        uid,
        exe: CHRONYD,
        exeDeleted: false,
        comm: 'chronyd',
        cmdline: [CHRONYD],
        ppid: 1,
        parentExe: '/usr/lib/systemd/systemd',
        startTime: 1,
        identity: 'host',
        otherMountNs: false,
      },
      socketInode: 1,
      attribution: 'sock_diag',
      lookupMicros: 10,
      payloadLength: 76,
    };
    await fake.send(encodeBusMessage({ kind: 'packets', records: [record] }));
    for (;;) {
      const [frame] = await fake.receive();
      const decoded = decodeBusMessage(frame!);
      if (!decoded.ok || decoded.message.kind !== 'verdicts') continue;
      const verdict = decoded.message.verdicts.find((v) => v.packetId === id);
      if (verdict) return verdict.action;
    }
  }

  async function waitForRefresh(count: number): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (daemon.count('accounts changed') < count) {
      if (Date.now() > deadline) throw new Error('the service did not re-read the accounts');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('allows chronyd once useradd --system adds _chrony, without a restart, and not after userdel', async () => {
    // Before: no such user, so no uid is chronyd's service user. 990 stands for "some uid".
    assert.equal(await ntpVerdict(990), 'drop');
    execFileSync('useradd', ['--prefix', prefix, '--system', '--no-create-home', USER]);
    const uid = uidInCopy(USER);
    assert.notEqual(uid, null);
    await waitForRefresh(1);
    assert.equal(await ntpVerdict(uid!), 'accept');
    // Another uid running chronyd is still nobody's service.
    assert.equal(await ntpVerdict(uid! + 1), 'drop');
    execFileSync('userdel', ['--prefix', prefix, USER]);
    await waitForRefresh(2);
    assert.equal(await ntpVerdict(uid!), 'drop');
  });
});
