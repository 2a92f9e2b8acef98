// The layouts the addon exports for JS to read its buffers by (never mirrored by hand in TS), and
// the argument checks of the kernel-verdict calls, which share one parser.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadNative } from '../../common/native.js';

const native = loadNative();
const EBADF = 9;

/** [offset, bytes) ranges must not overlap and must fit in size. */
function assertDisjoint(fields: Record<string, [offset: number, bytes: number]>, size: number): void {
  const sorted = Object.entries(fields).sort((a, b) => a[1][0] - b[1][0]);
  let end = 0;
  for (const [name, [offset, bytes]] of sorted) {
    assert.ok(offset >= end, `${name} at ${offset} overlaps the field before it (which ends at ${end})`);
    end = offset + bytes;
    assert.ok(end <= size, `${name} ends at ${end}, past ${size}`);
  }
}

describe('addon layouts', () => {
  it('a slot header: every field helper/queue.ts reads lies within the header, none overlapping, the header 8-byte aligned', () => {
    const at = native.slotLayout;
    // The widths helper/queue.ts reads each field with.
    assertDisjoint(
      {
        packetId: [at.packetId, 4],
        hwProtocol: [at.hwProtocol, 2],
        hook: [at.hook, 1],
        flags: [at.flags, 1],
        mark: [at.mark, 4],
        indev: [at.indev, 4],
        outdev: [at.outdev, 4],
        uid: [at.uid, 4],
        gid: [at.gid, 4],
        capLen: [at.capLen, 4],
        origLen: [at.origLen, 4],
        fastInode: [at.fastInode, 4],
        fastToken: [at.fastToken, 4],
        fastRepeats: [at.fastRepeats, 4],
      },
      at.headerSize,
    );
    assert.equal(at.headerSize % 8, 0);
    // The reader thread reads a packet's id as the slot's first four bytes.
    assert.equal(at.packetId, 0);
    const flags = [at.flagUid, at.flagGid, at.flagFast, at.flagFastAccept];
    for (const f of flags) assert.ok(f > 0 && f < 256 && (f & (f - 1)) === 0, `flag ${f} is one bit of a byte`);
    assert.equal(new Set(flags).size, flags.length);
  });

  it('a process event: three int32 fields, and three distinct types', () => {
    const at = native.procEvent;
    assert.equal(at.length, 3);
    assert.deepEqual([at.type, at.pid, at.ppid].sort(), [0, 1, 2]);
    assert.equal(new Set([at.fork, at.exec, at.exit]).size, 3);
  });

  it('a kernel decision report: every field within its bytes, none overlapping', () => {
    const at = native.verdictEvent;
    assertDisjoint(
      {
        exeIno: [at.exeIno, 8],
        startNs: [at.startNs, 8],
        exeDev: [at.exeDev, 4],
        tgid: [at.tgid, 4],
        uid: [at.uid, 4],
        family: [at.family, 2],
        protocol: [at.protocol, 1],
        verdict: [at.verdict, 1],
        dstPort: [at.dstPort, 2],
        rulePort: [at.rulePort, 2],
        dstAddr: [at.dstAddr, 16],
        comm: [at.comm, at.commBytes],
      },
      at.bytes,
    );
  });

  it('the sock_diag out array: every index below its length, none shared', () => {
    const at = native.sockDiagOut;
    const indices = [
      at.inode,
      at.uid,
      at.state,
      at.callerTgid,
      at.callerFlags,
      at.callerUid,
      at.callerStartLo,
      at.callerStartHi,
      at.callerExeDevLo,
      at.callerExeDevHi,
      at.callerExeInoLo,
      at.callerExeInoHi,
    ];
    assert.equal(new Set(indices).size, indices.length);
    for (const i of indices) assert.ok(i < at.length);
  });
});

describe('kernel-verdict calls', () => {
  // Loosely typed on purpose: these calls are deliberately wrong.
  const call = native as unknown as Record<string, (...args: unknown[]) => unknown>;
  const set = 'kernelVerdictSet(dev, ino, protocol, port, allow)';
  const del = 'kernelVerdictDelete(dev, ino, protocol, port)';
  const cases: { name: string; why: string; args: unknown[]; usage: string }[] = [
    { name: 'kernelVerdictSet', why: 'without allow', args: [1, 2n, 6, 443], usage: set },
    { name: 'kernelVerdictSet', why: 'an ino that is no bigint', args: [1, 2, 6, 443, true], usage: set },
    { name: 'kernelVerdictSet', why: 'a negative ino', args: [1, -2n, 6, 443, true], usage: set },
    { name: 'kernelVerdictSet', why: 'a protocol over 255', args: [1, 2n, 256, 443, true], usage: set },
    { name: 'kernelVerdictSet', why: 'a port over 65535', args: [1, 2n, 6, 65536, true], usage: set },
    { name: 'kernelVerdictSet', why: 'an allow that is no boolean', args: [1, 2n, 6, 443, 1], usage: set },
    { name: 'kernelVerdictDelete', why: 'without a port', args: [1, 2n, 6], usage: del },
    { name: 'kernelVerdictDelete', why: 'a dev that is no number', args: ['1', 2n, 6, 443], usage: del },
    { name: 'kernelVerdictTake', why: 'an out that is no Uint8Array', args: [new Uint32Array(18)], usage: 'kernelVerdictTake(out: Uint8Array)' },
  ];
  for (const c of cases) {
    it(`${c.name} with ${c.why} is refused with its usage`, () => {
      assert.throws(() => call[c.name]!(...c.args), { name: 'TypeError', message: c.usage });
    });
  }

  it('with no programs attached: set and delete answer EBADF, clear and take have nothing to do', () => {
    assert.equal(native.kernelVerdictSet(1, 2n, 6, 443, true), -EBADF);
    assert.equal(native.kernelVerdictDelete(1, 2n, 6, 0), -EBADF);
    assert.equal(native.kernelVerdictClear(), 0);
    assert.deepEqual(native.kernelVerdictTake(new Uint8Array(native.verdictEvent.bytes)), { count: 0, lost: 0 });
  });
});
