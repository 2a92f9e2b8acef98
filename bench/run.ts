// npm run bench [-- --smoke] [-- --with-opensnitch] [-- --bpf-stats] [-- --only=seq,par,udp,eperm,prompt,attribution,soak] [-- --rounds=N]
//               [-- --systems=none,conntrack,c-queue,js-queue,bastion,bastion-kernel,opensnitch] [-- --out=FILE]
// Runs each scenario against no firewall, the C and JS accept-all queue readers, Bastion with a
// path rule allowing the client decided by the queue ("bastion", --no-kernel-verdicts) and in
// the kernel ("bastion-kernel": allowed by rule), and (when asked) OpenSnitch, all in namespaces
// of its own, in one run. "time to EPERM" (eperm): how long a connect() of a program a path rule
// denies takes to fail, against bastion-kernel.
// Prints a table and writes bench/results.json. Figures are ratios within this run: the load
// scenarios run in rounds (every system once per round), each system is compared with the
// baseline of its own round, and the table gives the median over the rounds.
import { copyFileSync, existsSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { GuiConnection } from '../cli/guiClient.js';
import { tempDir } from '../test/support/bastion.js';
import { TestNetwork } from '../test/support/netns.js';
import { runAttribution } from './lib/attributionScenario.js';
import { runLoad, type LoadResult } from './lib/load.js';
import { bastionProgramNs, enableBpfStats } from './lib/bpfStats.js';
import { machineBusyMs, releaseBpfFs, sampleProcess, startSystem, threadCpuMs, type SystemContext, type SystemName } from './lib/systems.js';
import { buildTools } from './lib/tools.js';
import { median } from './lib/stats.js';

const args = process.argv.slice(2);
const smoke = args.includes('--smoke');
const withOpenSnitch = args.includes('--with-opensnitch');
// The eBPF programs' run time per connection (bench/lib/bpfStats.ts); off by default: counting slows them a little.
const withBpfStats = args.includes('--bpf-stats');
// Each firewall thread's CPU per connection, printed per scenario and round (where the time goes).
const withThreads = args.includes('--threads');
// bastion-alt: Bastion queued with these extra helper flags, in the same rounds as the others. Runs
// minutes apart differ on this machine by more than most changes do: a change is judged A/B.
const altHelperArgs = (args.find((a) => a.startsWith('--alt-helper-args='))?.slice('--alt-helper-args='.length) ?? '').split(' ').filter(Boolean);
// ... or with the addon built elsewhere (e.g. a worktree of the commit before a native change).
const altAddonArg = args.find((a) => a.startsWith('--alt-addon='))?.slice('--alt-addon='.length);
// Checked here: the loader would quietly fall back to this tree's build, an A/A run taken for A/B.
const altAddon = altAddonArg === undefined ? null : resolve(altAddonArg);
if (altAddon !== null && !existsSync(altAddon)) {
  console.error(`bench: --alt-addon: no file ${altAddon}`);
  process.exit(2);
}
const onlyArg = args.find((a) => a.startsWith('--only='))?.slice('--only='.length);
const only = new Set((onlyArg ?? 'seq,par,udp,eperm,prompt,attribution,soak').split(','));
const outArg = args.find((a) => a.startsWith('--out='))?.slice('--out='.length);
const systemsArg = args.find((a) => a.startsWith('--systems='))?.slice('--systems='.length);
const withAlt = altHelperArgs.length > 0 || altAddon !== null;
if ((systemsArg ?? '').split(',').includes('bastion-alt') && !withAlt) {
  console.error('bench: bastion-alt needs --alt-helper-args or --alt-addon');
  process.exit(2);
}
const roundsArg = args.find((a) => a.startsWith('--rounds='))?.slice('--rounds='.length);
// This machine's baseline moves by ±15% between runs minutes apart: one round is not a figure.
const ROUNDS = roundsArg !== undefined ? Math.max(1, Number(roundsArg) || 1) : smoke ? 1 : 3;
const resultsPath = outArg ?? new URL('./results.json', import.meta.url);

const SIZES = smoke
  ? { warmup: 200, seq: 2000, par: 2000, udp: 1000, eperm: 200, prompt: 1000, attribution: 50, soak: 20_000, soakStep: 5_000 }
  : { warmup: 2000, seq: 20_000, par: 20_000, udp: 10_000, eperm: 5_000, prompt: 5_000, attribution: 1_000, soak: 1_000_000, soakStep: 100_000 };
/** Goals (README, "Performance"): allowed by rule against no firewall; the queue against the C accept-all reader; the time to EPERM. */
const GOALS = { kernelVsNone: 0.9, queuedVsCQueue: 0.85, epermP99Micros: 1000 };
const PORT = 9000;

interface Row {
  scenario: string;
  system: SystemName;
  /** Load scenarios: which round (from 1); the others run once. */
  round?: number;
  result: LoadResult;
}

const rows: Row[] = [];
const extra: Record<string, unknown> = {};
const net = TestNetwork.create();
const dir = tempDir('bastion-bench-');
const tools = buildTools(dir.path);
// 16 clients that connect and reset at once can outrun one accept loop by more than 4096
// connections: the overflow drops SYNs, and a 1 s retransmit would be measured as our cost.
net.run(net.server, 'sysctl', ['-qw', 'net.core.somaxconn=65535']);
const server = net.spawn(net.server, tools.servers, [String(PORT)]);
// The same client at another path is another file: Bastion's path rule denies that one.
const deniedClient = `${dir.path}/bench-client-denied`;
copyFileSync(tools.connect, deniedClient);
const ctx: SystemContext = {
  net,
  dir: dir.path,
  client: tools.connect,
  deniedClient,
  port: PORT,
  queueNum: 20,
  nfqAccept: tools.nfqAccept,
  alt: { helperArgs: altHelperArgs, addon: altAddon },
};

/** CPU time (user + system) the firewall's own processes have used so far. */
function firewallCpuMs(pids: Record<string, number>): number {
  return Object.values(pids).reduce((sum, pid) => sum + (sampleProcess(pid)?.cpuMs ?? 0), 0);
}

/** Every thread's CPU time so far, by "process tid (name)". */
function threadsCpuMs(pids: Record<string, number>): Map<string, number> {
  const all = new Map<string, number>();
  for (const [process, pid] of Object.entries(pids)) for (const [thread, ms] of threadCpuMs(pid)) all.set(`${process} ${thread}`, ms);
  return all;
}

/**
 * Waits until the firewall's processes are idle (under 2% of a CPU over 500 ms, 15 s at most):
 * a Node process just started compiles and collects for a second or more, which on a 2-core
 * machine would be measured as the cost of its first connections.
 */
async function settled(pids: Record<string, number>): Promise<void> {
  const deadline = Date.now() + 15_000;
  let last = firewallCpuMs(pids);
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    const now = firewallCpuMs(pids);
    if (now - last <= 10) return;
    last = now;
  }
}

