// The connect()/sendmsg() caller map (native/src/caller_bpf.h) against real processes: a socket
// held by two processes is reported as the one that connected it (or sent on it), not the other;
// a record stays as long as its socket, whatever else happens; a socket connected before the
// programs were attached has none.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import dgram from 'node:dgram';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { attachCallerMap, cgroup2Mount, detachCallerMap, flowCaller } from '../../helper/identify/callerMap.js';
import { SockDiag } from '../../helper/identify/sockDiag.js';
import type { CallerRecord } from '../../common/types.js';

const LO4 = new Uint8Array([127, 0, 0, 1]);
const CLIENT = new URL('../fixtures/shared-socket-client.py', import.meta.url).pathname;

interface Client {
  child: ChildProcess;
  localPort: number;
  holderPid: number;
}

/** The fixture: its own pid connected (or sent on) a socket its child holds too, then made churn sockets. */
function startClient(kind: 'tcp' | 'udp', port: number, churn = 0): Promise<Client> {
  const child = spawn('python3', [CLIENT, kind, String(port), String(churn)], { stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`client exited (${code})`)));
    createInterface({ input: child.stdout! }).once('line', (line) => {
      const [localPort, holderPid] = line.split(' ').map(Number);
      resolve({ child, localPort: localPort!, holderPid: holderPid! });
    });
  });
}

