import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it, mock } from 'node:test';
import { readFileNoFollow, writeFileAtomic } from '../../common/safeFile.js';

let dir: string;
before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'bastion-safefile-'));
});
after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

/** A fresh sub-directory per test, so leftover temp files are easy to spot. */
async function freshDir(): Promise<string> {
  return fsp.mkdtemp(path.join(dir, 'case-'));
}

describe('readFileNoFollow', () => {
  it('reads a regular file', async () => {
    const d = await freshDir();
    await fsp.writeFile(path.join(d, 'rules.json'), '{"a": 1}\n');
    assert.deepEqual(await readFileNoFollow(path.join(d, 'rules.json'), 1024), { ok: true, text: '{"a": 1}\n' });
  });

  it('reads a file of exactly maxBytes', async () => {
    const d = await freshDir();
    await fsp.writeFile(path.join(d, 'f'), 'x'.repeat(100));
    assert.deepEqual(await readFileNoFollow(path.join(d, 'f'), 100), { ok: true, text: 'x'.repeat(100) });
  });

  it('reads a file larger than its first read buffer', async () => {
    const d = await freshDir();
    const text = 'y'.repeat(100_000);
    await fsp.writeFile(path.join(d, 'f'), text);
    assert.deepEqual(await readFileNoFollow(path.join(d, 'f'), 200_000), { ok: true, text });
  });

  it('reports a missing file as missing', async () => {
    const d = await freshDir();
    const p = path.join(d, 'nope.json');
    assert.deepEqual(await readFileNoFollow(p, 1024), { ok: false, reason: 'missing', error: `${p} does not exist` });
  });

  it('refuses a symlink, even to a good file', async () => {
    const d = await freshDir();
    await fsp.writeFile(path.join(d, 'real.json'), '{}');
    const link = path.join(d, 'rules.json');
    await fsp.symlink(path.join(d, 'real.json'), link);
    assert.deepEqual(await readFileNoFollow(link, 1024), {
      ok: false,
      reason: 'symlink',
      error: `${link} is a symlink; refusing to follow it`,
    });
  });

  it('refuses a dangling symlink as a symlink, not as missing', async () => {
    const d = await freshDir();
    const link = path.join(d, 'rules.json');
    await fsp.symlink(path.join(d, 'nowhere'), link);
    const result = await readFileNoFollow(link, 1024);
    assert.equal(result.ok || result.reason, 'symlink');
  });

  it('refuses a directory', async () => {
    const d = await freshDir();
    assert.deepEqual(await readFileNoFollow(d, 1024), {
      ok: false,
      reason: 'not_regular',
      error: `${d} is not a regular file`,
    });
  });

  it('refuses a character device', async () => {
    assert.deepEqual(await readFileNoFollow('/dev/zero', 1024), {
      ok: false,
      reason: 'not_regular',
      error: '/dev/zero is not a regular file',
    });
  });

  it('refuses a file over maxBytes before reading it', async () => {
    const d = await freshDir();
    const p = path.join(d, 'big.json');
    await fsp.writeFile(p, 'x'.repeat(101));
    assert.deepEqual(await readFileNoFollow(p, 100), {
      ok: false,
      reason: 'too_large',
      error: `${p} is too large (101 bytes; the limit is 100 bytes)`,
    });
  });

  it('refuses a file that is not valid UTF-8', async () => {
    const d = await freshDir();
    const p = path.join(d, 'bad.json');
    await fsp.writeFile(p, Buffer.from([0x7b, 0xff, 0x7d]));
    assert.deepEqual(await readFileNoFollow(p, 100), {
      ok: false,
      reason: 'not_utf8',
      error: `${p} is not valid UTF-8`,
    });
  });
});

