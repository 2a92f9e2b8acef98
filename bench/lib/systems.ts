// The systems under test, each started in the client namespace of the bench network and
// stopped without leaving anything behind.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, startBastion } from '../../test/support/bastion.js';
import type { TestNetwork } from '../../test/support/netns.js';

const TSX_LOADER = join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs');
const JS_ACCEPT_READER = join(REPO, 'bench', 'jsAcceptReader.ts');

export interface RunningSystem {
  name: string;
  /** Pids whose memory and CPU the soak records. */
  pids: () => Record<string, number>;
  stop(): Promise<void>;
}

export interface SystemContext {
  net: TestNetwork;
  dir: string;
  /** The load client's executable: Bastion gets a rule allowing it. */
  client: string;
  /** A copy of it (another file) that Bastion's rules deny, for the time to EPERM. */
  deniedClient?: string;
  port: number;
  queueNum: number;
  nfqAccept: string;
  /** Bastion's config.json additions (e.g. mode). */
  bastionConfig?: Record<string, unknown>;
  /** bastion-alt: its extra helper flags (--alt-helper-args), and another build of the addon (--alt-addon). */
  alt?: { helperArgs: readonly string[]; addon: string | null };
}

/**
 * bastion: the queue decides (--no-kernel-verdicts), its path rule allowing the client;
 * bastion-kernel: the same rule, decided in the kernel (TCP by the socket mark, UDP by the
 * pinned filter in a bpf file system of the run's own); bastion-alt: bastion with the extra
 * helper flags of --alt-helper-args and the addon built at --alt-addon, for an A/B comparison
 * within each round.
 * conntrack: no firewall process, one rule per family that matches new connections by connection
 * tracking (-m conntrack --ctstate NEW -j ACCEPT): what tracking alone costs. Bastion's chain, the
 * C reader's and OpenSnitch's all select new connections that way (and Bastion's DNS snooping
 * and UDP flows need it), so this is the ceiling of every system in the table but none.
 */
export type SystemName = 'none' | 'conntrack' | 'c-queue' | 'js-queue' | 'bastion' | 'bastion-kernel' | 'bastion-alt' | 'opensnitch';

export async function startSystem(name: SystemName, ctx: SystemContext): Promise<RunningSystem> {
  switch (name) {
    case 'none':
      return { name, pids: () => ({}), stop: async () => undefined };
    case 'conntrack':
      trackingRules(ctx, '-A');
      return { name, pids: () => ({}), stop: async () => trackingRules(ctx, '-D') };
    case 'c-queue':
      return startQueueReader(ctx, 'c-queue', [ctx.nfqAccept]);
    case 'js-queue':
      return startQueueReader(ctx, 'js-queue', [process.execPath, '--import', TSX_LOADER, JS_ACCEPT_READER]);
    case 'bastion':
      return startBastionSystem(ctx, false);
    case 'bastion-kernel':
      return startBastionSystem(ctx, true);
    case 'bastion-alt':
      return startBastionSystem(ctx, false, ctx.alt ?? { helperArgs: [], addon: null });
    case 'opensnitch':
      return startOpenSnitch(ctx);
  }
}

/** The same iptables shape as Bastion's helper (own chain, NEW only, bypass), for the C reader. */
function queueRules(ctx: SystemContext, action: '-A' | '-D'): void {
  newConnectionRule(ctx, action, ['-j', 'NFQUEUE', '--queue-num', String(ctx.queueNum), '--queue-bypass']);
}

/** The conntrack system's rule: new connections matched, and accepted. */
function trackingRules(ctx: SystemContext, action: '-A' | '-D'): void {
  newConnectionRule(ctx, action, ['-j', 'ACCEPT']);
}

function newConnectionRule(ctx: SystemContext, action: '-A' | '-D', target: string[]): void {
  for (const ipt of ['iptables', 'ip6tables']) {
    const r = ctx.net.run(ctx.net.client, ipt, [action, 'OUTPUT', '-m', 'conntrack', '--ctstate', 'NEW', ...target]);
    if (r.code !== 0 && action === '-A') throw new Error(`${ipt}: ${r.stderr}`);
  }
}

