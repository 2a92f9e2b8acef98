// The executable's device as the kernel records it (its superblock's), read back from
// /proc/PID/maps: what lets a caller record match on btrfs, whose stat(2) device differs.
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { describe, it } from 'node:test';
import { makedev, mappedFileDevice } from '../../helper/identify/processInfo.js';

describe('mappedFileDevice', () => {
  it("finds this process's executable in its maps with the device stat(2) reports on this file system", () => {
    const exe = statSync('/proc/self/exe');
    assert.equal(mappedFileDevice(process.pid, exe.ino), exe.dev);
  });

  it('is null for an inode the process does not map, and for a process that is gone', () => {
    assert.equal(mappedFileDevice(process.pid, 1), null);
    assert.equal(mappedFileDevice(0x3fffffff, statSync('/proc/self/exe').ino), null);
  });

  it("encodes devices as glibc's makedev() does", () => {
    assert.deepEqual(
      [makedev(8, 1), makedev(254, 3), makedev(0, 0x2f), makedev(259, 0x10002), makedev(0x1000, 0x100)],
      [0x801, 0xfe03, 0x2f, 0x10010302, 2 ** 44 + 0x100000],
    );
  });
});