async function loadScenarios(system: SystemName, round: number): Promise<void> {
  const sys = await startSystem(system, ctx);
  try {
    await settled(sys.pids());
    const host = net.serverV4;
    // Every system gets the same warm-up, unmeasured: steady state is what is compared, not
    // a JIT compiling its hot path or caches filling in the first few hundred connections.
    await runLoad(net, tools.connect, 'tcp', host, PORT, SIZES.warmup);
    const measured = async (protocol: 'tcp' | 'udp', count: number, parallel?: number): Promise<LoadResult> => {
      const cpuBefore = firewallCpuMs(sys.pids());
      const machineBefore = machineBusyMs();
      const ebpfBefore = withBpfStats ? bastionProgramNs() : NaN;
      const threadsBefore = withThreads ? threadsCpuMs(sys.pids()) : null;
      const result = await runLoad(net, tools.connect, protocol, host, PORT, count, parallel);
      if (threadsBefore) {
        for (const [thread, ms] of threadsCpuMs(sys.pids())) {
          const spent = ms - (threadsBefore.get(thread) ?? 0);
          if (spent > 0)
            console.log(
              `  ${system} ${protocol}${parallel ? ` ${parallel} parallel` : ''} round ${round}: ${thread} ${((spent * 1000) / count).toFixed(1)} µs/conn`,
            );
        }
      }
      return {
        ...result,
        firewallCpuMicros: ((firewallCpuMs(sys.pids()) - cpuBefore) * 1000) / count,
        machineCpuMicros: ((machineBusyMs() - machineBefore) * 1000) / count,
        ebpfMicros: withBpfStats ? (bastionProgramNs() - ebpfBefore) / 1000 / count : NaN,
      };
    };
    if (only.has('seq')) rows.push({ scenario: 'tcp sequential', system, round, result: await measured('tcp', SIZES.seq) });
    if (only.has('par')) rows.push({ scenario: 'tcp 16 parallel', system, round, result: await measured('tcp', SIZES.par, 16) });
    if (only.has('udp')) rows.push({ scenario: 'udp new flows', system, round, result: await measured('udp', SIZES.udp) });
    if (only.has('eperm') && system === 'bastion-kernel') {
      // Every connect() must fail with EPERM (the C client counts anything else as a failure).
      const result = await runLoad(net, deniedClient, 'tcp-eperm', host, PORT, SIZES.eperm);
      rows.push({ scenario: 'time to EPERM', system, round, result });
    }
  } finally {
    await sys.stop();
  }
}