/** An accept-all reader behind the same iptables rules as Bastion's: command + queue number. */
async function startQueueReader(ctx: SystemContext, name: SystemName, command: string[]): Promise<RunningSystem> {
  queueRules(ctx, '-A');
  const [cmd, ...args] = command;
  const child = ctx.net.spawn(ctx.net.client, cmd!, [...args, String(ctx.queueNum)]);
  try {
    await waitForOutput(child, 'READY');
  } catch (err) {
    child.kill('SIGKILL');
    queueRules(ctx, '-D');
    throw err;
  }
  return {
    name,
    pids: () => ({ reader: child.pid ?? 0 }),
    stop: async () => {
      child.kill('SIGKILL');
      queueRules(ctx, '-D');
    },
  };
}

/** A bpf file system of the run's own, as systemd mounts one at /sys/fs/bpf: where the helper pins its chain's filters. */
function bpfFs(ctx: SystemContext): string {
  const dir = join(ctx.dir, 'bpf');
  if (!existsSync(dir)) {
    mkdirSync(dir);
    execFileSync('mount', ['-t', 'bpf', 'bpf', dir]);
  }
  return dir;
}

/** Unmounts what bpfFs() mounted, if anything. */
export function releaseBpfFs(dir: string): void {
  const at = join(dir, 'bpf');
  if (existsSync(at)) execFileSync('umount', ['-l', at]);
}

async function startBastionSystem(ctx: SystemContext, kernel: boolean, alt: SystemContext['alt'] | null = null): Promise<RunningSystem> {
  // BASTION_NATIVE_ADDON (common/native.ts): the alternative build, for the helper and the service alike.
  const env: Record<string, string> = alt?.addon ? { BASTION_NATIVE_ADDON: alt.addon } : {};
  const endpoint = `ipc://${ctx.dir}/helper.sock`;
  const rules: Record<string, boolean> = { [`${ctx.client}:${ctx.port}`]: true };
  if (ctx.deniedClient !== undefined) rules[`${ctx.deniedClient}:${ctx.port}`] = false;
  writeFileSync(join(ctx.dir, 'rules.json'), JSON.stringify(rules));
  // BENCH_BASTION_CONFIG: config.json additions as JSON, to compare (e.g. '{"journal_decisions":false}').
  const benchConfig = JSON.parse(process.env['BENCH_BASTION_CONFIG'] ?? '{}') as Record<string, unknown>;
  writeFileSync(join(ctx.dir, 'config.json'), JSON.stringify({ mode: 'enforcement', ...benchConfig, ...ctx.bastionConfig }));
  // BENCH_HELPER_ARGS: extra helper flags, to compare (e.g. "--no-caller-bpf").
  const extra = (process.env['BENCH_HELPER_ARGS'] ?? '').split(' ').filter(Boolean);
  const helper = startBastion(
    [
      'helper',
      '--queue',
      String(ctx.queueNum),
      '--endpoint',
      endpoint,
      '--socket-group',
      'root',
      '--service-user',
      'root',
      // The bpf file system for our chain's filters: the UDP allow filter, and the flow note filter the queued system's fast path reads too.
      '--bpf-fs',
      bpfFs(ctx),
      ...(kernel ? [] : ['--no-kernel-verdicts']),
      ...extra,
      ...(alt?.helperArgs ?? []),
    ],
    ctx.net.client,
    undefined,
    [],
    env,
  );
  await helper.waitFor('helper started');
  const daemon = startBastion(
    [
      'daemon',
      '--config',
      join(ctx.dir, 'config.json'),
      '--rules',
      join(ctx.dir, 'rules.json'),
      '--endpoint',
      endpoint,
      '--socket',
      join(ctx.dir, 'gui.sock'),
      '--socket-group',
      'root',
      '--no-polkit',
    ],
    undefined,
    undefined,
    [],
    env,
  );
  await daemon.waitFor('helper connected');
  // Decided in the kernel only once the service's path rules reached it.
  if (kernel) await helper.waitFor('path rules for the kernel');
  return {
    name: alt ? 'bastion-alt' : kernel ? 'bastion-kernel' : 'bastion',
    pids: () => ({ helper: helper.child.pid ?? 0, service: daemon.child.pid ?? 0 }),
    stop: async () => {
      await Promise.all([helper.stop(), daemon.stop()]);
      // BENCH_DEBUG: the helper's queue counters (how many packets its fast path answered).
      if (process.env['BENCH_DEBUG']) {
        const stopped = await helper.waitFor('helper stopped', 1000);
        console.error(JSON.stringify({ queue: stopped['queue'], systemQueue: stopped['systemQueue'], stalledMs: stopped['stalledMs'] }));
      }
    },
  };
}

