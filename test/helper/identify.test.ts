// The identify stage against real processes (run as root) and fake /proc trees.
// Real children connect to servers this file creates; fake trees pin down parsing, ordering,
// pid reuse and the TTL cache without depending on what else runs on the machine.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import type { IpFamily, SocketOwner } from '../../common/types.js';
import { lookupProcNet, procNetAddress } from '../../helper/identify/procNet.js';
import { parseStat } from '../../common/procStat.js';
import { readProcessInfo, readStartTime } from '../../helper/identify/processInfo.js';
import { ProcessResolver } from '../../helper/identify/processResolver.js';
import type { SocketLookup } from '../../helper/identify/processResolver.js';
import { SocketOwnerIndex, type PidRef } from '../../helper/identify/socketOwnerIndex.js';
import { fakeProc, removeFakeProcs, statLine, writeFakeProcess } from '../support/fakeProc.js';

const LOOPBACK4 = new Uint8Array([127, 0, 0, 1]);
const LOOPBACK6 = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
const NODE = process.execPath;
const LITTLE_ENDIAN = os.endianness() === 'LE';

// ---- child processes -------------------------------------------------------------------

/** Exits when its stdin closes, so a child can never outlive this test file. */
const EXIT_WITH_STDIN = `process.stdin.resume(); process.stdin.on('end', () => process.exit(0));`;

/** argv: host port [count] [udp|udp-connected]. Prints {pid, ports} once all are open. */
const CLIENT = `
const [host, port, count = '1', kind = 'tcp'] = process.argv.slice(1);
const ports = [];
const done = (p) => { ports.push(p); if (ports.length === Number(count)) console.log(JSON.stringify({ pid: process.pid, ports })); };
for (let i = 0; i < Number(count); i++) {
  if (kind === 'tcp') {
    const s = require('net').connect(Number(port), host, () => done(s.localPort));
    s.on('error', () => {});
  } else {
    const s = require('dgram').createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const send = () => s.send('hi', (err) => { if (!err) done(s.address().port); });
    if (kind === 'udp-connected') s.connect(Number(port), host, send); else s.send('hi', Number(port), host, () => done(s.address().port));
  }
}
${EXIT_WITH_STDIN}`;

/** Starts CLIENT in a grandchild, so the connection belongs to a child of a child. */
const FORKING_CLIENT = `
const g = require('child_process').spawn(process.execPath, ['-e', ${JSON.stringify(CLIENT)}, ...process.argv.slice(1)], { stdio: ['pipe', 'inherit', 'inherit'] });
${EXIT_WITH_STDIN}`;

/** Connects, then on any stdin line hands the socket to a new process and closes its own fd. */
const HANDING_OFF_CLIENT = `
const { spawn } = require('child_process');
const s = require('net').connect(Number(process.argv[2]), process.argv[1], () => console.log(JSON.stringify({ pid: process.pid, ports: [s.localPort] })));
s.on('error', () => {});
process.stdin.on('data', () => {
  const g = spawn(process.execPath, ['-e', ${JSON.stringify(EXIT_WITH_STDIN)}], { stdio: ['pipe', 'ignore', 'ignore', s] });
  g.on('spawn', () => { s.destroy(); console.log(JSON.stringify({ pid: g.pid, ports: [] })); });
});
process.stdin.on('end', () => process.exit(0));`;

interface Report {
  pid: number;
  ports: number[];
}

interface Client {
  child: ChildProcess;
  next(): Promise<Report>;
}

const children = new Set<ChildProcess>();
const reportedPids = new Set<number>();
const tempDirs: string[] = [];

function startClient(script: string, args: Array<string | number>, execPath = NODE): Client {
  const child = spawn(execPath, ['-e', script, ...args.map(String)], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(child);
  const pending: Report[] = [];
  const waiting: Array<(r: Report) => void> = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    const report = JSON.parse(line) as Report;
    reportedPids.add(report.pid);
    const resolve = waiting.shift();
    if (resolve === undefined) pending.push(report);
    else resolve(report);
  });
  return {
    child,
    next: () => {
      const ready = pending.shift();
      if (ready !== undefined) return Promise.resolve(ready);
      return new Promise((resolve, reject) => {
        waiting.push(resolve);
        child.once('exit', (code) => reject(new Error(`client exited (${String(code)}) before reporting`)));
      });
    },
  };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited; // reaped: no zombie left holding the pid
}