/** Allowed connections measured while another program's prompt stays open. */
async function promptIsolation(): Promise<void> {
  const sys = await startSystem('bastion', { ...ctx, bastionConfig: { timeout_seconds: 300 } });
  let gui: GuiConnection | null = null;
  let prompted: ReturnType<TestNetwork['spawn']> | null = null;
  try {
    await runLoad(net, tools.connect, 'tcp', net.serverV4, PORT, SIZES.warmup); // as loadScenarios
    const before = await runLoad(net, tools.connect, 'tcp', net.serverV4, PORT, SIZES.prompt);
    gui = await GuiConnection.connect(`${dir.path}/gui.sock`, { answersPrompts: true, client: 'bench' });
    const request = gui.next('connection_request', 10000);
    // curl has no rule: in enforcement mode with a client connected, it is held at a prompt.
    prompted = net.spawn(net.client, 'curl', ['-s', '-m', '200', `http://${net.serverV4}:${PORT}/`]);
    const asked = await request;
    const during = await runLoad(net, tools.connect, 'tcp', net.serverV4, PORT, SIZES.prompt);
    rows.push({ scenario: 'tcp seq, no prompt', system: 'bastion', result: before });
    rows.push({ scenario: 'tcp seq, prompt open', system: 'bastion', result: during });
    extra['prompt_isolation'] = { prompt: asked, p50_ratio: during.p50 / before.p50, p99_ratio: during.p99 / before.p99 };
  } finally {
    prompted?.kill('SIGKILL');
    gui?.close();
    await sys.stop();
  }
}

/** Memory and CPU of the helper and the service across a long run of connections. */
async function soak(): Promise<void> {
  const sys = await startSystem('bastion', ctx);
  const samples: Record<string, unknown>[] = [];
  try {
    const pids = sys.pids();
    const sample = (done: number): void => {
      const entry: Record<string, unknown> = { connections: done };
      for (const [name, pid] of Object.entries(pids)) entry[name] = sampleProcess(pid);
      samples.push(entry);
      console.log(`  soak ${done.toLocaleString('en')}: ${JSON.stringify(entry)}`);
    };
    sample(0);
    for (let done = 0; done < SIZES.soak;) {
      const r = await runLoad(net, tools.connect, 'tcp', net.serverV4, PORT, SIZES.soakStep, 4);
      if (r.failures > 0) throw new Error(`soak: ${r.failures} connections failed`);
      done += SIZES.soakStep;
      sample(done);
    }
  } finally {
    await sys.stop();
  }
  extra['soak'] = samples;
}