/**
 * OpenSnitch from Debian's package, unpacked into the run's directory (never installed as a
 * service: its postinst would start it for the whole machine). iptables mode, default allow.
 */
async function startOpenSnitch(ctx: SystemContext): Promise<RunningSystem> {
  const root = join(ctx.dir, 'opensnitch');
  const binary = join(root, 'usr/bin/opensnitchd');
  if (!existsSync(binary)) {
    mkdirSync(root, { recursive: true });
    execFileSync('apt-get', ['download', 'opensnitch'], { cwd: ctx.dir, stdio: 'inherit' });
    const deb = execFileSync('sh', ['-c', 'ls opensnitch_*.deb'], { cwd: ctx.dir }).toString().trim();
    execFileSync('dpkg', ['-x', join(ctx.dir, deb), root]);
  }
  // opensnitchd 1.5 reads its configuration from this fixed path.
  const configDir = '/etc/opensnitchd';
  const createdConfig = !existsSync(configDir);
  if (createdConfig) {
    mkdirSync(configDir, { recursive: true });
    for (const f of ['default-config.json', 'system-fw.json']) {
      copyFileSync(join(root, 'etc/opensnitchd', f), join(configDir, f));
    }
  }
  const rules = join(ctx.dir, 'opensnitch-rules');
  mkdirSync(rules, { recursive: true });
  const child = ctx.net.spawn(ctx.net.client, binary, [
    '-rules-path',
    rules,
    '-queue-num',
    String(ctx.queueNum),
    '-process-monitor-method',
    'proc',
    '-ui-socket',
    `unix://${ctx.dir}/osui.sock`,
    '-warning',
  ]);
  await new Promise((r) => setTimeout(r, 3000)); // it prints nothing reliable when ready
  return {
    name: 'opensnitch',
    pids: () => ({ opensnitchd: child.pid ?? 0 }),
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 1000));
      child.kill('SIGKILL');
      if (createdConfig) rmSync(configDir, { recursive: true, force: true });
    },
  };
}

function waitForOutput(child: ChildProcess, text: string, timeoutMs = 10000): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no "${text}" within ${timeoutMs} ms: ${out}`)), timeoutMs);
    child.stdout?.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      if (out.includes(text)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

/** RSS (KiB) and CPU time (ms) of a process, from /proc (clock ticks are 1/100 s on Linux). */
export function sampleProcess(pid: number): { rssKiB: number; cpuMs: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const statText = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
    return { rssKiB: rss, cpuMs: cpuMsOfStat(statText) };
  } catch {
    return null;
  }
}

/** User + system CPU time (ms) in a /proc stat line (fields 14 and 15, in USER_HZ ticks). */
function cpuMsOfStat(statText: string): number {
  const stat = statText.slice(statText.lastIndexOf(')') + 2).split(' ');
  return ((Number(stat[11]) + Number(stat[12])) * 1000) / 100;
}

/** CPU time (user + system, ms) each thread of pid has used so far, by "tid (name)". */
export function threadCpuMs(pid: number): Map<string, number> {
  const threads = new Map<string, number>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return threads;
  }
  for (const tid of tids) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      threads.set(`${tid} (${name})`, cpuMsOfStat(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')));
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return threads;
}

/**
 * CPU time the whole machine spent busy, all CPUs (user, nice, system, irq, softirq; not idle,
 * iowait or steal), in ms: the work a connection costs, kernel included, which a rate measured
 * on a shared 2-core machine hides under scheduling noise. /proc/stat counts USER_HZ ticks.
 */
export function machineBusyMs(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0] = cpu;
  return ((user + nice + system + irq + softirq) * 1000) / 100;
}
