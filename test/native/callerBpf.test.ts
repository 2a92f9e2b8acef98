// The connect()/sendmsg() caller map (native/src/caller_bpf.h) against real processes: a socket
// held by two processes is reported as the one that connected it (or sent on it), not the other;
// a record stays as long as its socket, whatever else happens; a socket connected before the
// programs were attached has none. A SYN that passes the flow note filter (pinned, run by a rule
// on loopback as our chain runs it before the queue) is found by its ends and sequence number.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import dgram from 'node:dgram';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { attachCallerMap, cgroup2Mount, detachCallerMap, flowCaller, pinFlowNote } from '../../helper/identify/callerMap.js';
import { SockDiag } from '../../helper/identify/sockDiag.js';
import type { CallerRecord } from '../../common/types.js';
import { tempDir } from '../support/bastion.js';

const LO4 = new Uint8Array([127, 0, 0, 1]);
const CLIENT = new URL('../fixtures/shared-socket-client.py', import.meta.url).pathname;
const SNIFFER = new URL('../fixtures/syn-sniffer.py', import.meta.url).pathname;
/** The note rule's comment, by which it is found and removed (a run killed before its cleanup leaves one). */
const NOTE_RULE_COMMENT = 'bastion-test-flow-note';

/** Inserts the flow note filter's rule on loopback (a rule without a target: it lets everything by), for both families. */
function insertNoteRule(pin: string): void {
  for (const ipt of ['iptables', 'ip6tables']) {
    execFileSync(ipt, ['-w', '5', '-I', 'OUTPUT', '-o', 'lo', '-p', 'tcp', '--tcp-flags', 'SYN,ACK', 'SYN', '-m', 'bpf', '--object-pinned', pin, '-m', 'comment', '--comment', NOTE_RULE_COMMENT]);
  }
}

/** Removes every note rule there is, this run's or one a killed run left: by number, which needs no pin. */
function removeNoteRules(): void {
  for (const ipt of ['iptables', 'ip6tables']) {
    const numbers = execFileSync(ipt, ['-w', '5', '-L', 'OUTPUT', '--line-numbers', '-n'], { encoding: 'utf8' })
      .split('\n')
      .filter((line) => line.includes(NOTE_RULE_COMMENT))
      .map((line) => Number(line.split(' ')[0]))
      .reverse();
    for (const n of numbers) execFileSync(ipt, ['-w', '5', '-D', 'OUTPUT', String(n)]);
  }
}

/** The loopback SYNs seen so far, by "family srcPort dstPort": their sequence numbers. */
class SynSniffer {
  private readonly child = spawn('python3', [SNIFFER], { stdio: ['ignore', 'pipe', 'inherit'] });
  private readonly seqs = new Map<string, number[]>();
  readonly ready: Promise<void>;

  constructor() {
    const lines = createInterface({ input: this.child.stdout! });
    this.ready = new Promise((resolve, reject) => {
      lines.once('line', () => resolve());
      this.child.once('exit', (code) => reject(new Error(`the SYN sniffer exited (${code})`)));
    });
    lines.on('line', (line) => {
      const [family, sport, dport, seq] = line.split(' ');
      if (seq === undefined) return;
      const key = `${family} ${sport} ${dport}`;
      this.seqs.set(key, [...(this.seqs.get(key) ?? []), Number(seq)]);
    });
  }

  /** The last SYN's sequence number from srcPort to dstPort (waits up to 2 s for it). */
  async seqOf(family: 4 | 6, srcPort: number, dstPort: number): Promise<number> {
    for (let waited = 0; waited < 2000; waited += 10) {
      const seen = this.seqs.get(`${family} ${srcPort} ${dstPort}`);
      if (seen) return seen.at(-1)!;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`no SYN seen from port ${srcPort} to ${dstPort}`);
  }

