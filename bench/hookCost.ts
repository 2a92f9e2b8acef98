// What Bastion's eBPF programs cost every TCP connection on the machine, chain or no chain: the
// machine's CPU per connection and the connection rate, for sequential loopback connections in
// a namespace of their own, with no programs attached, with this build's attached from that
// namespace (as the helper attaches them, verdicts included), and, with --alt-addon=PATH, with
// another build's (the same code at another commit: build its addon in a git worktree with
// `npm run build:native`). Rounds alternate the systems, so each round's figures share the
// machine's state; each is reported against no programs in the same round.
// Usage: npm run bench:hooks -- [--alt-addon=PATH] [--rounds=12] [--count=40000]
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, tempDir } from '../test/support/bastion.js';
import { median } from './lib/stats.js';
import { machineBusyMs } from './lib/systems.js';
import { buildTools } from './lib/tools.js';

const args = process.argv.slice(2);
const option = (name: string): string | undefined => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const ROUNDS = Number(option('rounds') ?? 12);
const COUNT = Number(option('count') ?? 40_000);
const ALT = option('alt-addon');
const PORT = 9000;
const THIS_ADDON = join(REPO, 'native/build/Release/bastion_native.node');
if (ALT !== undefined && !existsSync(ALT)) throw new Error(`--alt-addon ${ALT}: no such file`);

/** Attaches the programs of one addon build from inside ns; resolves once they are. */
function attach(ns: string, addon: string): Promise<ChildProcess> {
  // `ip netns exec` mounts a /sys without cgroup2: mounted again in its private mount namespace.
  const script = [
    "import { attachCallerMap } from './helper/identify/callerMap.js';",
    'const s = attachCallerMap(true);',
    "console.log(s.attached ? 'ATTACHED' : 'FAILED ' + s.reason);",
    'setInterval(() => undefined, 1000);',
  ].join('\n');
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      ns,
      'sh',
      '-c',
      'mount -t cgroup2 none /sys/fs/cgroup && exec "$@"',
      'sh',
      process.execPath,
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      script,
    ],
    { cwd: REPO, env: { ...process.env, BASTION_NATIVE_ADDON: addon }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return new Promise((resolve, reject) => {
    child.stdout!.setEncoding('utf8').once('data', (line: string) => {
      if (line.startsWith('ATTACHED')) return resolve(child);
      child.kill('SIGKILL');
      reject(new Error(`${addon}: ${line.trim()}`));
    });
    child.once('exit', (code) => reject(new Error(`attaching ${addon} exited (${code})`)));
  });
}

const dir = tempDir('bastion-bench-hooks-');
const ns = `bastion-hooks-${process.pid}`;
let server: ChildProcess | null = null;
/** The process holding programs attached now: killed whatever happens (they are machine-wide). */
let attached: ChildProcess | null = null;
try {
  const tools = buildTools(dir.path);
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  server = spawn('ip', ['netns', 'exec', ns, tools.servers, String(PORT)], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500));
  const systems: [string, string | null][] = [
    ['no programs', null],
    ['this build', THIS_ADDON],
    ...(ALT ? ([['--alt-addon', ALT]] as [string, string][]) : []),
  ];
  const busy = new Map<string, number[]>(systems.map(([name]) => [name, []]));
  const rate = new Map<string, number[]>(systems.map(([name]) => [name, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    for (const [name, addon] of systems) {
      attached = addon === null ? null : await attach(ns, addon);
      const busyBefore = machineBusyMs();
      const started = process.hrtime.bigint();
      execFileSync('ip', ['netns', 'exec', ns, tools.connect, 'tcp', '127.0.0.1', String(PORT), String(COUNT)], { stdio: 'ignore' });
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      busy.get(name)!.push(((machineBusyMs() - busyBefore) * 1000) / COUNT);
      rate.get(name)!.push(COUNT / seconds);
      attached?.kill('SIGKILL');
      attached = null;
      process.stdout.write(`round ${round} ${name}: ${busy.get(name)!.at(-1)!.toFixed(1)} µs/conn, ${Math.round(rate.get(name)!.at(-1)!)} conn/s\n`);
    }
  }
  const none = { busy: busy.get('no programs')!, rate: rate.get('no programs')! };
  console.log(`\nmedians over ${ROUNDS} rounds of ${COUNT} sequential loopback connections, each against no programs in the same round:`);
  for (const [name] of systems.slice(1)) {
    const added = busy.get(name)!.map((b, i) => b - none.busy[i]!);
    const ratio = rate.get(name)!.map((r, i) => r / none.rate[i]!);
    console.log(`  ${name}: machine CPU +${median(added).toFixed(1)} µs/conn, ${(median(ratio) * 100).toFixed(1)}% of the connection rate`);
  }
  if (ALT) {
    const diff = busy.get('this build')!.map((b, i) => b - busy.get('--alt-addon')![i]!);
    console.log(
      `  this build minus --alt-addon, per round: median ${median(diff).toFixed(1)} µs/conn, lower in ${diff.filter((d) => d < 0).length} of ${ROUNDS} rounds`,
    );
  }
} finally {
  attached?.kill('SIGKILL');
  server?.kill('SIGKILL');
  try {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  } catch {
    // never created
  }
  dir.remove();
}
