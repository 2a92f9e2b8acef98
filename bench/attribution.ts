// Attribution of one-shot processes (docs/design.md, figure 3): N distinct executables each make
// one TCP connection and exit, then N more each send one UDP datagram and wait for the reply.
// Every connection must be credited to its own executable. Prints the share credited
// correctly and the helper's lookup latency (PacketRecord.lookupMicros) p50/p99; then the
// same for N connections opened in turn by one long-running process, kept open or each
// closed before the next (new sockets of a process the helper already knows: the path of
// most connections on a desktop).
// Each scenario gets a fresh helper and service (learning mode, every decision logged), and
// prints the helper's identify counters: how much /proc work the lookups took.
// Usage: tsx bench/attribution.ts [processes per protocol=1000] [concurrency=4] [family=4]
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { startBastion, tempDir, type BastionProcess } from '../test/support/bastion.js';
import { TestNetwork } from '../test/support/netns.js';
import { buildOneshot, loggedDecisions, nameCopies, percentile, runJobs, startServers, tally, type Job, type LoggedDecision } from '../test/support/oneshot.js';

const N = Number(process.argv[2] ?? 1000);
const CONCURRENCY = Number(process.argv[3] ?? 4);
const FAMILY = Number(process.argv[4] ?? 4) === 6 ? 6 : 4;
const TCP_PORT = 9100;
/**
 * UDP process i sends to UDP_PORT + i: conntrack keeps a UDP flow for 30 s, and among 1,000
 * kernel-chosen source ports some repeat; a repeated 5-tuple is not a NEW flow and never
 * reaches the queue (see startServers).
 */
const UDP_PORT = 10000;
/** sysconf(_SC_CLK_TCK) on Linux. */
const CLOCK_TICKS = 100;

interface ScenarioResult {
  connections: number;
  correct: number;
  share: number;
  failedProcesses: number;
  seconds: number;
  lookup_p50_us: number;
  lookup_p99_us: number;
  lookup_max_us: number;
  byAttribution: Record<string, number>;
  /** The helper's CPU time (user + system) during the scenario, per connection. */
  helper_cpu_us_per_connection: number;
  identify: Record<string, number>;
}

interface Scenario {
  /** Its entry in results.json. */
  key: string;
  name: string;
  protocol: 'TCP' | 'UDP';
  jobs: Job[];
  concurrency: number;
  /** Decisions on [port, port + ports) belong to the scenario. */
  port: number;
  ports: number;
  /** How many connections were credited correctly. */
  correct: (decisions: LoggedDecision[], pids: number[]) => number;
}

const net = TestNetwork.create();
const dir = tempDir('bastion-bench-attribution-');
const endpoint = `ipc://${dir.path}/helper.sock`;
let server: ChildProcess | null = null;
let helper: BastionProcess | null = null;
let daemon: BastionProcess | null = null;

async function startFirewall(): Promise<void> {
  writeFileSync(`${dir.path}/config.json`, JSON.stringify({ mode: 'learning', log_decisions: true }));
  const extra = (process.env['BENCH_HELPER_ARGS'] ?? '').split(' ').filter(Boolean); // e.g. "--no-caller-bpf"
  helper = startBastion(['helper', '--queue', '8', '--endpoint', endpoint, '--socket-group', 'root', '--service-user', 'root', ...extra], net.client);
  await helper.waitFor('helper started');
  daemon = startBastion([
    'daemon',
    '--config',
    `${dir.path}/config.json`,
    '--rules',
    `${dir.path}/rules.json`,
    '--endpoint',
    endpoint,
    '--socket',
    `${dir.path}/gui.sock`,
    '--socket-group',
    'root',
    '--no-polkit',
  ]);
  await daemon.waitFor('helper connected');
}

/** Stops both; returns the helper's identify counters from its last log line. */
async function stopFirewall(): Promise<Record<string, number>> {
  await helper?.stop();
  await daemon?.stop();
  const stopped = helper?.lines.find((l) => l.msg === 'helper stopped');
  helper = daemon = null;
  return (stopped?.['identify'] as Record<string, number> | undefined) ?? {};
}

async function decisionsFor(s: Scenario, want: number): Promise<LoggedDecision[]> {
  // The service logs asynchronously: give the last decisions a moment to arrive.
  for (let i = 0; i < 100; i++) {
    const found = loggedDecisions(daemon?.lines ?? [], s.protocol, s.port, s.ports);
    if (found.length >= want) return found;
    await new Promise((r) => setTimeout(r, 50));
  }
  return loggedDecisions(daemon?.lines ?? [], s.protocol, s.port, s.ports);
}

/** utime + stime of pid in µs (ip netns exec execs the helper: the child's pid is the helper's). */
function cpuMicros(pid: number | undefined): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS;
}

