// A two-host test network: a client and a server namespace joined by a veth pair, with IPv4
// from the benchmarking range 198.18.0.0/15 (RFC 2544) and IPv6 unique-local addresses.
// Nothing here routes anywhere else; destroy() removes both namespaces (and so the veth).
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

let counter = 0;

export class TestNetwork {
  readonly client: string;
  readonly server: string;
  readonly clientV4: string;
  readonly serverV4: string;
  readonly clientV6: string;
  readonly serverV6: string;

  /** Namespaces added later (containers), removed with the others. */
  private readonly extra: string[] = [];

  private constructor(
    readonly tag: string,
    private readonly subnet: number,
  ) {
    this.client = `bst-${tag}-c`;
    this.server = `bst-${tag}-s`;
    this.clientV4 = `198.18.${subnet}.1`;
    this.serverV4 = `198.18.${subnet}.2`;
    this.clientV6 = `fd00:b5:${subnet.toString(16)}::1`;
    this.serverV6 = `fd00:b5:${subnet.toString(16)}::2`;
  }

  static create(): TestNetwork {
    const subnet = ((process.pid + counter++ * 7) % 250) + 1;
    const net = new TestNetwork(`${process.pid % 100000}${counter}`, subnet);
    try {
      net.setUp();
    } catch (err) {
      net.destroy();
      throw err;
    }
    return net;
  }

  private setUp(): void {
    const ip = (...args: string[]): void => {
      execFileSync('ip', args, { stdio: 'pipe' });
    };
    ip('netns', 'add', this.client);
    ip('netns', 'add', this.server);
    const vc = `v${this.tag}c`.slice(0, 15);
    const vs = `v${this.tag}s`.slice(0, 15);
    ip('link', 'add', vc, 'netns', this.client, 'type', 'veth', 'peer', 'name', vs, 'netns', this.server);
    for (const [ns, dev, v4, v6] of [
      [this.client, vc, this.clientV4, this.clientV6],
      [this.server, vs, this.serverV4, this.serverV6],
    ] as const) {
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      ip('-n', ns, 'addr', 'add', `${v4}/24`, 'dev', dev);
      // nodad: the address is usable at once, and no DAD probes run through the firewall.
      ip('-n', ns, 'addr', 'add', `${v6}/64`, 'dev', dev, 'nodad');
      ip('-n', ns, 'link', 'set', dev, 'up');
    }
  }

  /** Runs a command to completion in a namespace; returns its exit code. */
  run(ns: string, cmd: string, args: string[], timeoutMs = 10000): { code: number; stdout: string; stderr: string } {
    try {
      const stdout = execFileSync('ip', ['netns', 'exec', ns, cmd, ...args], { timeout: timeoutMs, stdio: 'pipe' }).toString();
      return { code: 0, stdout, stderr: '' };
    } catch (err) {
      const e = err as { status?: number | null; stdout?: Buffer; stderr?: Buffer };
      return { code: e.status ?? -1, stdout: e.stdout?.toString() ?? '', stderr: e.stderr?.toString() ?? '' };
    }
  }

  /**
   * Like run(), without blocking the event loop: use it while this process must keep reading
   * the logs of helpers and services it started (a full stderr pipe would stall them).
   */
  runAsync(ns: string, cmd: string, args: string[], timeoutMs = 10000): Promise<{ code: number; stdout: string; stderr: string }> {
    const child = this.spawn(ns, cmd, args);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    return new Promise((resolve) =>
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code: code ?? -1, stdout, stderr });
      }),
    );
  }

  spawn(ns: string, cmd: string, args: string[], options: SpawnOptions = {}): ChildProcess {
    return spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  }

  /** One ping from the client namespace; true when it got a reply. */
  ping(host: string): boolean {
    return this.run(this.client, 'ping', ['-c', '1', '-W', '1', host]).code === 0;
  }

  pingAsync(host: string): Promise<boolean> {
    const child = this.spawn(this.client, 'ping', ['-c', '1', '-W', '2', host]);
    return new Promise((resolve) => child.once('exit', (code) => resolve(code === 0)));
  }

  /**
   * A third namespace standing for a container: behind a bridge in the client namespace,
   * which forwards its IPv4 traffic and masquerades it (as Docker, Podman and libvirt's NAT
   * networks do). Its address is in 198.19.<subnet>.0/24 (RFC 2544 as well).
   */
  addContainer(): { ns: string; v4: string } {
    const ns = `bst-${this.tag}-k`;
    const v4 = `198.19.${this.subnet}.2`;
    const gateway = `198.19.${this.subnet}.1`;
    const bridge = `b${this.tag}`.slice(0, 15);
    const hostEnd = `v${this.tag}h`.slice(0, 15);
    const ip = (...args: string[]): void => {
      execFileSync('ip', args, { stdio: 'pipe' });
    };
    ip('netns', 'add', ns);
    this.extra.push(ns);
    ip('-n', this.client, 'link', 'add', bridge, 'type', 'bridge');
    ip('-n', this.client, 'addr', 'add', `${gateway}/24`, 'dev', bridge);
    ip('-n', this.client, 'link', 'set', bridge, 'up');
    ip('link', 'add', hostEnd, 'netns', this.client, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    ip('-n', this.client, 'link', 'set', hostEnd, 'master', bridge, 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('-n', ns, 'addr', 'add', `${v4}/24`, 'dev', 'eth0');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
    ip('-n', ns, 'route', 'add', 'default', 'via', gateway);
    execFileSync('ip', ['netns', 'exec', this.client, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'], { stdio: 'pipe' });
    execFileSync(
      'ip',
      ['netns', 'exec', this.client, 'iptables', '-w', '5', '-t', 'nat', '-A', 'POSTROUTING', '-s', `198.19.${this.subnet}.0/24`, '-j', 'MASQUERADE'],
      {
        stdio: 'pipe',
      },
    );
    return { ns, v4 };
  }

  destroy(): void {
    for (const ns of [...this.extra, this.client, this.server]) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'pipe' });
      } catch {
        // already gone
      }
    }
  }
}