function tempDir(name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), name));
  tempDirs.push(dir);
  return dir;
}

/** The node binary under another name: a hard link (cheap), else a copy (~100 MB). */
function nodeAt(file: string): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  try {
    fs.linkSync(NODE, file);
  } catch {
    fs.copyFileSync(NODE, file);
    fs.chmodSync(file, 0o755);
  }
  return file;
}

// ---- servers ---------------------------------------------------------------------------

let tcp4: net.Server;
let tcp6: net.Server;
let udp4: dgram.Socket;
const accepted = new Set<net.Socket>();

function port(server: net.Server | dgram.Socket): number {
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return address.port;
}

before(async () => {
  const listen = async (host: string): Promise<net.Server> => {
    const server = net.createServer((socket) => {
      accepted.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => accepted.delete(socket));
    });
    server.listen(0, host);
    await once(server, 'listening');
    return server;
  };
  tcp4 = await listen('127.0.0.1');
  tcp6 = await listen('::1');
  udp4 = dgram.createSocket('udp4');
  udp4.bind(0, '127.0.0.1');
  await once(udp4, 'listening');
});

after(async () => {
  await Promise.all([...children].map(stop));
  // Grandchildren exit with their parent's pipe; make sure of it anyway.
  for (const pid of reportedPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const socket of accepted) socket.destroy();
  tcp4.close();
  tcp6.close();
  udp4.close();
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  removeFakeProcs();
});

// ---- lookups ---------------------------------------------------------------------------

/** The sock_diag stand-in: same contract, answered from /proc/net. */
const procNetLookup: SocketLookup = (family, protocol, src, srcPort, dst, dstPort) => lookupProcNet(family, protocol, src, srcPort, dst, dstPort);

function tcpOwner(clientPort: number, family: IpFamily = 4): SocketOwner {
  const [addr, server] = family === 4 ? [LOOPBACK4, tcp4] : [LOOPBACK6, tcp6];
  const owner = lookupProcNet(family, 6, addr, clientPort, addr, port(server));
  assert.ok(owner !== null, `no /proc/net entry for client port ${clientPort}`);
  return owner;
}

