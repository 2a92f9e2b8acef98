// The in-kernel path on the kernel our users run: Debian 12's own (linux-image-amd64, 6.1),
// not this machine's. The caller programs, loaded by the addon's own loader
// (native/src/caller_bpf.c, linked into test/kernel/guest_check.c), are run as /init of a small
// initramfs that qemu boots with that kernel under software emulation; the guest decides real
// sockets (the identity attacks included: a copy of the program's file, the program in a user
// namespace of its own) and prints what it saw on the serial console. A kernel whose verifier refused the
// executable reads or the verdicts would leave users on the slower queue path without a test
// failing anywhere else: the loader falls back quietly to what the kernel accepts.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { REPO, tempDir } from '../support/bastion.js';

/** Downloaded kernel packages, kept between runs (the image is ~70 MB). */
const CACHE = '/var/tmp/bastion-test-kernels';
/** What the guest checks, in its order (test/kernel/guest_check.c). */
const CHECKS = [
  'load',
  'executable-identity',
  'kernel-verdicts',
  'flows',
  'udp-allow-filter',
  'tcp-deny-eperm',
  'udp-connect-passes',
  'udp-deny-eperm',
  'tcp-no-rule-undecided',
  'tcp-allow-connects',
  'tcp-allow-marked',
  'caller-recorded',
  'child-decided',
  'copy-undecided',
  'other-userns-undecided',
  'decisions-reported',
];

/** The image package linux-image-amd64 depends on now: the distribution's current kernel. */
function currentKernelPackage(): string {
  const depends = execFileSync('apt-cache', ['depends', 'linux-image-amd64'], { encoding: 'utf8' });
  const name = /Depends: (linux-image-[0-9][^\s]*)/.exec(depends)?.[1];
  assert.ok(name, `no kernel image among linux-image-amd64's dependencies:\n${depends}`);
  return name;
}

/** The kernel image (vmlinuz) of that package, downloaded once into CACHE and unpacked into dir. */
function kernelImage(pkg: string, dir: string): string {
  mkdirSync(CACHE, { recursive: true });
  let deb = readdirSync(CACHE).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (deb === undefined) {
    execFileSync('apt-get', ['download', pkg], { cwd: CACHE, stdio: ['ignore', 'ignore', 'pipe'] });
    deb = readdirSync(CACHE).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
    assert.ok(deb, `apt-get download ${pkg} left no package in ${CACHE}`);
  }
  const root = join(dir, 'kernel');
  mkdirSync(root);
  try {
    // Only ./boot (the image), not the package's ~400 MB of modules.
    execFileSync('sh', ['-c', 'dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" ./boot', 'sh', join(CACHE, deb), root]);
  } catch (err) {
    rmSync(join(CACHE, deb), { force: true }); // a damaged download is fetched again next time
    throw err;
  }
  const image = readdirSync(join(root, 'boot')).find((f) => f.startsWith('vmlinuz-'));
  assert.ok(image, `no vmlinuz in ${deb}`);
  return join(root, 'boot', image);
}

/** The guest's /init: the check program and the addon's loader, linked statically (nothing else is in the guest). */
function buildGuest(dir: string): string {
  const gen = join(dir, 'gen');
  execFileSync('sh', [join(REPO, 'native/bpf/skeleton.sh'), join(REPO, 'native/bpf/caller.bpf.c'), gen]);
  const out = join(dir, 'init');
  execFileSync('gcc', [
    '-static',
    '-O2',
    '-Wall',
    '-Werror',
    '-I',
    join(REPO, 'native/src'),
    '-I',
    join(REPO, 'native/bpf'),
    '-I',
    gen,
    join(REPO, 'test/kernel/guest_check.c'),
    join(REPO, 'native/src/caller_bpf.c'),
    '-lbpf',
    '-lelf',
    '-lz',
    '-o',
    out,
  ]);
  return out;
}

/** A gzipped initramfs (the kernel's "newc" cpio format) holding one file, /init. */
function initramfs(init: Buffer): Buffer {
  const entry = (name: string, data: Buffer, mode: number, ino: number): Buffer => {
    const nameBytes = Buffer.from(`${name}\0`);
    const fields = [ino, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, nameBytes.length, 0];
    const header = Buffer.concat([Buffer.from(`070701${fields.map((f) => f.toString(16).padStart(8, '0')).join('')}`), nameBytes]);
    const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
    return Buffer.concat([pad(header), pad(data)]);
  };
  return gzipSync(Buffer.concat([entry('init', init, 0o100755, 1), entry('TRAILER!!!', Buffer.alloc(0), 0, 0)]));
}

/** Boots kernel with the initramfs under software emulation (KVM is not trusted to be usable); the console's text. */
function boot(kernel: string, initrd: string, timeoutMs = 300_000): Promise<string> {
  const qemu = spawn(
    'qemu-system-x86_64',
    ['-accel', 'tcg', '-m', '512', '-nographic', '-no-reboot', '-kernel', kernel, '-initrd', initrd, '-append', 'console=ttyS0 panic=-1 quiet'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let text = '';
  qemu.stdout.setEncoding('utf8').on('data', (c: string) => (text += c));
  qemu.stderr.setEncoding('utf8').on('data', (c: string) => (text += c));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      qemu.kill('SIGKILL');
      reject(new Error(`the guest did not power off within ${timeoutMs} ms:\n${text}`));
    }, timeoutMs);
    qemu.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    qemu.on('exit', () => {
      clearTimeout(timer);
      resolve(text);
    });
  });
}

describe("the in-kernel path on the distribution's own kernel (linux-image-amd64: Debian 12's 6.1), under qemu", () => {
  const dir = tempDir('bastion-kernel-');
  let pkg = '';
  let consoleText = '';
  const results = new Map<string, string>();

  before(async () => {
    pkg = currentKernelPackage();
    const kernel = kernelImage(pkg, dir.path);
    const initrd = join(dir.path, 'initrd.gz');
    writeFileSync(initrd, initramfs(readFileSync(buildGuest(dir.path))));
    consoleText = await boot(kernel, initrd);
    for (const m of consoleText.matchAll(/^CHECK (\S+) (.*)$/gm)) results.set(m[1]!, m[2]!.trim());
  });

  after(() => dir.remove());

  it('boots the kernel of the package and runs every check to the end', () => {
    const version = /^linux-image-(.+)$/.exec(pkg)![1]!;
    // The console has the firmware's escape codes before the guest's first line, and CRLF endings.
    assert.match(consoleText, new RegExp(`KERNEL ${version.replace(/\./g, '\\.')}\r?$`, 'm'), consoleText);
    assert.match(consoleText, /^DONE failures=\d+/m, consoleText);
  });

  for (const name of CHECKS) {
    it(`the guest's check "${name}" passes`, () => {
      const result = results.get(name);
      assert.ok(result !== undefined, `no result for ${name}:\n${consoleText}`);
      assert.match(result, /^ok\b/, `${name}: ${result}\n${consoleText}`);
    });
  }

  it('the guest ran no check this test does not know', () => {
    assert.deepEqual(
      [...results.keys()].filter((k) => !CHECKS.includes(k)),
      [],
    );
  });
});
