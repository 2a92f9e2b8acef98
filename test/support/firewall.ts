// A whole firewall for one test: a two-namespace network, an HTTP server in the server
// namespace, the real helper in the client namespace and the real service, with their files
// in a temporary directory. close() always removes all of it.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { GuiConnection } from '../../cli/guiClient.js';
import { FAST_REPORT_DELAY_MS, REPORT_DELAY_MS } from '../../common/busChannel.js';
import type { HelperCounters } from '../../common/wire.js';
import { startBastion, tempDir, type BastionProcess } from './bastion.js';
import { TestNetwork } from './netns.js';

/** Prints `<remote address> <local port>` per datagram received on each UDP port in argv. */
const UDP_SERVER =
  "process.argv.slice(1).forEach((p)=>require('dgram').createSocket('udp6')" +
  ".on('message',(m,r)=>process.stdout.write(r.address+' '+p+'\\n')).bind(+p,'::'))";

/** Serves "ok" on each port in argv; prints `<remote address> <local port>` per connection accepted. */
const HTTP_SERVER =
  "process.argv.slice(1).forEach((p)=>require('http').createServer((q,s)=>s.end('ok'))" +
  ".on('connection',(c)=>process.stdout.write(c.remoteAddress+' '+c.localPort+'\\n')).listen(+p,'::'))";

let queueCounter = 0;

export interface FirewallSetup {
  rules?: Record<string, unknown>;
  config?: Record<string, unknown>;
  helperArgs?: string[];
  /** A command the helper's node runs under (e.g. setpriv dropping a capability). */
  helperWrapper?: string[];
  daemonArgs?: string[];
  /** Ports the server namespace's HTTP server listens on; default [80]. */
  serverPorts?: number[];
  /** UDP ports the server namespace counts datagrams on (datagramsReceived); default none. */
  udpPorts?: number[];
  /**
   * A bpf file system of the test's own for the helper's UDP allow filter (--bpf-fs), as systemd
   * mounts one at /sys/fs/bpf; default true. false: none, so UDP allows go to the queue.
   */
  bpfFs?: boolean;
}

interface Counters {
  total_connections: number;
  allowed_connections: number;
  blocked_connections: number;
}

export class TestFirewall {
  readonly net = TestNetwork.create();
  readonly dir = tempDir('bastion-test-');
  readonly endpoint = `ipc://${this.dir.path}/helper.sock`;
  readonly guiSocket = `${this.dir.path}/gui.sock`;
  readonly rulesPath = `${this.dir.path}/rules.json`;
  readonly configPath = `${this.dir.path}/config.json`;
  readonly queue = 10 + (queueCounter++ % 50);
  readonly chain = 'BASTION-OUT';
  helper: BastionProcess | null = null;
  daemon: BastionProcess | null = null;
  private readonly server: ChildProcess;
  /** What the server printed: one `<remote address> <local port>` line per connection. */
  private serverLog = '';
  private readonly udpServer: ChildProcess | null = null;
  /** The same per datagram received. */
  private udpLog = '';
  /** The bpf file system mounted for the helper, or null. */
  private bpfFs: string | null = null;

  constructor(private readonly setup: FirewallSetup = {}) {
    const ports = (setup.serverPorts ?? [80]).map(String);
    this.server = this.net.spawn(this.net.server, process.execPath, ['-e', HTTP_SERVER, ...ports]);
    this.server.stdout?.setEncoding('utf8').on('data', (d: string) => (this.serverLog += d));
    this.server.stderr?.resume();
    if (setup.udpPorts !== undefined && setup.udpPorts.length > 0) {
      const udp = this.net.spawn(this.net.server, process.execPath, ['-e', UDP_SERVER, ...setup.udpPorts.map(String)]);
      udp.stdout?.setEncoding('utf8').on('data', (d: string) => (this.udpLog += d));
      udp.stderr?.resume();
      this.udpServer = udp;
    }
    if (setup.rules) writeFileSync(this.rulesPath, JSON.stringify(setup.rules, null, 2));
    writeFileSync(this.configPath, JSON.stringify(setup.config ?? { mode: 'enforcement' }, null, 2));
  }

  async startHelper(): Promise<BastionProcess> {
    if (this.setup.bpfFs !== false && this.bpfFs === null) {
      const dir = `${this.dir.path}/bpf`;
      mkdirSync(dir);
      execFileSync('mount', ['-t', 'bpf', 'bpf', dir]);
      this.bpfFs = dir;
    }
    this.helper = startBastion(
      [
        'helper',
        '--queue',
        String(this.queue),
        '--endpoint',
        this.endpoint,
        '--socket-group',
        'root',
        '--service-user',
        'root',
        ...(this.bpfFs !== null ? ['--bpf-fs', this.bpfFs] : []),
        ...(this.setup.helperArgs ?? []),
      ],
      this.net.client,
      undefined,
      this.setup.helperWrapper,
    );
    await this.helper.waitFor('helper started');
    return this.helper;
  }

