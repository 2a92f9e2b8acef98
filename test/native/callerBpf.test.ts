// The connect()/sendmsg() caller map (native/src/caller_bpf.h) against real processes: a socket
// held by two processes is reported as the one that connected it (or sent on it), not the other.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { attachCallerMap, cgroup2Mount, detachCallerMap, flowCaller } from '../../helper/identify/callerMap.js';
import { SockDiag } from '../../helper/identify/sockDiag.js';

const LO4 = new Uint8Array([127, 0, 0, 1]);
const CLIENT = new URL('../fixtures/shared-socket-client.py', import.meta.url).pathname;

interface Client {
  child: ChildProcess;
  localPort: number;
  holderPid: number;
}

/** The fixture: its own pid connected (or sent on) a socket its child holds too. */
function startClient(kind: 'tcp' | 'udp', port: number): Promise<Client> {
  const child = spawn('python3', [CLIENT, kind, String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
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

  before(async () => {
    server = await new Promise((resolve) => {
      const s = net.createServer((c) => c.on('error', () => undefined)).listen(0, '127.0.0.1', () => resolve(s));
    });
    udp = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
  });
  after(() => {
    for (const c of clients) c.kill('SIGKILL');
    for (const pid of holders) process.kill(pid, 'SIGKILL');
    detachCallerMap();
    server.close();
    udp.close();
  });

  it('finds where cgroup v2 is mounted, with escaped mount points', () => {
    const mounts = 'cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\ncgroup2 /sys/fs/cgroup/my\\040tree cgroup2 rw 0 0\n';
    assert.equal(cgroup2Mount(mounts), '/sys/fs/cgroup/my tree');
    assert.equal(cgroup2Mount('proc /proc proc rw 0 0\n'), null);
  });

  it('attaches as root on this kernel, with the TCP connections\' map', () => {
    const state = attachCallerMap();
    assert.equal(state.attached, true);
    assert.equal(state.attached && state.byFlow, true, 'the sock_ops program loaded and attached');
  });

  async function lookup(kind: 'tcp' | 'udp'): Promise<{ caller: number | undefined; client: Client }> {
    const port = kind === 'tcp' ? (server.address() as net.AddressInfo).port : udp.address().port;
    const client = await startClient(kind, port);
    clients.push(client.child);
    holders.push(client.holderPid);
    const owner = diag!.lookup(4, kind === 'tcp' ? 6 : 17, LO4, client.localPort, LO4, port);
    assert.ok(owner !== null && owner !== 'unavailable', 'sock_diag found the socket');
    return { caller: owner.caller, client };
  }

  it('names the process that connected a TCP socket, not the child that holds it too', async () => {
    const { caller, client } = await lookup('tcp');
    assert.equal(caller, client.child.pid);
    assert.notEqual(caller, client.holderPid);
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

  it('names the process that sent on a shared UDP socket', async () => {
    const { caller, client } = await lookup('udp');
    assert.equal(caller, client.child.pid);
  });

  it('names no one once detached (sockets connected after it)', async () => {
    detachCallerMap();
    const { caller, client } = await lookup('tcp');
    assert.equal(caller, 0);
    assert.equal(flowCaller(4, LO4, client.localPort, LO4, (server.address() as net.AddressInfo).port), 0);
  });
});