  stop(): void {
    this.child.kill('SIGKILL');
  }
}

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
  const bpfDir = tempDir('bastion-callerbpf-');
  const bpfFs = `${bpfDir.path}/bpf`;
  let bpfFsMounted = false;
  const sniffer = new SynSniffer();

  before(async () => {
    server = await new Promise((resolve) => {
      const s = net.createServer((c) => c.on('error', () => undefined)).listen(0, '127.0.0.1', () => resolve(s));
    });
    udp = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    older = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => older.connect(udp.address().port, '127.0.0.1', resolve));
    mkdirSync(bpfFs);
    execFileSync('mount', ['-t', 'bpf', 'bpf', bpfFs]);
    bpfFsMounted = true;
    removeNoteRules();
    await sniffer.ready;
  });
  after(() => {
    // Each step whatever the one before did: the sniffer, the rules and the mount must not outlive the test.
    const steps = [
      () => sniffer.stop(),
      () => removeNoteRules(),
      () => bpfFsMounted && execFileSync('umount', ['-l', bpfFs]),
      () => bpfDir.remove(),
    ];
    for (const step of steps) {
      try {
        step();
      } catch (err) {
        process.stderr.write(`cleanup: ${(err as Error).message}\n`);
      }
    }
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

  it("attaches as root on this kernel, with the callers' executables and the flow note filter", () => {
    const state = attachCallerMap();
    assert.equal(state.attached, true, state.attached ? '' : `${state.reason}\n${state.log}`);
    assert.equal(state.attached && state.exe, true, 'the task reads loaded (CAP_PERFMON, BTF)');
    assert.equal(state.attached && state.byFlow, true, 'the flow note filter loaded and its slots mapped');
    const pin = pinFlowNote(bpfFs, 'TEST');
    assert.ok(pin.ok, pin.ok ? '' : pin.reason);
    insertNoteRule(pin.path);
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
    // The same answer by the SYN's ends and sequence number, without sock_diag; another SYN's names no one.
    const port = (server.address() as net.AddressInfo).port;
    const seq = await sniffer.seqOf(4, client.localPort, port);
    assert.equal(flowCaller(4, LO4, client.localPort, LO4, port, seq), client.child.pid);
    assert.equal(flowCaller(4, LO4, client.localPort, LO4, port, (seq + 1) >>> 0), 0);
    assert.equal(flowCaller(4, LO4, client.localPort, LO4, port + 1, seq), 0);
    assert.equal(flowCaller(4, LO4, client.localPort + 1, LO4, port, seq), 0);
    assert.equal(flowCaller(6, new Uint8Array(16), client.localPort, new Uint8Array(16), port, seq), 0);
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
      assert.equal(flowCaller(6, lo6, socket.localPort!, lo6, port, await sniffer.seqOf(6, socket.localPort!, port)), process.pid);
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
    it(`names a TCP connection that reuses an earlier one's ends (${reuse.over}) by its own caller, and the earlier one's entry never answers for it`, async () => {
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
      const earlierSeq = await sniffer.seqOf(4, localPort, port);
      assert.equal(flowCaller(4, LO4, localPort, LO4, port, earlierSeq), earlier.pid);
      earlier.stdin!.end('\n');
      await new Promise((resolve) => earlier.once('exit', resolve));
      // This process connects from the same port to the same server: the same ends, a new caller.
      const socket = net.connect({ host: reuse.host, port, localAddress: reuse.localAddress, localPort });
      try {
        await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
        // The kernel drew a new initial sequence number: the SYN is this one's, not the earlier one's.
        let seq = await sniffer.seqOf(4, localPort, port);
        for (let waited = 0; seq === earlierSeq && waited < 2000; waited += 10) {
          await new Promise((r) => setTimeout(r, 10));
          seq = await sniffer.seqOf(4, localPort, port);
        }
        assert.notEqual(seq, earlierSeq);
        assert.equal(flowCaller(4, LO4, localPort, LO4, port, seq), process.pid);
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
    const port = (server.address() as net.AddressInfo).port;
    assert.equal(flowCaller(4, LO4, client.localPort, LO4, port, await sniffer.seqOf(4, client.localPort, port)), 0);
  });
});