/** Per scenario and system: medians over the rounds, each round against its own baseline. */
function summarize(): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  const keys = [...new Set(rows.map((r) => `${r.scenario}\t${r.system}`))];
  for (const key of keys) {
    const [scenario, system] = key.split('\t') as [string, SystemName];
    const mine = rows.filter((r) => r.scenario === scenario && r.system === system);
    const against = (r: Row, f: (own: LoadResult, base: LoadResult) => number, baseline: SystemName = 'none'): number => {
      const base = rows.find((b) => b.scenario === scenario && b.system === baseline && b.round === r.round)?.result;
      return base ? f(r.result, base) : NaN;
    };
    out.push({
      scenario,
      system,
      rounds: mine.length,
      p50: median(mine.map((r) => r.result.p50)),
      p99: median(mine.map((r) => r.result.p99)),
      perSecond: median(mine.map((r) => r.result.perSecond)),
      vsNone: median(mine.map((r) => against(r, (own, base) => own.perSecond / base.perSecond))),
      vsNoneByRound: mine.map((r) => against(r, (own, base) => own.perSecond / base.perSecond)),
      vsCQueue: median(mine.map((r) => against(r, (own, base) => own.perSecond / base.perSecond, 'c-queue'))),
      addedP50: median(mine.map((r) => against(r, (own, base) => own.p50 - base.p50))),
      addedP99: median(mine.map((r) => against(r, (own, base) => own.p99 - base.p99))),
      firewallCpuMicros: median(mine.map((r) => r.result.firewallCpuMicros ?? NaN)),
      machineCpuMicros: median(mine.map((r) => r.result.machineCpuMicros ?? NaN)),
      ebpfMicros: median(mine.map((r) => r.result.ebpfMicros ?? NaN)),
      failures: mine.reduce((n, r) => n + r.result.failures, 0),
    });
  }
  return out;
}

/** A ratio as a whole percentage, '-' when not measured. */
function percent(n: unknown): string {
  return typeof n === 'number' && Number.isFinite(n) ? `${(n * 100).toFixed(0)}%` : '-';
}

function printTable(summary: Record<string, unknown>[]): void {
  const fmt = (n: unknown, digits = 0): string => (typeof n === 'number' && Number.isFinite(n) ? n.toFixed(digits) : '-');
  const signed = (n: unknown): string => (typeof n === 'number' && Number.isFinite(n) ? `${n >= 0 ? '+' : ''}${n.toFixed(0)}` : '-');
  console.log(`\nmedians over ${ROUNDS} round(s); "vs none" and "added" against the baseline of the same round`);
  console.log(
    'bastion: the queue decides (Bastion queued); bastion-kernel: the same path rule decided in the kernel (allowed by rule)' +
      (withAlt ? `; bastion-alt: Bastion queued with ${[...altHelperArgs, ...(altAddon ? [`the addon ${altAddon}`] : [])].join(' ')}` : ''),
  );
  console.log(
    '| scenario | system | p50 µs | p99 µs | conn/s | vs none | vs none by round | vs C reader | added p50 | added p99 | firewall CPU µs/conn | eBPF µs/conn | machine CPU µs/conn | failures |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of summary) {
    const byRound = (r['vsNoneByRound'] as number[]).map(percent).join(' ');
    console.log(
      `| ${String(r['scenario'])} | ${String(r['system'])} | ${fmt(r['p50'])} | ${fmt(r['p99'])} | ${fmt(r['perSecond'])} | ${percent(r['vsNone'])} | ${byRound} | ${percent(r['vsCQueue'])} | ${signed(r['addedP50'])} | ${signed(r['addedP99'])} | ${fmt(r['firewallCpuMicros'], 1)} | ${fmt(r['ebpfMicros'], 1)} | ${fmt(r['machineCpuMicros'])} | ${fmt(r['failures'])} |`,
    );
  }
  const goals = goalLines(summary);
  if (goals.length > 0) console.log(`\ngoals:\n${goals.join('\n')}`);
}

