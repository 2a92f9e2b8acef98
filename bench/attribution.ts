// Attribution of one-shot processes (design.md, figure 3): N distinct executables each make
// one TCP connection and exit, then N more each send one UDP datagram and wait for the reply.
// Every connection must be credited to its own executable. Prints the share credited
// correctly and the helper's lookup latency (PacketRecord.lookupMicros) p50/p99.
// Usage: tsx bench/attribution.ts [processes per protocol=1000] [concurrency=4] [family=4]
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { startBastion, tempDir, type BastionProcess } from '../test/support/bastion.js';
import { TestNetwork } from '../test/support/netns.js';
import {
  buildOneshot,
  loggedDecisions,
  nameCopies,
  percentile,
  runJobs,
  startServers,
  tally,
  type LoggedDecision,
} from '../test/support/oneshot.js';

const N = Number(process.argv[2] ?? 1000);
const CONCURRENCY = Number(process.argv[3] ?? 4);
const FAMILY = Number(process.argv[4] ?? 4) === 6 ? 6 : 4;
const TCP_PORT = 9100;
const UDP_PORT = 9101;

interface ProtocolResult {
  processes: number;
  correct: number;
  share: number;
  failedProcesses: number;
  lookup_p50_us: number;
  lookup_p99_us: number;
  lookup_max_us: number;
  byAttribution: Record<string, number>;
}

async function decisionsFor(daemon: BastionProcess, protocol: string, port: number, want: number): Promise<LoggedDecision[]> {
  // The service logs asynchronously: give the last decisions a moment to arrive.
  for (let i = 0; i < 100; i++) {
    const found = loggedDecisions(daemon.lines, protocol, port);
    if (found.length >= want) return found;
    await new Promise((r) => setTimeout(r, 50));
  }
  return loggedDecisions(daemon.lines, protocol, port);
}

function summarize(exes: string[], decisions: LoggedDecision[], failed: number): ProtocolResult {
  const t = tally(exes, decisions);
  const micros = decisions.map((d) => d.lookupMicros).sort((a, b) => a - b);
  const byAttribution: Record<string, number> = {};
  for (const d of decisions) byAttribution[d.attribution] = (byAttribution[d.attribution] ?? 0) + 1;
  return {
    processes: exes.length,
    correct: t.correct,
    share: t.correct / exes.length,
    failedProcesses: failed,
    lookup_p50_us: percentile(micros, 50),
    lookup_p99_us: percentile(micros, 99),
    lookup_max_us: micros.at(-1) ?? NaN,
    byAttribution,
  };
}

const net = TestNetwork.create();
const dir = tempDir('bastion-bench-attribution-');
let server: ChildProcess | null = null;
const endpoint = `ipc://${dir.path}/helper.sock`;
let helper: BastionProcess | null = null;
let daemon: BastionProcess | null = null;
try {
  server = await startServers(net, net.server, TCP_PORT, UDP_PORT);
  const binary = buildOneshot(dir.path);
  const host = FAMILY === 4 ? net.serverV4 : net.serverV6;
  writeFileSync(`${dir.path}/config.json`, JSON.stringify({ mode: 'learning', log_decisions: true }));
  helper = startBastion(['helper', '--queue', '8', '--endpoint', endpoint, '--socket-group', 'root'], net.client);
  await helper.waitFor('helper started');
  daemon = startBastion(['daemon', '--config', `${dir.path}/config.json`, '--rules', `${dir.path}/rules.json`, '--endpoint', endpoint, '--socket', `${dir.path}/gui.sock`, '--socket-group', 'root']);
  await daemon.waitFor('helper connected');

  const results: Record<string, ProtocolResult> = {};
  for (const [protocol, port] of [['tcp', TCP_PORT], ['udp', UDP_PORT]] as const) {
    const exes = nameCopies(binary, dir.path, `${protocol}-client`, N);
    const name = protocol.toUpperCase();
    const started = Date.now();
    const ran = runJobs(net, net.client, exes.map((exe) => [exe, protocol, host, String(port)]), CONCURRENCY, dir.path);
    const seconds = (Date.now() - started) / 1000;
    const failed = ran.filter((r) => r.code !== 0).length;
    if (failed > 0) console.log(`  first failure: ${JSON.stringify(ran.find((r) => r.code !== 0))}`);
    const decisions = await decisionsFor(daemon, name, port, N);
    results[protocol] = summarize(exes, decisions, failed);
    const r = results[protocol];
    console.log(
      `${name} over IPv${FAMILY}: ${r.correct}/${N} credited to their own executable (${(r.share * 100).toFixed(1)}%), ` +
        `lookup p50 ${r.lookup_p50_us} µs, p99 ${r.lookup_p99_us} µs, max ${r.lookup_max_us} µs; ` +
        `${N} processes in ${seconds.toFixed(1)} s, ${CONCURRENCY} at a time; attribution ${JSON.stringify(r.byAttribution)}` +
        (failed > 0 ? `; ${failed} processes failed` : ''),
    );
    const wrong = tally(exes, decisions).wrong.slice(0, 5);
    if (wrong.length > 0) console.log('  first wrong credits:', JSON.stringify(wrong));
  }

  const resultsFile = new URL('./results.json', import.meta.url);
  const previous = existsSync(resultsFile) ? (JSON.parse(readFileSync(resultsFile, 'utf8')) as Record<string, unknown>) : {};
  writeFileSync(resultsFile, JSON.stringify({ ...previous, attribution: { family: FAMILY, concurrency: CONCURRENCY, ...results } }, null, 2) + '\n');
} finally {
  await helper?.stop();
  await daemon?.stop();
  server?.kill('SIGKILL');
  net.destroy();
  dir.remove();
}