function firstPort(report: Report): number {
  const first = report.ports[0];
  assert.ok(first !== undefined);
  return first;
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** What findPid() answered, without the stat fields it read on the way. */
function holder(ref: PidRef | null): { pid: number; startTime: number } | null {
  return ref === null ? null : { pid: ref.pid, startTime: ref.startTime };
}

// ---- fake /proc trees ------------------------------------------------------------------

// ---- tests -----------------------------------------------------------------------------

describe('readProcessInfo', () => {
  it('takes comm up to the last ")" so a name like "a) (b" keeps ppid and start time', () => {
    assert.deepEqual(parseStat(statLine({ pid: 7, comm: 'a) (b', ppid: 3, startTime: 987654 })), {
      comm: 'a) (b',
      ppid: 3,
      startTime: 987654,
    });
  });

  it('rejects a stat line without a parenthesised comm', () => {
    assert.equal(parseStat('7 fake S 1'), null);
  });

  it('reads uid, argv, parent and a deleted exe from a /proc tree', () => {
    const root = fakeProc([
      { pid: 4242, startTime: 500, ppid: 1, comm: 'x) (y', uid: 1000, exe: '/opt/my tool/bin (deleted)', cmdline: ['tool', 'an arg', ''] },
    ]);
    assert.deepEqual(readProcessInfo(4242, root), {
      pid: 4242,
      uid: 1000,
      exe: '/opt/my tool/bin',
      exeDeleted: true,
      comm: 'x) (y',
      cmdline: ['tool', 'an arg', ''],
      ppid: 1,
      parentExe: '/sbin/init',
      startTime: 500,
      // No ns links in a fake /proc: nothing is proven.
      identity: 'unverified',
      otherMountNs: false,
    });
  });

  it('reports an empty parent exe when the parent cannot be read', () => {
    const root = fakeProc([{ pid: 4242, startTime: 500, ppid: 77 }]);
    assert.equal(readProcessInfo(4242, root)?.parentExe, '');
  });

  it('describes a live child: exe, comm, argv, uid and parent', async () => {
    const client = startClient(CLIENT, ['127.0.0.1', port(tcp4)]);
    const { pid } = await client.next();
    const info = readProcessInfo(pid);
    assert.ok(info !== null);
    assert.equal(info.exe, NODE);
    assert.equal(info.exeDeleted, false);
    assert.equal(info.comm, 'node');
    assert.deepEqual(info.cmdline.slice(0, 2), [NODE, '-e']);
    assert.equal(info.cmdline.at(-1), String(port(tcp4)));
    assert.equal(info.uid, 0);
    assert.equal(info.ppid, process.pid);
    assert.equal(info.parentExe, NODE);
    assert.equal(info.startTime, readStartTime(pid));
    assert.deepEqual([info.identity, info.otherMountNs], ['host', false]);
  });

  it('does not believe a path once another file has been put there while the program runs', async () => {
    const exe = nodeAt(path.join(tempDir('bastion-replaced-'), 'node'));
    const client = startClient(CLIENT, ['127.0.0.1', port(tcp4)], exe);
    const { pid } = await client.next();
    fs.copyFileSync(exe, `${exe}.new`);
    fs.renameSync(`${exe}.new`, exe); // same path, same content, another inode
    assert.equal(readProcessInfo(pid)?.identity, 'exe_mismatch');
  });

  it('does not believe the path of a program in a user namespace of its own, though it is the same file', async () => {
    const child = spawn('unshare', ['-Ur', 'sleep', '30'], { stdio: 'ignore' });
    try {
      let info = null;
      // unshare execs sleep under the same pid: wait until it has.
      for (let i = 0; i < 100 && info?.exe !== '/usr/bin/sleep'; i++) {
        await new Promise((r) => setTimeout(r, 20));
        info = readProcessInfo(child.pid!);
      }
      assert.equal(info?.exe, '/usr/bin/sleep');
      assert.equal(info.identity, 'other_user_ns');
    } finally {
      await stop(child);
    }
  });

  it('keeps an executable path with spaces whole', async () => {
    const exe = nodeAt(path.join(tempDir('bastion-space-'), 'my client', 'node client'));
    const client = startClient(CLIENT, ['127.0.0.1', port(tcp4)], exe);
    const { pid } = await client.next();
    const info = readProcessInfo(pid);
    assert.equal(info?.exe, exe);
    assert.equal(info.cmdline[0], exe);
  });

  it('strips " (deleted)" and sets exeDeleted once the running binary is unlinked', async () => {
    const exe = nodeAt(path.join(tempDir('bastion-deleted-'), 'gone node'));
    const client = startClient(CLIENT, ['127.0.0.1', port(tcp4)], exe);
    const { pid } = await client.next();
    fs.unlinkSync(exe);
    const info = readProcessInfo(pid);
    assert.equal(info?.exe, exe);
    assert.equal(info.exeDeleted, true);
    assert.equal(info.identity, 'exe_mismatch');
  });

  it('returns null for a process that has exited', async () => {
    const client = startClient(CLIENT, ['127.0.0.1', port(tcp4)]);
    const { pid } = await client.next();
    await stop(client.child);
    assert.equal(readProcessInfo(pid), null);
    assert.equal(readStartTime(pid), null);
  });
});

describe('lookupProcNet', () => {
  const tcpHeader = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
  const tail = '1 0000000000000000 100 0 0 10 0\n';

  it('prints addresses as the kernel does: host-order 32-bit words', { skip: !LITTLE_ENDIAN }, () => {
    assert.equal(procNetAddress(LOOPBACK4), '0100007F');
    assert.equal(procNetAddress(LOOPBACK6), '00000000000000000000000001000000');
  });

  it('prefers the live socket over a TIME_WAIT entry with the same 4-tuple', { skip: !LITTLE_ENDIAN }, () => {
    const root = tempDir('bastion-procnet-');
    fs.mkdirSync(path.join(root, 'net'));
    fs.writeFileSync(
      path.join(root, 'net', 'tcp'),
      tcpHeader +
        `   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 11111 ${tail}` +
        `   1: 0100007F:A1B2 0100007F:1F90 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000\n` +
        `   2: 0100007F:A1B2 0100007F:1F90 02 00000000:00000000 01:00000064 00000002  1000        0 22222 ${tail}`,
    );
    assert.deepEqual(lookupProcNet(4, 6, LOOPBACK4, 0xa1b2, LOOPBACK4, 0x1f90, root), { inode: 22222, uid: 1000 });
    assert.equal(lookupProcNet(4, 6, LOOPBACK4, 0xa1b3, LOOPBACK4, 0x1f90, root), null);
  });

  it('matches UDP connected first, then bound to the address, then bound to the wildcard', { skip: !LITTLE_ENDIAN }, () => {
    const root = tempDir('bastion-procnet-');
    fs.mkdirSync(path.join(root, 'net'));
    const wildcard = '00000000:3039 00000000:0000 07';
    const bound = '0100007F:3039 00000000:0000 07';
    const connected = '0100007F:3039 0100007F:0035 01';
    const lookup = (): number | undefined => lookupProcNet(4, 17, LOOPBACK4, 0x3039, LOOPBACK4, 53, root)?.inode;
    const rows = (entries: Array<[string, number]>): void =>
      fs.writeFileSync(
        path.join(root, 'net', 'udp'),
        tcpHeader + entries.map(([row, inode], i) => `   ${i}: ${row} 00000000:00000000 00:00000000 00000000  1000        0 ${inode} ${tail}`).join(''),
      );
    rows([
      [wildcard, 1],
      [bound, 2],
      [connected, 3],
    ]);
    assert.equal(lookup(), 3);
    rows([
      [wildcard, 1],
      [bound, 2],
    ]);
    assert.equal(lookup(), 2);
    rows([[wildcard, 1]]);
    assert.equal(lookup(), 1);
    rows([['00000000:303A 00000000:0000 07', 1]]);
    assert.equal(lookup(), undefined);
  });

  it('finds a real TCP socket over IPv4 and IPv6 with its uid', async () => {
    const v4 = await startClient(CLIENT, ['127.0.0.1', port(tcp4)]).next();
    const v6 = await startClient(CLIENT, ['::1', port(tcp6)]).next();
    for (const [family, report] of [
      [4, v4],
      [6, v6],
    ] as const) {
      const owner = tcpOwner(firstPort(report), family);
      assert.ok(owner.inode > 0);
      assert.equal(owner.uid, 0);
    }
  });

  it('finds an IPv4 connection made from a dual-stack IPv6 socket', async () => {
    const report = await startClient(CLIENT, ['::ffff:127.0.0.1', port(tcp4)]).next();
    assert.ok(tcpOwner(firstPort(report)).inode > 0);
  });

  it('finds an unconnected UDP socket by its local port', async () => {
    const report = await startClient(CLIENT, ['127.0.0.1', port(udp4), 1, 'udp']).next();
    const owner = lookupProcNet(4, 17, LOOPBACK4, firstPort(report), LOOPBACK4, port(udp4));
    assert.ok(owner !== null && owner.inode > 0);
  });
});

describe('SocketOwnerIndex', () => {
  it('credits a TCP connection to the child that opened it', async () => {
    const report = await startClient(CLIENT, ['127.0.0.1', port(tcp4)]).next();
    const owner = tcpOwner(firstPort(report));
    const index = new SocketOwnerIndex();
    assert.deepEqual(holder(index.findPid(owner.inode, owner.uid)), { pid: report.pid, startTime: readStartTime(report.pid) });
    assert.equal(index.counters.misses, 1);
  });

  it('answers a known socket again from one readlink, without scanning', async () => {
    const report = await startClient(CLIENT, ['127.0.0.1', port(tcp4)]).next();
    const owner = tcpOwner(firstPort(report));
    const index = new SocketOwnerIndex();
    index.findPid(owner.inode, owner.uid);
    const { scans, fdReads } = index.counters;
    assert.equal(index.findPid(owner.inode, owner.uid)?.pid, report.pid);
    assert.deepEqual([index.counters.scans, index.counters.fdReads, index.counters.hits, index.counters.misses], [scans, fdReads + 1, 1, 1]);
  });

  it('credits a connection made by a grandchild to the grandchild', async () => {
    const client = startClient(FORKING_CLIENT, ['127.0.0.1', port(tcp4)]);
    const report = await client.next();
    assert.notEqual(report.pid, client.child.pid);
    const owner = tcpOwner(firstPort(report));
    assert.equal(new SocketOwnerIndex().findPid(owner.inode, owner.uid)?.pid, report.pid);
    assert.equal(readProcessInfo(report.pid)?.ppid, client.child.pid);
  });

  it('follows a socket handed to another process instead of crediting its old holder', async () => {
    const client = startClient(HANDING_OFF_CLIENT, ['127.0.0.1', port(tcp4)]);
    const report = await client.next();
    const owner = tcpOwner(firstPort(report));
    const index = new SocketOwnerIndex();
    assert.equal(index.findPid(owner.inode, owner.uid)?.pid, report.pid);
    client.child.stdin?.write('hand off\n');
    const receiver = await client.next();
    assert.equal(index.findPid(owner.inode, owner.uid)?.pid, receiver.pid);
    assert.equal(index.counters.hits, 0);
  });

  it('returns null once the holder has exited', async () => {
    const client = startClient(CLIENT, ['127.0.0.1', port(tcp4)]);
    const report = await client.next();
    const owner = tcpOwner(firstPort(report));
    const index = new SocketOwnerIndex();
    assert.equal(index.findPid(owner.inode, owner.uid)?.pid, report.pid);
    await stop(client.child);
    assert.equal(index.findPid(owner.inode, owner.uid), null);
  });

  it('forgets processes whose /proc entry has gone', () => {
    const root = fakeProc([
      { pid: 100, startTime: 10, sockets: { 3: 501 } },
      { pid: 200, startTime: 20, sockets: { 3: 502 } },
    ]);
    const index = new SocketOwnerIndex({ procRoot: root });
    assert.equal(index.findPid(999, null), null);
    assert.equal(index.trackedPids, 3);
    fs.rmSync(path.join(root, '200'), { recursive: true });
    assert.equal(index.findPid(502, null), null);
    assert.equal(index.trackedPids, 2);
  });

  it('scans the newest pids first and stops at the holder', () => {
    const root = fakeProc([
      { pid: 100, startTime: 10, sockets: { 3: 501 } },
      { pid: 200, startTime: 20, sockets: { 3: 502 } },
      { pid: 300, startTime: 30, sockets: { 3: 503 } },
    ]);
    const index = new SocketOwnerIndex({ procRoot: root });
    assert.deepEqual(holder(index.findPid(503, null)), { pid: 300, startTime: 30 });
    assert.equal(index.counters.scans, 1);
  });

  it("scans the socket uid's processes before newer ones of other users", () => {
    const root = fakeProc([
      { pid: 100, startTime: 10, uid: 1000 },
      { pid: 200, startTime: 20, uid: 1000, sockets: { 4: 502 } },
      { pid: 300, startTime: 30, uid: 0 },
    ]);
    const hinted = new SocketOwnerIndex({ procRoot: root });
    assert.equal(hinted.findPid(502, 1000)?.pid, 200);
    assert.equal(hinted.counters.scans, 1);
    const unhinted = new SocketOwnerIndex({ procRoot: root });
    assert.equal(unhinted.findPid(502, null)?.pid, 200);
    assert.equal(unhinted.counters.scans, 2);
  });

  it('finds a new socket in an already known process by rescanning it', () => {
    const root = fakeProc([{ pid: 100, startTime: 10, sockets: { 3: 501 } }]);
    const index = new SocketOwnerIndex({ procRoot: root });
    assert.equal(index.findPid(501, null)?.pid, 100);
    fs.symlinkSync('socket:[777]', path.join(root, '100', 'fd', '9'));
    assert.deepEqual(holder(index.findPid(777, null)), { pid: 100, startTime: 10 });
  });

  it('rescans the process that owned the last socket found before newer processes', () => {
    const root = fakeProc([
      { pid: 100, startTime: 10, sockets: { 3: 501 } },
      { pid: 200, startTime: 20 },
      { pid: 300, startTime: 30 },
    ]);
    const index = new SocketOwnerIndex({ procRoot: root });
    index.warm();
    assert.equal(index.findPid(501, null)?.pid, 100);
    fs.symlinkSync('socket:[777]', path.join(root, '100', 'fd', '4'));
    const { scans } = index.counters;
    assert.equal(index.findPid(777, null)?.pid, 100);
    assert.equal(index.counters.scans, scans + 1);
  });

  it("finds a recent owner's new socket on its lowest free fd number with one readlink, listing nothing", () => {
    const sockets: Record<number, number> = { 3: 501 };
    for (let fd = 4; fd < 40; fd++) sockets[fd] = 1000 + fd;
    const root = fakeProc([{ pid: 100, startTime: 10, sockets, stdio: 3 }]);
    fs.writeFileSync(path.join(root, 'loadavg'), '0.00 0.00 0.00 1/80 100\n');
    const index = new SocketOwnerIndex({ procRoot: root });
    index.warm();
    assert.equal(index.findPid(501, null)?.pid, 100);
    fs.symlinkSync('socket:[777]', path.join(root, '100', 'fd', '40'));
    const { fdReads, scans, listings } = index.counters;
    assert.equal(index.findPid(777, null)?.pid, 100);
    assert.deepEqual([index.counters.fdReads, index.counters.scans, index.counters.listings], [fdReads + 1, scans, listings]);
    assert.equal(index.counters.guessed, 1);
  });

  it("reads only the fds it has not read before when a known process's new socket is not where expected", () => {
    const sockets: Record<number, number> = { 3: 501 };
    for (let fd = 4; fd < 40; fd++) sockets[fd] = 1000 + fd;
    const root = fakeProc([{ pid: 100, startTime: 10, sockets }]);
    const index = new SocketOwnerIndex({ procRoot: root });
    index.warm();
    assert.equal(index.findPid(501, null)?.pid, 100);
    fs.symlinkSync('socket:[777]', path.join(root, '100', 'fd', '40')); // fds 1 and 2 are free: no guess finds it
    const { fdReads } = index.counters;
    assert.equal(index.findPid(777, null)?.pid, 100);
    assert.ok(index.counters.fdReads - fdReads <= 4, `read ${index.counters.fdReads - fdReads} fds`);
  });

  it('finds a socket that took the fd number of a closed one', () => {
    const root = fakeProc([{ pid: 100, startTime: 10, sockets: { 3: 501, 4: 502 } }]);
    const index = new SocketOwnerIndex({ procRoot: root });
    assert.equal(index.findPid(501, null)?.pid, 100);
    fs.rmSync(path.join(root, '100', 'fd', '3'));
    fs.symlinkSync('socket:[503]', path.join(root, '100', 'fd', '3'));
    assert.equal(index.findPid(501, null), null);
    assert.equal(index.findPid(503, null)?.pid, 100);
  });

  it('answers every socket of a warmed-up process without a scan', () => {
    const root = fakeProc([
      { pid: 100, startTime: 10, sockets: { 3: 501 } },
      { pid: 200, startTime: 20, sockets: { 3: 502, 4: 503 } },
    ]);
    const index = new SocketOwnerIndex({ procRoot: root });
    assert.equal(index.warm(), 3);
    const { scans } = index.counters;
    assert.deepEqual(
      [501, 502, 503].map((inode) => index.findPid(inode, null)?.pid),
      [100, 200, 200],
    );
    assert.deepEqual([index.counters.scans, index.counters.hits], [scans, 3]);
  });

  it('lists /proc again only once the kernel has handed out a new pid', () => {
    const root = fakeProc([{ pid: 100, startTime: 10 }]);
    fs.writeFileSync(path.join(root, 'loadavg'), '0.00 0.00 0.00 1/80 100\n');
    const index = new SocketOwnerIndex({ procRoot: root });
    assert.equal(index.findPid(601, null), null);
    writeFakeProcess(root, { pid: 101, startTime: 11, sockets: { 3: 601 } });
    assert.equal(index.findPid(601, null), null, 'no new pid according to loadavg: /proc not listed');
    fs.writeFileSync(path.join(root, 'loadavg'), '0.00 0.00 0.00 1/80 101\n');
    assert.equal(index.findPid(601, null)?.pid, 101);
  });

  it('scans a reused pid as a new process even when no new pid was handed out since', () => {
    const root = fakeProc([{ pid: 100, startTime: 10, sockets: { 3: 501 } }]);
    fs.writeFileSync(path.join(root, 'loadavg'), '0.00 0.00 0.00 1/80 100\n');
    const index = new SocketOwnerIndex({ procRoot: root });
    assert.deepEqual(holder(index.findPid(501, null)), { pid: 100, startTime: 10 });
    writeFakeProcess(root, { pid: 100, startTime: 99, sockets: { 3: 501 } }); // inherited, say
    assert.deepEqual(holder(index.findPid(501, null)), { pid: 100, startTime: 99 });
  });

  it('does not credit a reused pid with the old process or its start time', () => {
    const root = fakeProc([{ pid: 100, startTime: 10, sockets: { 3: 501 } }]);
    const index = new SocketOwnerIndex({ procRoot: root });
    assert.deepEqual(holder(index.findPid(501, null)), { pid: 100, startTime: 10 });
    writeFakeProcess(root, { pid: 100, startTime: 99, sockets: { 3: 888 } }); // died; pid reused
    assert.equal(index.findPid(501, null), null);
    assert.deepEqual(holder(index.findPid(888, null)), { pid: 100, startTime: 99 });
  });

  it('stops searching after maxScansPerMiss pids', () => {
    const root = fakeProc([
      { pid: 100, startTime: 10, sockets: { 3: 501 } },
      { pid: 200, startTime: 20 },
      { pid: 300, startTime: 30 },
    ]);
    const index = new SocketOwnerIndex({ procRoot: root, maxScansPerMiss: 2 });
    assert.equal(index.findPid(501, null), null);
    assert.equal(index.counters.scans, 2);
  });

  it('does not throw when a listed process disappears mid-search', () => {
    const root = fakeProc([{ pid: 100, startTime: 10 }]);
    fs.mkdirSync(path.join(root, '555')); // listed, but no stat and no fd: exiting
    const index = new SocketOwnerIndex({ procRoot: root });
    assert.equal(index.findPid(501, null), null);
    assert.equal(index.trackedPids, 2); // 100 and the fake init; 555 forgotten
  });
});

describe('ProcessResolver', () => {
  const fixedClock = (): { now: () => number; advance: (ms: number) => void } => {
    let t = 1_000_000;
    return { now: () => t, advance: (ms) => (t += ms) };
  };

  it('credits a TCP connection to the child and its executable', async () => {
    const report = await startClient(CLIENT, ['127.0.0.1', port(tcp4)]).next();
    const resolver = new ProcessResolver({ lookupSocket: procNetLookup });
    const result = resolver.resolve(4, 6, LOOPBACK4, firstPort(report), LOOPBACK4, port(tcp4));
    assert.equal(result.attribution, 'sock_diag');
    assert.equal(result.process?.pid, report.pid);
    assert.equal(result.process.exe, NODE);
    assert.equal(result.socketInode, tcpOwner(firstPort(report)).inode);
    assert.equal(result.socketUid, 0);
    assert.ok(result.lookupMicros > 0);
  });

  it('credits UDP datagrams, connected or not, to the sending child', async () => {
    for (const kind of ['udp', 'udp-connected']) {
      const report = await startClient(CLIENT, ['127.0.0.1', port(udp4), 1, kind]).next();
      const resolver = new ProcessResolver({ lookupSocket: procNetLookup });
      const result = resolver.resolve(4, 17, LOOPBACK4, firstPort(report), LOOPBACK4, port(udp4));
      assert.equal(result.process?.pid, report.pid, kind);
    }
  });

  it('credits an IPv6 connection', async () => {
    const report = await startClient(CLIENT, ['::1', port(tcp6)]).next();
    const resolver = new ProcessResolver({ lookupSocket: procNetLookup });
    assert.equal(resolver.resolve(6, 6, LOOPBACK6, firstPort(report), LOOPBACK6, port(tcp6)).process?.pid, report.pid);
  });

  it("falls back to /proc/net and says so when sock_diag is 'unavailable'", async () => {
    const report = await startClient(CLIENT, ['127.0.0.1', port(tcp4)]).next();
    const resolver = new ProcessResolver({ lookupSocket: () => 'unavailable' });
    const result = resolver.resolve(4, 6, LOOPBACK4, firstPort(report), LOOPBACK4, port(tcp4));
    assert.equal(result.attribution, 'proc_net');
    assert.equal(result.process?.pid, report.pid);
  });

  it('reports the exe of a binary under a path with spaces whole, and a deleted one without suffix', async () => {
    const dir = tempDir('bastion-resolver-');
    const spaced = nodeAt(path.join(dir, 'my client', 'node'));
    const deleted = nodeAt(path.join(dir, 'deleted client', 'node'));
    const a = await startClient(CLIENT, ['127.0.0.1', port(tcp4)], spaced).next();
    const b = await startClient(CLIENT, ['127.0.0.1', port(tcp4)], deleted).next();
    fs.unlinkSync(deleted);
    const resolver = new ProcessResolver({ lookupSocket: procNetLookup });
    const ra = resolver.resolve(4, 6, LOOPBACK4, firstPort(a), LOOPBACK4, port(tcp4)).process;
    const rb = resolver.resolve(4, 6, LOOPBACK4, firstPort(b), LOOPBACK4, port(tcp4)).process;
    assert.deepEqual([ra?.exe, ra?.exeDeleted], [spaced, false]);
    assert.deepEqual([rb?.exe, rb?.exeDeleted], [deleted, true]);
  });

  it("reports 'process_gone' for a socket whose process has exited, crediting no one", async () => {
    const client = startClient(CLIENT, ['127.0.0.1', port(tcp4)]);
    const report = await client.next();
    const owner = tcpOwner(firstPort(report));
    const resolver = new ProcessResolver({ lookupSocket: () => owner }); // the lookup raced the exit
    assert.equal(resolver.resolve(4, 6, LOOPBACK4, 1, LOOPBACK4, 2).process?.pid, report.pid);
    await stop(client.child);
    const result = resolver.resolve(4, 6, LOOPBACK4, 1, LOOPBACK4, 2);
    assert.deepEqual([result.attribution, result.process, result.socketInode], ['process_gone', null, owner.inode]);
  });

  it("reports 'no_socket' for a TIME_WAIT socket (inode 0)", async () => {
    const client = startClient(CLIENT, ['127.0.0.1', port(tcp4)]);
    const report = await client.next();
    const clientPort = firstPort(report);
    await stop(client.child); // the client closes first, so its side lingers in TIME_WAIT
    await until(() => lookupProcNet(4, 6, LOOPBACK4, clientPort, LOOPBACK4, port(tcp4))?.inode === 0, 'TIME_WAIT');
    const resolver = new ProcessResolver({ lookupSocket: procNetLookup });
    const result = resolver.resolve(4, 6, LOOPBACK4, clientPort, LOOPBACK4, port(tcp4));
    assert.deepEqual([result.attribution, result.process, result.socketInode], ['no_socket', null, 0]);
  });

  it("reports 'not_found' when no socket matches and 'unsupported' for protocols without sockets", () => {
    const resolver = new ProcessResolver({ lookupSocket: () => null });
    assert.equal(resolver.resolve(4, 6, LOOPBACK4, 1, LOOPBACK4, 2).attribution, 'not_found');
    assert.equal(resolver.resolve(4, 1, LOOPBACK4, 0, LOOPBACK4, 0).attribution, 'unsupported');
  });

  it('reads a process once for a burst of its connections, and rescans nothing', async () => {
    const report = await startClient(CLIENT, ['127.0.0.1', port(tcp4), 5]).next();
    const resolver = new ProcessResolver({ lookupSocket: procNetLookup });
    const results = report.ports.map((p) => resolver.resolve(4, 6, LOOPBACK4, p, LOOPBACK4, port(tcp4)));
    const first = results[0]?.process;
    assert.equal(first?.pid, report.pid);
    for (const r of results) assert.equal(r.process, first); // the same cached object
    assert.equal(resolver.index.counters.misses, 1);
    assert.equal(resolver.index.counters.hits, 4);
  });

  it('answers the same socket within the TTL from the cache, and looks again after it', () => {
    const root = fakeProc([{ pid: 100, startTime: 10, uid: 1000, sockets: { 3: 501 } }]);
    const clock = fixedClock();
    const resolver = new ProcessResolver({ lookupSocket: () => ({ inode: 501, uid: 1000 }), procRoot: root, now: clock.now });
    const resolve = (): string => resolver.resolve(4, 6, LOOPBACK4, 1, LOOPBACK4, 2).attribution;
    assert.equal(resolve(), 'sock_diag');
    clock.advance(1999);
    assert.equal(resolve(), 'cache');
    clock.advance(2001);
    assert.equal(resolve(), 'sock_diag');
  });

  it('does not serve a cached process after its pid is reused or it execs another binary', () => {
    const root = fakeProc([{ pid: 100, startTime: 10, exe: '/usr/bin/first', sockets: { 3: 501 } }]);
    const clock = fixedClock();
    const resolver = new ProcessResolver({ lookupSocket: () => ({ inode: 501, uid: 0 }), procRoot: root, now: clock.now });
    const resolve = (): [string, string | undefined, number | undefined] => {
      const r = resolver.resolve(4, 6, LOOPBACK4, 1, LOOPBACK4, 2);
      return [r.attribution, r.process?.exe, r.process?.startTime];
    };
    assert.deepEqual(resolve(), ['sock_diag', '/usr/bin/first', 10]);
    fs.rmSync(path.join(root, '100', 'exe'));
    fs.symlinkSync('/usr/bin/second', path.join(root, '100', 'exe')); // execve: same pid and start time
    assert.deepEqual(resolve(), ['sock_diag', '/usr/bin/second', 10]);
    writeFakeProcess(root, { pid: 100, startTime: 77, exe: '/usr/bin/third', sockets: { 3: 501 } });
    assert.deepEqual(resolve(), ['sock_diag', '/usr/bin/third', 77]);
  });
});