/** Each goal beside what this run measured (medians over its rounds). */
function goalLines(summary: Record<string, unknown>[]): string[] {
  const mark = (ok: boolean): string => (ok ? 'met' : 'NOT met');
  const lines: string[] = [];
  for (const r of summary) {
    const vsNone = r['vsNone'] as number;
    const vsCQueue = r['vsCQueue'] as number;
    if (r['system'] === 'bastion-kernel' && r['scenario'] !== 'time to EPERM' && Number.isFinite(vsNone)) {
      // Beside it, what connection tracking alone leaves of none in the same run: the ceiling.
      const tracking = summary.find((t) => t['system'] === 'conntrack' && t['scenario'] === r['scenario'])?.['vsNone'];
      const ceiling = typeof tracking === 'number' && Number.isFinite(tracking) ? ` (conntrack alone: ${percent(tracking)})` : '';
      lines.push(
        `  allowed by rule, ${String(r['scenario'])}: ${percent(vsNone)} of none${ceiling} (goal >= ${percent(GOALS.kernelVsNone)}): ${mark(vsNone >= GOALS.kernelVsNone)}`,
      );
    }
    if (r['system'] === 'bastion' && Number.isFinite(vsCQueue)) {
      lines.push(
        `  Bastion queued, ${String(r['scenario'])}: ${percent(vsCQueue)} of the C reader (goal >= ${percent(GOALS.queuedVsCQueue)}): ${mark(vsCQueue >= GOALS.queuedVsCQueue)}`,
      );
    }
    if (r['scenario'] === 'time to EPERM') {
      const p99 = r['p99'] as number;
      lines.push(
        `  time to EPERM: p50 ${(r['p50'] as number).toFixed(0)} µs, p99 ${p99.toFixed(0)} µs (goal p99 <= ${GOALS.epermP99Micros} µs): ${mark(p99 <= GOALS.epermP99Micros)}`,
      );
    }
  }
  return lines;
}

/** One scenario's failure is reported and recorded; the others still run and are kept. */
async function scenario(name: string, run: () => Promise<void>): Promise<void> {
  console.log(`running ${name}...`);
  try {
    await run();
  } catch (err) {
    console.error(`${name} failed: ${(err as Error).message}`);
    extra[`${name}_error`] = (err as Error).message;
  }
}

const restoreBpfStats = withBpfStats ? enableBpfStats() : null;
try {
  await new Promise((r) => setTimeout(r, 300));
  const allSystems: SystemName[] = [
    'none',
    'conntrack',
    'c-queue',
    'js-queue',
    'bastion',
    'bastion-kernel',
    ...(withAlt ? (['bastion-alt'] as const) : []),
    ...(withOpenSnitch ? (['opensnitch'] as const) : []),
  ];
  const systems = systemsArg === undefined ? allSystems : allSystems.filter((s) => systemsArg.split(',').includes(s));
  if (only.has('seq') || only.has('par') || only.has('udp') || only.has('eperm')) {
    for (let round = 1; round <= ROUNDS; round++) {
      for (const system of systems) await scenario(`load scenarios against ${system} (round ${round})`, () => loadScenarios(system, round));
    }
  }
  if (only.has('prompt')) await scenario('prompt isolation', promptIsolation);
  if (only.has('attribution')) {
    await scenario('attribution', async () => {
      extra['attribution'] = await runAttribution(net, dir.path, SIZES.attribution);
    });
  }
  if (only.has('soak')) await scenario('soak', soak);
  const summary = summarize();
  printTable(summary);
  if (extra['attribution']) console.log('\nattribution:', JSON.stringify(extra['attribution']));
  if (extra['prompt_isolation']) console.log('prompt isolation:', JSON.stringify(extra['prompt_isolation']));
  const failed = Object.keys(extra).filter((k) => k.endsWith('_error'));
  if (failed.length > 0) {
    console.error(`failed: ${failed.join(', ')}`);
    process.exitCode = 1;
  }
  writeFileSync(
    resultsPath,
    JSON.stringify(
      { smoke, date: new Date().toISOString(), sizes: SIZES, rounds: ROUNDS, goals: GOALS, goalLines: goalLines(summary), summary, rows, ...extra },
      null,
      2,
    ) + '\n',
  );
} finally {
  restoreBpfStats?.();
  server.kill('SIGKILL');
  net.destroy();
  releaseBpfFs(dir.path);
  dir.remove();
}
