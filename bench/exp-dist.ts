import { readFileSync as require_fs } from 'node:fs';
import { tempDir } from '../test/support/bastion.js';
import { TestNetwork } from '../test/support/netns.js';
import { startSystem, sampleProcess, type SystemName } from './lib/systems.js';
import { buildTools } from './lib/tools.js';
const net = TestNetwork.create();
const dir = tempDir('bastion-exp-');
const tools = buildTools(dir.path);
const server = net.spawn(net.server, tools.servers, ['9000']);
const ctx = { net, dir: dir.path, client: tools.connect, port: 9000, queueNum: 20, nfqAccept: tools.nfqAccept };
const N = Number(process.env.N ?? 20000);
try {
  for (const name of process.argv.slice(2) as SystemName[]) {
    const sys = await startSystem(name, ctx);
    await net.runAsync(net.client, tools.connect, ['tcp', net.serverV4, '9000', '2000', '1'], 60000);
    const pids = sys.pids();
    const before = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, sampleProcess(p)!.cpuMs]));
    const r = await net.runAsync(net.client, tools.connect, ['tcp', net.serverV4, '9000', String(N), '1'], 600000);
    const ut = (p: number) => { const st = require_fs(`/proc/${p}/stat`, 'utf8'); const f = st.slice(st.lastIndexOf(')') + 2).split(' '); return [Number(f[11]) * 10, Number(f[12]) * 10]; };
    console.log('user/sys ms total', Object.entries(pids).map(([k, p]) => `${k} ${ut(p).join('/')}`).join(' '));
    const cpu = Object.entries(pids).map(([k, p]) => `${k} ${((sampleProcess(p)!.cpuMs - before[k]!) * 1000 / N).toFixed(1)}us/conn`).join(' ');
    console.log(name, 'cpu', cpu);
    const s = r.stdout.trim().split('\n').map(Number).sort((a, b) => a - b);
    const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!.toFixed(0);
    const mean = s.reduce((a, b) => a + b, 0) / s.length;
    const { seconds } = JSON.parse(r.stderr.trim().split('\n').pop()!);
    const over = (t: number) => s.filter((x) => x > t).length;
    const sumOver = (t: number) => s.filter((x) => x > t).reduce((a, b) => a + b, 0);
    console.log(`${name}: conn/s ${(N / seconds).toFixed(0)} wall/conn ${(seconds * 1e6 / N).toFixed(0)} mean ${mean.toFixed(0)} p10 ${q(0.1)} p50 ${q(0.5)} p90 ${q(0.9)} p95 ${q(0.95)} p99 ${q(0.99)} p999 ${q(0.999)} max ${q(1)} >500:${over(500)} (sum ${(sumOver(500)/1000).toFixed(0)}ms) >1000:${over(1000)}`);
    await sys.stop();
  }
} finally {
  server.kill('SIGKILL');
  net.destroy();
  dir.remove();
}