  async startDaemon(): Promise<BastionProcess> {
    this.daemon = startBastion([
      'daemon',
      '--config',
      this.configPath,
      '--rules',
      this.rulesPath,
      '--endpoint',
      this.endpoint,
      '--socket',
      this.guiSocket,
      '--socket-group',
      'root',
      '--no-polkit',
      '--state-dir',
      this.dir.path,
      ...(this.setup.daemonArgs ?? []),
    ]);
    await this.daemon.waitFor('helper connected');
    return this.daemon;
  }

  async start(): Promise<this> {
    await this.startHelper();
    await this.startDaemon();
    await this.waitForServer();
    return this;
  }

  /** The HTTP server is up once a request from the server's own namespace succeeds. */
  private async waitForServer(): Promise<void> {
    for (let i = 0; i < 50; i++) {
      if (this.net.run(this.net.server, 'curl', ['-s', '-m', '1', 'http://127.0.0.1/']).code === 0) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('HTTP server in the server namespace did not start');
  }

  /** curl from the client namespace; true when the HTTP request succeeded. */
  http(host: string, timeoutS = 2): boolean {
    const url = host.includes(':') ? `http://[${host}]/` : `http://${host}/`;
    return this.net.run(this.net.client, 'curl', ['-s', '-o', '/dev/null', '-m', String(timeoutS), url], (timeoutS + 5) * 1000).code === 0;
  }

  /**
   * Connections the server namespace accepted from the client namespace (the server's own
   * readiness checks are not counted), on `port` or on every port.
   */
  connectionsReceived(port?: number): number {
    return this.fromClient(this.serverLog, port);
  }

  /** Datagrams the server namespace received from the client namespace (udpPorts), on `port` or on every port. */
  datagramsReceived(port?: number): number {
    return this.fromClient(this.udpLog, port);
  }

  private fromClient(log: string, port: number | undefined): number {
    const clients = new Set([this.net.clientV4, `::ffff:${this.net.clientV4}`, this.net.clientV6]);
    return log
      .split('\n')
      .map((line) => line.split(' '))
      .filter(([addr, p]) => clients.has(addr ?? '') && (port === undefined || Number(p) === port)).length;
  }

  ping(host: string): boolean {
    return this.net.ping(host);
  }

  async status(): Promise<Record<string, unknown>> {
    const conn = await GuiConnection.connect(this.guiSocket);
    try {
      return await conn.request({ type: 'status' }, 'status');
    } finally {
      conn.close();
    }
  }

  /**
   * The service's connection counters once they have settled: connections the helper allowed
   * from its cache (or its fast path) are reported in bulk up to REPORT_DELAY_MS (plus
   * FAST_REPORT_DELAY_MS) later, so read until two reads a report delay apart agree.
   */
  async counters(): Promise<Counters> {
    const settle = FAST_REPORT_DELAY_MS + REPORT_DELAY_MS * 2;
    const earliest = Date.now() + settle;
    const deadline = Date.now() + 10_000;
    let last = await this.rawCounters();
    for (;;) {
      await new Promise((r) => setTimeout(r, settle));
      const now = await this.rawCounters();
      if (Date.now() >= earliest && JSON.stringify(now) === JSON.stringify(last)) return now;
      if (Date.now() > deadline) throw new Error(`counters kept changing for 10 s: ${JSON.stringify(now)}`);
      last = now;
    }
  }

  /**
   * The helper's counters as a heartbeat (every 500 ms) carried them to the service, from one
   * sent after this call and after the helper's next read of the kernel's reports (every
   * FAST_REPORT_DELAY_MS): so they include what happened before the call. Then, if `until` is
   * given, the first counters for which it holds (or the last, after 10 s).
   */
  async helperCounters(until: (c: HelperCounters) => boolean = () => true): Promise<HelperCounters> {
    const after = Date.now() + FAST_REPORT_DELAY_MS * 2;
    const deadline = Date.now() + 10_000;
    for (;;) {
      const helper = (await this.status())['helper'] as { counters: HelperCounters | null; counters_at_ms: number | null };
      const fresh = helper.counters !== null && (helper.counters_at_ms ?? 0) > after;
      if (fresh && (until(helper.counters!) || Date.now() > deadline)) return helper.counters!;
      if (Date.now() > deadline) throw new Error('no heartbeat from the helper for 10 s');
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private async rawCounters(): Promise<Counters> {
    return (await this.status())['stats'] as Counters;
  }

  /** iptables -S of the client namespace. */
  iptablesRules(family: 4 | 6): string {
    return this.net.run(this.net.client, family === 4 ? 'iptables' : 'ip6tables', ['-S']).stdout;
  }

  async close(): Promise<void> {
    await Promise.all([this.helper?.stop(), this.daemon?.stop()]);
    this.server.kill('SIGKILL');
    this.udpServer?.kill('SIGKILL');
    this.net.destroy();
    if (this.bpfFs !== null) execFileSync('umount', ['-l', this.bpfFs]);
    this.dir.remove();
  }
}
