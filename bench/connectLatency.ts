// Added connect latency for a connection that a rule allows, full path (NFQUEUE -> helper ->
// ZeroMQ -> service -> verdict), against no firewall, measured in the same run.
// Usage: tsx bench/connectLatency.ts [connections=2000]
import { realpathSync, writeFileSync } from 'node:fs';
import { startBastion, tempDir } from '../test/support/bastion.js';
import { TestNetwork } from '../test/support/netns.js';

const N = Number(process.argv[2] ?? 2000);
const PORT = 9000;
const NODE = realpathSync(process.execPath);

// Sequential connects; each connect's time in µs from connect() to 'connect'.
const CLIENT = `
const net = require('net');
const [host, port, n] = process.argv.slice(1);
const out = [];
const t0 = process.hrtime.bigint();
(function next(i) {
  if (i === +n) {
    const total = Number(process.hrtime.bigint() - t0) / 1e9;
    process.stdout.write(JSON.stringify({ latencies: out, seconds: total }));
    return;
  }
  const start = process.hrtime.bigint();
  const s = net.connect(+port, host, () => {
    out.push(Number(process.hrtime.bigint() - start) / 1000);
    s.destroy();
    next(i + 1);
  });
  s.on('error', (e) => { console.error(e.message); process.exit(1); });
})(0);
`;
const SERVER = `require('net').createServer((c) => c.destroy()).listen(${PORT}, '0.0.0.0')`;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function measure(net: TestNetwork): Promise<{ p50: number; p99: number; perSecond: number }> {
  const r = await net.runAsync(net.client, NODE, ['-e', CLIENT, net.serverV4, String(PORT), String(N)], 600000);
  if (r.code !== 0) throw new Error(`client failed: ${r.stderr}`);
  const { latencies, seconds } = JSON.parse(r.stdout) as { latencies: number[]; seconds: number };
  const sorted = latencies.slice(200).sort((a, b) => a - b); // skip warm-up
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), perSecond: N / seconds };
}

const net = TestNetwork.create();
const dir = tempDir('bastion-bench-');
const server = net.spawn(net.server, NODE, ['-e', SERVER]);
const endpoint = `ipc://${dir.path}/helper.sock`;
let helper: ReturnType<typeof startBastion> | null = null;
let daemon: ReturnType<typeof startBastion> | null = null;
try {
  await new Promise((r) => setTimeout(r, 500));
  const none = await measure(net);

  writeFileSync(`${dir.path}/rules.json`, JSON.stringify({ [`${NODE}:${PORT}`]: true }));
  writeFileSync(`${dir.path}/config.json`, JSON.stringify({ mode: 'enforcement', log_decisions: !!process.env['BENCH_LOG'] }));
  helper = startBastion(['helper', '--queue', '7', '--endpoint', endpoint, '--socket-group', 'root'], net.client);
  await helper.waitFor('helper started');
  daemon = startBastion(['daemon', '--config', `${dir.path}/config.json`, '--rules', `${dir.path}/rules.json`, '--endpoint', endpoint, '--socket', `${dir.path}/gui.sock`, '--socket-group', 'root']);
  await daemon.waitFor('helper connected');
  const bastion = await measure(net);
  if (process.env['BENCH_LOG']) { console.log(JSON.stringify(daemon.lines.slice(0, 8).map((x) => x.msg))); const l = daemon.lines.filter((x) => x.msg === 'allowed').map((x) => x['lookupMicros'] as number).sort((a, b) => a - b); console.log('lookup p50', l[l.length >> 1], 'p99', l[Math.floor(l.length * 0.99)]); }

  const result = {
    connections: N,
    none,
    bastion,
    added_p50_us: bastion.p50 - none.p50,
    added_p99_us: bastion.p99 - none.p99,
    throughput_ratio: bastion.perSecond / none.perSecond,
  };
  console.log(`sequential TCP connects, N=${N}`);
  console.log(`  no firewall: p50 ${none.p50.toFixed(0)} µs  p99 ${none.p99.toFixed(0)} µs  ${none.perSecond.toFixed(0)} conn/s`);
  console.log(`  bastion:     p50 ${bastion.p50.toFixed(0)} µs  p99 ${bastion.p99.toFixed(0)} µs  ${bastion.perSecond.toFixed(0)} conn/s`);
  console.log(`  added p50 +${result.added_p50_us.toFixed(0)} µs, p99 +${result.added_p99_us.toFixed(0)} µs, throughput ${(result.throughput_ratio * 100).toFixed(0)}%`);
  writeFileSync(new URL('./results.json', import.meta.url), JSON.stringify({ connect_latency: result }, null, 2) + '\n');
} finally {
  await helper?.stop();
  await daemon?.stop();
  server.kill('SIGKILL');
  net.destroy();
  dir.remove();
}
