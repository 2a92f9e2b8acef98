// Fake /proc trees for the identify tests: pin down parsing, search order, pid reuse and
// caches without depending on what else runs on the machine. Each process has fds 0..stdio-1
// on /dev/null plus the sockets given; a tree has its own init (pid 1).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface FakeProcess {
  pid: number;
  startTime: number;
  ppid?: number;
  comm?: string;
  uid?: number;
  exe?: string;
  cmdline?: string[];
  /** fd number -> socket inode */
  sockets?: Record<number, number>;
  /** fds 0..stdio-1 point at /dev/null; default 1 (fd 0 only). */
  stdio?: number;
  /** ns/user and ns/mnt name the test's own namespaces (then a real exe's path is proven: identity 'host'). */
  hostNamespaces?: boolean;
}

export function statLine(p: FakeProcess): string {
  // Fields 5..21 and 23..52 do not matter here; field 22 is the start time.
  return `${p.pid} (${p.comm ?? 'fake'}) S ${p.ppid ?? 1}${' 0'.repeat(17)} ${p.startTime}${' 0'.repeat(30)}\n`;
}

export function writeFakeProcess(root: string, p: FakeProcess): void {
  const dir = path.join(root, String(p.pid));
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, 'fd'), { recursive: true });
  const uid = p.uid ?? 0;
  fs.writeFileSync(path.join(dir, 'stat'), statLine(p));
  fs.writeFileSync(path.join(dir, 'status'), `Name:\t${p.comm ?? 'fake'}\nUmask:\t0022\nUid:\t${uid}\t${uid}\t${uid}\t${uid}\nGid:\t0\t0\t0\t0\n`);
  fs.writeFileSync(path.join(dir, 'cmdline'), (p.cmdline ?? ['fake']).map((arg) => `${arg}\0`).join(''));
  fs.symlinkSync(p.exe ?? '/usr/bin/fake', path.join(dir, 'exe'));
  for (let fd = 0; fd < (p.stdio ?? 1); fd++) fs.symlinkSync('/dev/null', path.join(dir, 'fd', String(fd)));
  for (const [fd, inode] of Object.entries(p.sockets ?? {})) addSocket(root, p.pid, Number(fd), inode);
  if (p.hostNamespaces === true) {
    fs.mkdirSync(path.join(dir, 'ns'));
    for (const ns of ['user', 'mnt']) fs.symlinkSync(fs.readlinkSync(`/proc/self/ns/${ns}`), path.join(dir, 'ns', ns));
  }
  fs.chownSync(dir, uid, 0);
}

/** fd of pid now holds socket inode (replacing whatever it held). */
export function addSocket(root: string, pid: number, fd: number, inode: number): void {
  const link = path.join(root, String(pid), 'fd', String(fd));
  fs.rmSync(link, { force: true });
  fs.symlinkSync(`socket:[${inode}]`, link);
}

export function closeFd(root: string, pid: number, fd: number): void {
  fs.rmSync(path.join(root, String(pid), 'fd', String(fd)));
}

/** A fake /proc in a new temporary directory; remove it with removeFakeProcs(). */
export function fakeProc(processes: FakeProcess[]): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-fakeproc-'));
  roots.push(root);
  writeFakeProcess(root, { pid: 1, startTime: 1, ppid: 0, comm: 'init', exe: '/sbin/init' });
  for (const p of processes) writeFakeProcess(root, p);
  return root;
}

const roots: string[] = [];

export function removeFakeProcs(): void {
  for (const root of roots.splice(0)) fs.rmSync(root, { recursive: true, force: true });
}