describe('the caller map', () => {
  const diag = SockDiag.open();
  const clients: ChildProcess[] = [];
  const holders: number[] = [];
  let server: net.Server;
  let udp: dgram.Socket;
  /** Connected before the programs were attached. */
  let older: dgram.Socket;

  before(async () => {
    server = await new Promise((resolve) => {
      const s = net.createServer((c) => c.on('error', () => undefined)).listen(0, '127.0.0.1', () => resolve(s));
    });
    udp = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    older = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => older.connect(udp.address().port, '127.0.0.1', resolve));
  });
  after(() => {
    for (const c of clients) c.kill('SIGKILL');
    for (const pid of holders) process.kill(pid, 'SIGKILL');
    detachCallerMap();
    server.close();
    udp.close();
    older.close();
  });

  it('finds where cgroup v2 is mounted, with escaped mount points', () => {
    const mounts = 'cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\ncgroup2 /sys/fs/cgroup/my\\040tree cgroup2 rw 0 0\n';
    assert.equal(cgroup2Mount(mounts), '/sys/fs/cgroup/my tree');
    assert.equal(cgroup2Mount('proc /proc proc rw 0 0\n'), null);
  });

  it("attaches as root on this kernel, with the callers' executables and the TCP connections' map", () => {
    const state = attachCallerMap();
    assert.equal(state.attached, true, state.attached ? '' : `${state.reason}\n${state.log}`);
    assert.equal(state.attached && state.exe, true, 'the task reads loaded (CAP_PERFMON, BTF)');
    assert.equal(state.attached && state.byFlow, true, 'the sock_ops program loaded and attached');
  });

  async function lookup(kind: 'tcp' | 'udp', churn = 0): Promise<{ caller: CallerRecord | null | undefined; client: Client }> {
    const port = kind === 'tcp' ? (server.address() as net.AddressInfo).port : udp.address().port;
    const client = await startClient(kind, port, churn);
    clients.push(client.child);
    holders.push(client.holderPid);
    const owner = diag!.lookup(4, kind === 'tcp' ? 6 : 17, LO4, client.localPort, LO4, port);
    assert.ok(owner !== null && owner !== 'unavailable', 'sock_diag found the socket');
    return { caller: owner.caller, client };
  }

  it('names the process that connected a TCP socket, not the child that holds it too, with its uid, start time and executable', async () => {
    const { caller, client } = await lookup('tcp');
    assert.equal(caller?.pid, client.child.pid);
    assert.notEqual(caller?.pid, client.holderPid);
    const pid = client.child.pid!;
    const exe = statSync(`/proc/${pid}/exe`);
    const startTime = Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19]);
    assert.deepEqual(caller, { pid, uid: process.getuid!(), process: { startTime, exeDev: exe.dev, exeIno: exe.ino } });
    // The same answer by the connection's ends, without sock_diag; other ends name no one.
    const port = (server.address() as net.AddressInfo).port;
    assert.equal(flowCaller(4, LO4, client.localPort, LO4, port), client.child.pid);
    assert.equal(flowCaller(4, LO4, client.localPort, LO4, port + 1), 0);
    assert.equal(flowCaller(4, LO4, client.localPort + 1, LO4, port), 0);
    assert.equal(flowCaller(6, new Uint8Array(16), client.localPort, new Uint8Array(16), port), 0);
  });

  it('names the process that connected a TCP socket over IPv6 by its ends', async () => {
    const server6 = await new Promise<net.Server>((resolve) => {
      const s = net.createServer((c) => c.on('error', () => undefined)).listen(0, '::1', () => resolve(s));
    });
    try {
      const port = (server6.address() as net.AddressInfo).port;
      const socket = net.connect({ host: '::1', port });
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      const lo6 = new Uint8Array(16);
      lo6[15] = 1;
      assert.equal(flowCaller(6, lo6, socket.localPort!, lo6, port), process.pid);
      socket.destroy();
    } finally {
      server6.close();
    }
  });

  for (const reuse of [
    { over: 'IPv4', host: '127.0.0.1', localAddress: '127.0.0.1' },
    // An IPv6 socket to an IPv4-mapped address sends IPv4 packets: the same ends as IPv4.
    { over: 'IPv6 to an IPv4-mapped address', host: '::ffff:127.0.0.1', localAddress: '::' },
  ]) {
    it(`names a TCP connection that reuses an earlier one's ends (${reuse.over}) by its own caller, not the earlier one's`, async () => {
      const port = (server.address() as net.AddressInfo).port;
      // Another process connects, is named, and closes with a reset (no TIME_WAIT keeps the port).
      const earlier = spawn('python3', [
        '-c',
        [
          'import socket, struct, sys',
          's = socket.socket()',
          `s.connect(("127.0.0.1", ${port}))`,
          'print(s.getsockname()[1], flush=True)',
          'sys.stdin.readline()',
          's.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))',
          's.close()',
        ].join('\n'),
      ]);
      const localPort = Number((await createInterface({ input: earlier.stdout! })[Symbol.asyncIterator]().next()).value);
      assert.equal(flowCaller(4, LO4, localPort, LO4, port), earlier.pid);
      earlier.stdin!.end('\n');
      await new Promise((resolve) => earlier.once('exit', resolve));
      // This process connects from the same port to the same server: the same ends, a new caller.
      const socket = net.connect({ host: reuse.host, port, localAddress: reuse.localAddress, localPort });
      try {
        await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
        assert.equal(flowCaller(4, LO4, localPort, LO4, port), process.pid);
      } finally {
        socket.destroy();
      }
    });
  }

  it('names the process that sent on a shared UDP socket', async () => {
    const { caller, client } = await lookup('udp');
    assert.equal(caller?.pid, client.child.pid);
  });

  it('keeps a record while its socket lives: 70,000 sockets connected and closed after it do not push it out', async () => {
    const { caller, client } = await lookup('udp', 70_000);
    assert.equal(caller?.pid, client.child.pid);
  });

  it('has no record (null: caller unknown) for a socket connected before the programs were attached', () => {
    const owner = diag!.lookup(4, 17, LO4, older.address().port, LO4, udp.address().port);
    assert.ok(owner !== null && owner !== 'unavailable', 'sock_diag found the socket');
    assert.equal(owner.caller, null);
  });

  it('asks no one once detached', async () => {
    detachCallerMap();
    const { caller, client } = await lookup('tcp');
    assert.equal(caller, undefined);
    assert.equal(flowCaller(4, LO4, client.localPort, LO4, (server.address() as net.AddressInfo).port), 0);
  });
});