async function run(s: Scenario): Promise<ScenarioResult> {
  await startFirewall();
  const cpuBefore = cpuMicros(helper?.child.pid);
  const started = Date.now();
  const ran = runJobs(net, net.client, s.jobs, s.concurrency, dir.path);
  const seconds = (Date.now() - started) / 1000;
  const decisions = await decisionsFor(s, N);
  const cpu = cpuMicros(helper?.child.pid) - cpuBefore;
  const identify = await stopFirewall();
  const failed = ran.filter((r) => r.code !== 0);
  if (failed.length > 0) console.log(`  first failure: ${JSON.stringify(failed[0])}`);
  const micros = decisions.map((d) => d.lookupMicros).sort((a, b) => a - b);
  const byAttribution: Record<string, number> = {};
  for (const d of decisions) byAttribution[d.attribution] = (byAttribution[d.attribution] ?? 0) + 1;
  const correct = s.correct(
    decisions,
    ran.map((r) => r.pid),
  );
  const r: ScenarioResult = {
    connections: N,
    correct,
    share: correct / N,
    failedProcesses: failed.length,
    seconds,
    lookup_p50_us: percentile(micros, 50),
    lookup_p99_us: percentile(micros, 99),
    lookup_max_us: micros.at(-1) ?? NaN,
    byAttribution,
    helper_cpu_us_per_connection: Math.round(cpu / N),
    identify,
  };
  console.log(
    `${s.name} over IPv${FAMILY}: ${correct}/${N} credited correctly (${(r.share * 100).toFixed(1)}%), ` +
      `lookup p50 ${r.lookup_p50_us} µs, p99 ${r.lookup_p99_us} µs, max ${r.lookup_max_us} µs; ${seconds.toFixed(1)} s; ` +
      `helper CPU ${r.helper_cpu_us_per_connection} µs/connection; ` +
      `attribution ${JSON.stringify(byAttribution)}`,
  );
  console.log(`  identify: ${JSON.stringify(identify)}`);
  return r;
}

/** Each of exes made one connection: correct when credited to its own executable, once. */
function oneShot(exes: string[]): Scenario['correct'] {
  return (decisions) => {
    const t = tally(exes, decisions);
    if (t.wrong.length > 0) console.log('  first wrong credits:', JSON.stringify(t.wrong.slice(0, 5)));
    return t.correct;
  };
}

try {
  server = await startServers(net, net.server, TCP_PORT, UDP_PORT, N);
  const binary = buildOneshot(dir.path);
  const host = FAMILY === 4 ? net.serverV4 : net.serverV6;
  const tcpExes = nameCopies(binary, dir.path, 'tcp-client', N);
  const udpExes = nameCopies(binary, dir.path, 'udp-client', N);
  const holder = nameCopies(binary, dir.path, 'long-running', 1)[0]!;
  const repeater = nameCopies(binary, dir.path, 'long-running-repeat', 1)[0]!;
  const scenarios: Scenario[] = [
    {
      key: 'one_shot_tcp',
      name: `${N} one-shot TCP processes, ${CONCURRENCY} at a time`,
      protocol: 'TCP',
      jobs: tcpExes.map((exe) => [exe, 'tcp', host, String(TCP_PORT)]),
      concurrency: CONCURRENCY,
      port: TCP_PORT,
      ports: 1,
      correct: oneShot(tcpExes),
    },
    {
      key: 'one_shot_udp',
      name: `${N} one-shot UDP processes (with a reply), ${CONCURRENCY} at a time`,
      protocol: 'UDP',
      jobs: udpExes.map((exe, i) => [exe, 'udp', host, String(UDP_PORT + i)]),
      concurrency: CONCURRENCY,
      port: UDP_PORT,
      ports: N,
      correct: oneShot(udpExes),
    },
    {
      key: 'long_running_tcp_kept_open',
      name: `${N} TCP connections from one long-running process`,
      protocol: 'TCP',
      jobs: [[holder, 'hold', String(N), host, String(TCP_PORT)]],
      concurrency: 1,
      port: TCP_PORT,
      ports: 1,
      correct: (decisions, [pid]) => decisions.filter((d) => d.exe === holder && d.pid === pid).length,
    },
    {
      key: 'long_running_tcp_closed_in_turn',
      name: `${N} TCP connections from one long-running process, each closed before the next`,
      protocol: 'TCP',
      jobs: [[repeater, 'repeat', String(N), host, String(TCP_PORT)]],
      concurrency: 1,
      port: TCP_PORT,
      ports: 1,
      correct: (decisions, [pid]) => decisions.filter((d) => d.exe === repeater && d.pid === pid).length,
    },
  ];
  const results: Record<string, ScenarioResult> = {};
  for (const s of scenarios) results[s.key] = await run(s);
  const resultsFile = new URL('./results.json', import.meta.url);
  const previous = existsSync(resultsFile) ? (JSON.parse(readFileSync(resultsFile, 'utf8')) as Record<string, unknown>) : {};
  writeFileSync(resultsFile, JSON.stringify({ ...previous, attribution: { family: FAMILY, concurrency: CONCURRENCY, ...results } }, null, 2) + '\n');
} finally {
  await stopFirewall();
  server?.kill('SIGKILL');
  net.destroy();
  dir.remove();
}
