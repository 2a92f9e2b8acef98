// The desktop agent and its panel under load: the panel's first paint in headless chromium, the
// page's frame times while the live feed carries 1,000 decisions/s, and the agent's memory.
// The agent runs as `bastion agent` against a stand-in GUI socket that speaks the protocol
// (common/guiProtocol.ts) and sends `decision` messages at the chosen rate to subscribers: the
// real helper could not make 1,000 real connections a second on this machine without measuring
// itself. Goals: first paint <= 300 ms, agent RSS <= 80 MB.
// Usage: tsx bench/ui.ts [decisions per second=1000] [seconds=10] [package root]
// With a package root (a .deb unpacked with dpkg-deb -x), the agent runs from the package's
// compiled files and production modules, as users run it; otherwise from source through tsx,
// whose compiler adds some 20-30 MB to the agent's memory.
import { execFileSync, spawn } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { askLoginUrl } from '../cli/agent/agentCommand.js';
import type { DecisionMessage } from '../common/guiProtocol.js';
import { BastionProcess, REPO, startBastion, tempDir } from '../test/support/bastion.js';
import { TestBrowser } from '../test/support/browser.js';
import { percentile } from '../test/support/guiPrograms.js';

const RATE = Number(process.argv[2] ?? 1000);
const SECONDS = Number(process.argv[3] ?? 10);
const PACKAGE_ROOT = process.argv[4];
const ASSETS = PACKAGE_ROOT ? join(PACKAGE_ROOT, 'usr/lib/bastion-firewall/dist/ui') : join(REPO, 'dist', 'ui');

/** A GUI socket that answers what the agent asks and feeds decisions at RATE per second. */
function standInService(): net.Server {
  return net.createServer((socket) => {
    const send = (m: Record<string, unknown>): boolean => socket.write(JSON.stringify(m) + '\n');
    send({ type: 'stats_update', stats: { total_connections: 0, allowed_connections: 0, blocked_connections: 0, learning_mode: false } });
    let feed: NodeJS.Timeout | null = null;
    let n = 0;
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const m = JSON.parse(buffer.slice(0, nl)) as { type: string };
        buffer = buffer.slice(nl + 1);
        if (m.type === 'status')
          send({
            type: 'status',
            mode: 'enforcement',
            default_action: 'deny',
            timeout_seconds: 60,
            uptime_seconds: 1,
            stats: {},
            rules: 0,
            clients: 1,
            prompts: { open: 0, limited: 0, answering: 1 },
            monitors: 1,
            helper: { connected: true, pid: 1, capabilities: [] },
          });
        if (m.type === 'subscribe' && !feed) {
          send({ type: 'subscribed', feed: 'decisions' });
          // RATE/100 decisions every 10 ms: an even rate rather than one burst a second.
          feed = setInterval(() => {
            for (let i = 0; i < RATE / 100; i++) {
              const d: DecisionMessage = {
                type: 'decision',
                time: new Date().toISOString(),
                pid: 1000 + (n % 50),
                app_name: `prog${n % 20}`,
                app_path: `/usr/bin/prog${n % 20}`,
                dest_ip: `198.51.100.${n % 250}`,
                dest_port: 443,
                protocol: 'TCP',
                allow: n % 7 !== 0,
                reason: 'rule',
                rule_key: null,
                connections: 1,
                missed: 0,
              };
              n++;
              send(d);
            }
          }, 10);
        }
      }
    });
    socket.on('close', () => feed && clearInterval(feed));
    socket.on('error', () => undefined);
  });
}

function rssMb(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

/** `bastion agent` from source (tsx), or from the unpacked package's compiled files. */
function startAgent(args: string[]): BastionProcess {
  if (!PACKAGE_ROOT) return startBastion(args);
  const log = join(tempDir('bastion-bench-ui-log-').path, 'agent.jsonl');
  const fd = openSync(log, 'w+');
  const child = spawn(process.execPath, [join(PACKAGE_ROOT, 'usr/lib/bastion-firewall/dist/cli/bastion.js'), ...args], { stdio: ['ignore', 'pipe', fd] });
  return new BastionProcess(child, openSync(log, 'r'));
}

async function main(): Promise<void> {
  if (!PACKAGE_ROOT) execFileSync(process.execPath, [join(REPO, 'scripts', 'build-ui.mjs'), ASSETS]);
  const dir = tempDir('bastion-bench-ui-');
  const socketPath = join(dir.path, 'gui.sock');
  const server = standInService();
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  process.env['XDG_RUNTIME_DIR'] = dir.path;
  const agent = startAgent([
    'agent',
    '--socket',
    socketPath,
    '--no-notifications',
    '--assets',
    ASSETS,
    '--open-with',
    '',
    '--history',
    join(dir.path, 'none.sqlite'),
  ]);
  const browser = await TestBrowser.launch();
  try {
    await agent.waitFor('agent started', 20_000);
    const idle = rssMb(agent.child.pid!);
    const page = await browser.context.newPage();
    // First paint: the median of 5 fresh loads of the panel.
    const paints: number[] = [];
    for (let i = 0; i < 5; i++) {
      await page.goto(await askLoginUrl(join(dir.path, 'bastion-agent.sock')));
      await page.waitForSelector('#tab-Live');
      paints.push(
        await page.evaluate(() => {
          const fcp = performance.getEntriesByName('first-contentful-paint')[0];
          return fcp ? fcp.startTime : -1;
        }),
      );
    }
    await page.click('#tab-Live');
    await page.waitForSelector('table.live tbody tr');
    // Frame times on the live page for SECONDS while the feed runs.
    // A script in text: tsx would wrap named functions in a helper the page does not have.
    const frames = (await page.evaluate(`new Promise((resolve) => {
      const deltas = [];
      let last = performance.now();
      const end = last + ${SECONDS * 1000};
      function step(t) {
        deltas.push(t - last);
        last = t;
        if (t < end) requestAnimationFrame(step);
        else resolve(deltas);
      }
      requestAnimationFrame(step);
    })`)) as number[];
    const shown = await page.locator('.hint').first().innerText();
    const loaded = rssMb(agent.child.pid!);
    const out = {
      rate: RATE,
      seconds: SECONDS,
      firstPaintMs: { median: percentile(paints, 50), all: paints.map((p) => Math.round(p)) },
      frameMs: {
        frames: frames.length,
        p50: percentile(frames, 50),
        p99: percentile(frames, 99),
        max: Math.max(...frames),
        over50ms: frames.filter((f) => f > 50).length,
      },
      pageSaid: shown,
      agentRssMb: { idle: Math.round(idle.rss), underLoad: Math.round(loaded.rss), peak: Math.round(loaded.peak) },
    };
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  } finally {
    await browser.close();
    await agent.stop();
    server.close();
    dir.remove();
  }
}

await main();
