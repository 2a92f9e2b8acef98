// A program on btrfs is credited to its path. The kernel's caller record holds the executable's
// superblock device (inode->i_sb->s_dev), while stat(2) on btrfs reports a per-subvolume
// anonymous device; the helper then takes the device /proc/PID/maps shows (mappedFileDevice).
// On a loop-mounted btrfs image made here, two copies of /usr/bin/curl live in a subvolume: one
// with a rule allowing it to port 80, one (another path) without. Enforcement, default deny:
// the first gets out and its decision names its path, the second does not and its decision
// names its own path too (not "no one"). Everything made is removed, also on failure.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir, type LogLine } from '../support/bastion.js';
import { TestFirewall } from '../support/firewall.js';

const CURL = '/usr/bin/curl';

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function hasCommand(cmd: string): boolean {
  try {
    sh('sh', ['-c', `command -v ${cmd}`]);
    return true;
  } catch {
    return false;
  }
}

const btrfsInKernel = readFileSync('/proc/filesystems', 'utf8')
  .split('\n')
  .some((l) => l.trim() === 'btrfs');
const skip =
  (!existsSync(CURL) && `${CURL} is not installed`) ||
  (!btrfsInKernel && 'the kernel has no btrfs (/proc/filesystems)') ||
  (!hasCommand('mkfs.btrfs') && 'btrfs-progs is not installed (scripts/install-deps.sh)');

/** glibc's makedev(), as stat(2) reports a device. */
function makedev(major: number, minor: number): number {
  return Number(((BigInt(major) & 0xfffff000n) << 32n) | ((BigInt(major) & 0xfffn) << 8n) | ((BigInt(minor) & 0xffffff00n) << 12n) | (BigInt(minor) & 0xffn));
}

/** The superblock device of the filesystem mounted at `mountPoint`, from /proc/self/mountinfo. */
function superblockDevice(mountPoint: string): number {
  const fields = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[4] === mountPoint);
  assert.equal(fields.length, 1, `one mount at ${mountPoint}`);
  const [major, minor] = fields[0]![2]!.split(':').map(Number);
  return makedev(major!, minor!);
}

function settle(ms = 300): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

describe('a program on a btrfs subvolume is credited to its path', { skip }, () => {
  let dir: ReturnType<typeof tempDir> | null = null;
  let mnt = '';
  let mounted = false;
  let fw: TestFirewall | null = null;
  let allowed = '';
  let unruled = '';
  let sbDev = 0;

  before(async () => {
    dir = tempDir('bastion-btrfs-');
    const root = realpathSync(dir.path);
    const image = join(root, 'btrfs.img');
    writeFileSync(image, '');
    sh('truncate', ['-s', '128M', image]); // sparse
    sh('mkfs.btrfs', ['-q', image]);
    mnt = join(root, 'mnt');
    mkdirSync(mnt);
    sh('mount', ['-o', 'loop', image, mnt]);
    mounted = true;
    const subvolume = join(mnt, 'apps');
    sh('btrfs', ['subvolume', 'create', subvolume]);
    allowed = join(subvolume, 'curl');
    unruled = join(subvolume, 'other', 'curl');
    mkdirSync(join(subvolume, 'other'));
    for (const copy of [allowed, unruled]) {
      copyFileSync(CURL, copy);
      chmodSync(copy, 0o755);
    }
    sbDev = superblockDevice(mnt);
    fw = await new TestFirewall({
      rules: { [`${allowed}:80`]: true },
      config: { mode: 'enforcement', default_action: 'deny', log_decisions: true },
    }).start();
  });

  after(async () => {
    try {
      await fw?.close();
    } finally {
      try {
        if (mounted) {
          try {
            sh('umount', [mnt]); // a mount -o loop frees its loop device with it
          } catch {
            sh('umount', ['-l', mnt]);
          }
        }
      } finally {
        dir?.remove();
      }
    }
  });

  it("the copies really are the case: stat(2) reports another device than the btrfs superblock's", () => {
    const a = statSync(allowed);
    const b = statSync(unruled);
    assert.notEqual(a.dev, sbDev, `stat(${allowed}).dev ${a.dev} is the superblock's device: the fallback is not exercised`);
    assert.notEqual(b.dev, sbDev);
    assert.notEqual(a.ino, b.ino);
  });

  it("the helper records callers' executables with eBPF (what the device check compares with)", async () => {
    const attached = await fw!.helper!.waitFor('callers recorded by eBPF');
    assert.equal(attached['executable'], true, 'caller records without the executable: the device is never compared');
  });

  /** Runs a copy as curl in the client namespace; true when the HTTP request succeeded. */
  function curl(path: string, timeoutS: number): boolean {
    const url = `http://${fw!.net.serverV4}/`;
    return fw!.net.run(fw!.net.client, path, ['-s', '-o', '/dev/null', '-m', String(timeoutS), url], (timeoutS + 5) * 1000).code === 0;
  }

  /** The daemon's first decision on a connection to port 80 logged after line `from`, once logged. */
  function decisionAfter(from: number): Promise<LogLine> {
    return waitForLine(fw!.daemon!.lines, from, (l) => (l.msg === 'allowed' || l.msg === 'blocked') && l['port'] === 80, 5000);
  }

  it('the copy with a rule gets out, and the decision names its path', async () => {
    const before = fw!.connectionsReceived(80);
    const from = fw!.daemon!.lines.length;
    const out = curl(allowed, 5);
    const decision = await decisionAfter(from);
    assert.equal(out, true, `${allowed} did not get out; the decision: ${JSON.stringify(decision)}`);
    await settle();
    assert.equal(fw!.connectionsReceived(80) - before, 1);
    assert.equal(decision.msg, 'allowed');
    assert.equal(decision['exe'], allowed);
    assert.equal(decision['reason'], 'rule');
    assert.equal(decision['ruleKey'], `${allowed}:80`);
    assert.notEqual(decision['attribution'], 'caller_unknown');
  });

  it('a copy on the same subvolume under another path, without a rule, does not get out and is named', async () => {
    const before = fw!.connectionsReceived(80);
    const from = fw!.daemon!.lines.length;
    const out = curl(unruled, 2);
    const decision = await decisionAfter(from);
    assert.equal(out, false, `${unruled} got out without a rule`);
    await settle();
    assert.equal(fw!.connectionsReceived(80) - before, 0);
    assert.equal(decision.msg, 'blocked');
    assert.equal(decision['exe'], unruled, `the decision names no one or another program: ${JSON.stringify(decision)}`);
    assert.equal(decision['reason'], 'default');
    assert.notEqual(decision['attribution'], 'caller_unknown');
    const c = await fw!.counters();
    assert.equal(c.allowed_connections, 1);
    assert.ok(c.blocked_connections >= 1, JSON.stringify(c));
  });
});

/** The first line of `lines` from index `from` on (already read or still to come) that passes `test`. */
async function waitForLine(lines: LogLine[], from: number, test: (l: LogLine) => boolean, timeoutMs: number): Promise<LogLine> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = lines.slice(from).find(test);
    if (found) return found;
    if (Date.now() > deadline)
      throw new Error(
        `no such log line within ${timeoutMs} ms; last lines:\n${lines
          .slice(-10)
          .map((l) => JSON.stringify(l))
          .join('\n')}`,
      );
    await settle(50);
  }
}
