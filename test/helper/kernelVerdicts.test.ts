// The helper's half of kernel verdicts (helper/kernelVerdicts.ts): paths resolved to the kernel's
// (dev, ino), the map kept equal to the service's rules (stale entries out first), emptied at
// clear(), and the kernel's reports decoded with the addon's own layout.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { loadNative, type NativeAddon } from '../../common/native.js';
import { existsSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { tempDir } from '../support/bastion.js';
import { kernelDev, KernelVerdicts, pinUdpAllow, resolvePath, type KernelDecision, type ResolvedPath } from '../../helper/kernelVerdicts.js';

const layout = loadNative().verdictEvent;
const log = pino({ level: 'silent' });

class FakeMap {
  readonly entries = new Map<string, boolean>();
  readonly calls: string[] = [];
  events: Uint8Array[] = [];
  lost = 0;
  private key = (dev: number, ino: bigint, protocol: number, port: number): string => `${dev}:${ino}:${protocol}:${port}`;
  readonly native: Pick<
    NativeAddon,
    'kernelVerdictSet' | 'kernelVerdictDelete' | 'kernelVerdictClear' | 'kernelVerdictTake' | 'verdictEvent' | 'kernelVerdictAlive'
  > = {
    verdictEvent: layout,
    kernelVerdictAlive: () => 0,
    kernelVerdictSet: (dev, ino, protocol, port, allow) => {
      this.calls.push(`set ${this.key(dev, ino, protocol, port)} ${allow}`);
      this.entries.set(this.key(dev, ino, protocol, port), allow);
      return 0;
    },
    kernelVerdictDelete: (dev, ino, protocol, port) => {
      this.calls.push(`delete ${this.key(dev, ino, protocol, port)}`);
      this.entries.delete(this.key(dev, ino, protocol, port));
      return 0;
    },
    kernelVerdictClear: () => {
      this.calls.push('clear');
      this.entries.clear();
      return 0;
    },
    kernelVerdictTake: (out) => {
      const n = this.events.length;
      this.events.forEach((e, i) => out.set(e, i * layout.bytes));
      this.events = [];
      const lost = this.lost;
      this.lost = 0;
      return { count: n, lost };
    },
  };
}

const files: Record<string, ResolvedPath> = {
  '/usr/bin/curl': { ok: true, dev: (254 << 20) | 1, ino: 100n },
  '/usr/bin/wget': { ok: true, dev: (254 << 20) | 1, ino: 200n },
  '/bind/curl': { ok: true, dev: (254 << 20) | 1, ino: 100n },
  '/usr/bin/python3': { ok: false, reason: 'not a regular file' },
};
const resolve = (path: string): ResolvedPath => files[path] ?? { ok: false, reason: 'ENOENT' };

describe('kernel verdicts in the helper', () => {
  it("converts stat's st_dev to the kernel's MAJOR << 20 | MINOR", () => {
    assert.equal(kernelDev(0xfe01n), (254 << 20) | 1); // makedev(254, 1)
    assert.equal(kernelDev(0x12310345n), (259 << 20) | 0x12345); // makedev(259, 0x12345): minor bits above 8 stored high
  });

  it('refuses a symlink: its target runs under its own path', () => {
    const target = resolvePath('/proc/self/exe');
    assert.deepEqual(target, { ok: false, reason: 'not a regular file' });
  });

  it('writes each rule for TCP and UDP, and a new set deletes what it dropped before writing', () => {
    const map = new FakeMap();
    const kernel = new KernelVerdicts(map.native, log, resolve);
    kernel.replace([
      { path: '/usr/bin/curl', port: 80, allow: true },
      { path: '/usr/bin/wget', port: 0, allow: false },
      { path: '/usr/bin/python3', port: 80, allow: true },
    ]);
    assert.deepEqual(
      [...map.entries],
      [
        [`${(254 << 20) | 1}:100:6:80`, true],
        [`${(254 << 20) | 1}:100:17:80`, true],
        [`${(254 << 20) | 1}:200:6:0`, false],
        [`${(254 << 20) | 1}:200:17:0`, false],
      ],
    );
    map.calls.length = 0;
    kernel.replace([{ path: '/usr/bin/wget', port: 0, allow: false }]);
    assert.deepEqual(map.calls, [`delete ${(254 << 20) | 1}:100:6:80`, `delete ${(254 << 20) | 1}:100:17:80`]);
    kernel.clear();
    assert.equal(map.entries.size, 0);
    assert.equal(kernel.size, 0);
  });

  it('says which rule paths stay on the queue and why, once, and again only when that changes', () => {
    const lines: Record<string, unknown>[] = [];
    const recording = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
    const said = (): Record<string, unknown>[] => lines.filter((l) => String(l['msg']).startsWith('path rules left to the queue'));
    const kernel = new KernelVerdicts(new FakeMap().native, recording, resolve);
    kernel.replace([
      { path: '/usr/bin/curl', port: 80, allow: true },
      { path: '/usr/bin/python3', port: 80, allow: true },
    ]);
    assert.deepEqual(
      said().map((l) => l['skipped']),
      [{ '/usr/bin/python3': 'not a regular file' }],
    );
    kernel.replace([
      { path: '/usr/bin/curl', port: 443, allow: true },
      { path: '/usr/bin/python3', port: 80, allow: true },
    ]);
    assert.equal(said().length, 1, 'the same paths left to the queue: not said again');
    kernel.replace([{ path: '/usr/bin/gone', port: 80, allow: true }]);
    assert.deepEqual(
      said()
        .map((l) => l['skipped'])
        .at(-1),
      { '/usr/bin/gone': 'ENOENT' },
    );
  });

  it('leaves to the queue a file two rule paths name (a bind mount): the kernel cannot tell them apart', () => {
    const map = new FakeMap();
    new KernelVerdicts(map.native, log, resolve).replace([
      { path: '/usr/bin/curl', port: 80, allow: true },
      { path: '/bind/curl', port: 80, allow: false },
    ]);
    assert.equal(map.entries.size, 0);
  });

  it("decodes the kernel's reports with the addon's layout, naming the rule's path", () => {
    const map = new FakeMap();
    const kernel = new KernelVerdicts(map.native, log, resolve);
    kernel.replace([{ path: '/usr/bin/curl', port: 0, allow: false }]);
    const event = new Uint8Array(layout.bytes);
    const v = new DataView(event.buffer);
    v.setBigUint64(layout.exeIno, 100n, true);
    v.setUint32(layout.exeDev, (254 << 20) | 1, true);
    v.setBigUint64(layout.startNs, 12_340_000_000n, true);
    v.setUint32(layout.tgid, 4242, true);
    v.setUint32(layout.uid, 1000, true);
    v.setUint16(layout.family, 2, true);
    v.setUint8(layout.protocol, 6);
    v.setUint8(layout.verdict, layout.deny);
    v.setUint16(layout.dstPort, 443, true);
    event.set([192, 0, 2, 1], layout.dstAddr);
    event.set(Buffer.from('curl'), layout.comm);
    // Three identical decisions and one to another port: two reports, the first standing for three.
    const otherPort = event.slice();
    new DataView(otherPort.buffer).setUint16(layout.dstPort, 8443, true);
    map.events = [event, event.slice(), otherPort, event.slice()];
    map.lost = 2;
    const seen: KernelDecision[] = [];
    assert.equal(
      kernel.take((d) => seen.push(d)),
      true,
    );
    const curl = {
      tgid: 4242,
      uid: 1000,
      startTime: 1234,
      exe: '/usr/bin/curl',
      comm: 'curl',
      family: 4,
      protocol: 6,
      dstAddr: new Uint8Array([192, 0, 2, 1]),
      dstPort: 443,
      allow: false,
    };
    assert.deepEqual(seen, [
      { ...curl, repeats: 3 },
      { ...curl, dstPort: 8443, repeats: 1 },
    ]);
    assert.equal(kernel.decided, 4);
    assert.equal(kernel.lost, 2);
    // The take buffer is reused: a report keeps its own copy of the address.
    map.events = [otherPort.fill(0)];
    kernel.take(() => undefined);
    assert.deepEqual(seen[0]!.dstAddr, new Uint8Array([192, 0, 2, 1]));
  });
});

describe('pinning the UDP allow filter', () => {
  const pinned: string[] = [];
  const native = (rc: number) => ({
    kernelUdpAllowPin: (path: string): number => {
      pinned.push(path);
      return rc;
    },
  });

  it('pins it once per chain, replacing a pin a dead helper left', () => {
    const dir = tempDir('bastion-pin-');
    try {
      writeFileSync(`${dir.path}/bastion-BASTION-OUT-udp-allow`, 'stale');
      assert.deepEqual(pinUdpAllow(native(0), `${dir.path}/`, 'BASTION-OUT'), { ok: true, path: `${dir.path}/bastion-BASTION-OUT-udp-allow` });
      assert.equal(existsSync(`${dir.path}/bastion-BASTION-OUT-udp-allow`), false, 'the stale pin was not removed first');
      assert.equal(pinned.at(-1), `${dir.path}/bastion-BASTION-OUT-udp-allow`);
    } finally {
      dir.remove();
    }
  });

  it('says why UDP allows stay on the queue', () => {
    assert.deepEqual(pinUdpAllow(native(-constants.errno.EPERM), '/proc', 'BASTION-OUT'), {
      ok: false,
      reason: '/proc is not a bpf file system, or not writable',
    });
    assert.match((pinUdpAllow(native(-constants.errno.ENOTSUP), '/proc', 'X') as { reason: string }).reason, /^the kernel refused the UDP allow filter/);
  });

  it('refuses a directory iptables-restore would not read as one word, before pinning anything', () => {
    const before = pinned.length;
    for (const dir of ['relative', '/tmp/a b', '/tmp/"x', '/tmp/../etc', '/tmp/a\nb']) {
      assert.deepEqual(pinUdpAllow(native(0), dir, 'BASTION-OUT'), { ok: false, reason: `unusable bpf file system path ${JSON.stringify(dir)}` });
    }
    assert.equal(pinned.length, before);
  });
});