describe('writeFileAtomic', () => {
  afterEach(() => {
    mock.restoreAll();
  });

  it('creates a new file and leaves no temp file behind', async () => {
    const d = await freshDir();
    const p = path.join(d, 'rules.json');
    await writeFileAtomic(p, '{}\n');
    assert.equal(await fsp.readFile(p, 'utf8'), '{}\n');
    assert.deepEqual(await fsp.readdir(d), ['rules.json']);
  });

  it('replaces an existing file with a new inode', async () => {
    const d = await freshDir();
    const p = path.join(d, 'rules.json');
    await fsp.writeFile(p, 'old');
    const before = await fsp.stat(p);
    await writeFileAtomic(p, 'new');
    assert.equal(await fsp.readFile(p, 'utf8'), 'new');
    assert.notEqual((await fsp.stat(p)).ino, before.ino);
    assert.deepEqual(await fsp.readdir(d), ['rules.json']);
  });

  it('gives the file exactly the requested mode, whatever the umask', async () => {
    const d = await freshDir();
    const p = path.join(d, 'rules.json');
    await writeFileAtomic(p, '{}', { mode: 0o664 });
    assert.equal((await fsp.stat(p)).mode & 0o777, 0o664);
    await writeFileAtomic(p, '{}', { mode: 0o640 });
    assert.equal((await fsp.stat(p)).mode & 0o777, 0o640);
  });

  it('sets owner and group when given', { skip: process.getuid?.() !== 0 && 'needs root to chown' }, async () => {
    const d = await freshDir();
    const p = path.join(d, 'rules.json');
    await writeFileAtomic(p, '{}', { uid: 4242, gid: 4343 });
    const st = await fsp.stat(p);
    assert.deepEqual([st.uid, st.gid], [4242, 4343]);
  });

  it('refuses to write through a symlink and leaves its target untouched', async () => {
    const d = await freshDir();
    const target = path.join(d, 'target');
    const link = path.join(d, 'rules.json');
    await fsp.writeFile(target, 'precious');
    await fsp.symlink(target, link);
    await assert.rejects(writeFileAtomic(link, 'evil'), { message: `${link} is a symlink; refusing to write through it` });
    assert.equal(await fsp.readFile(target, 'utf8'), 'precious');
    assert.equal((await fsp.lstat(link)).isSymbolicLink(), true);
    assert.deepEqual((await fsp.readdir(d)).sort(), ['rules.json', 'target']);
  });

  it('refuses to replace a directory', async () => {
    const d = await freshDir();
    const p = path.join(d, 'rules.json');
    await fsp.mkdir(p);
    await assert.rejects(writeFileAtomic(p, '{}'), { message: `${p} is not a regular file; refusing to replace it` });
  });

  it('on ENOSPC removes the temp file and leaves the old file untouched', async () => {
    const d = await freshDir();
    const p = path.join(d, 'rules.json');
    await fsp.writeFile(p, 'old');
    const probe = await fsp.open(path.join(d, 'probe'), 'w');
    const fileHandleProto = Object.getPrototypeOf(probe) as { writeFile: () => Promise<void> };
    await probe.close();
    await fsp.unlink(path.join(d, 'probe'));
    mock.method(fileHandleProto, 'writeFile', async () => {
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    });
    await assert.rejects(writeFileAtomic(p, 'new'), {
      message: `cannot write ${p}: ENOSPC: no space left on device, write`,
    });
    assert.equal(await fsp.readFile(p, 'utf8'), 'old');
    assert.deepEqual(await fsp.readdir(d), ['rules.json']);
  });

  it('when the rename fails removes the temp file and leaves the old file untouched', async () => {
    const d = await freshDir();
    const p = path.join(d, 'rules.json');
    await fsp.writeFile(p, 'old');
    mock.method(fsp, 'rename', async () => {
      throw Object.assign(new Error('EIO: i/o error, rename'), { code: 'EIO' });
    });
    await assert.rejects(writeFileAtomic(p, 'new'), { message: `cannot write ${p}: EIO: i/o error, rename` });
    mock.restoreAll();
    assert.equal(await fsp.readFile(p, 'utf8'), 'old');
    assert.deepEqual(await fsp.readdir(d), ['rules.json']);
  });

  it('fails clearly when the directory does not exist', async () => {
    const p = path.join(dir, 'no-such-dir', 'rules.json');
    await assert.rejects(writeFileAtomic(p, '{}'), (err: Error) => {
      assert.match(err.message, /^cannot write .*rules\.json: ENOENT: no such file or directory, open '.*\.tmp'$/);
      return true;
    });
    assert.equal(existsSync(path.dirname(p)), false);
  });
});
