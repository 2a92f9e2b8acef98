// `bastion prompt` and `bastion monitor` end to end: the real helper and service, the CLI as a
// child process. The prompt is driven by piped keys and, through script(1), by single keys on a
// real terminal in raw mode.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO } from '../support/bastion.js';
import { TestFirewall } from '../support/firewall.js';
import { copyPrograms, fetchFrom } from '../support/guiPrograms.js';

const TSX = join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs');
const CLI = join(REPO, 'cli', 'bastion.ts');
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*[A-Za-z]|\r/g;

/** A CLI child whose stdout is collected; `waitFor` resolves once the (uncoloured) text appears. */
class CliProcess {
  out = '';
  readonly exited: Promise<number | null>;
  private readonly waiters: { text: string; resolve: () => void }[] = [];

  constructor(readonly child: ChildProcess) {
    const collect = (d: string): void => {
      this.out += d;
      const plain = this.plain;
      for (let i = this.waiters.length - 1; i >= 0; i--) if (plain.includes(this.waiters[i]!.text)) this.waiters.splice(i, 1)[0]!.resolve();
    };
    // One transcript of both streams: the monitor says it is watching on stderr.
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', collect);
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', collect);
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  get plain(): string {
    return this.out.replace(ANSI, '');
  }

  waitFor(text: string, timeoutMs = 10_000): Promise<void> {
    if (this.plain.includes(text)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "${text}" within ${timeoutMs} ms in:\n${this.plain}`)), timeoutMs);
      this.waiters.push({ text, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }

  keys(text: string): void {
    this.child.stdin!.write(text);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    await this.exited;
  }
}

function bastionCli(args: string[], opts: { tty?: boolean } = {}): CliProcess {
  const argv = [process.execPath, '--import', TSX, CLI, ...args];
  const env = { ...process.env, NO_COLOR: '' };
  if (!opts.tty) return new CliProcess(spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env }));
  // script(1) runs the command on a pseudo-terminal and passes our piped keys to it.
  const command = argv.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  return new CliProcess(spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...env, TERM: 'xterm' } }));
}

let fw: TestFirewall;
let exe: Record<string, string>;
before(async () => {
  fw = new TestFirewall({ config: { mode: 'enforcement', timeout_seconds: 60 } });
  exe = copyPrograms(fw, ['curl-a', 'curl-b', 'curl-c']);
  writeFileSync(fw.rulesPath, JSON.stringify({ [`${exe['curl-c']}:80`]: true }, null, 2));
  await fw.start();
});
after(async () => {
  await fw?.close();
});

describe('bastion prompt', () => {
  it('shows program, path, destination, port, protocol and a countdown; p then a allows always on all ports', async () => {
    const prompt = bastionCli(['prompt', '--socket', fw.guiSocket]);
    try {
      await prompt.waitFor('waiting for connection requests', 20_000);
      const fetch = fetchFrom(fw, exe['curl-a']!, 20);
      await prompt.waitFor('curl-a wants to connect');
      for (const part of [
        `path         ${exe['curl-a']}`,
        `destination  ${fw.net.serverV4}:80`,
        'port         80',
        'protocol     TCP',
        ' 60 s  allow: o once',
      ]) {
        await prompt.waitFor(part);
      }
      prompt.keys('pa');
      assert.equal((await fetch).code, 0);
      await prompt.waitFor('→ allowed always (all ports)');
      for (let i = 0; i < 50 && !readFileSync(fw.rulesPath, 'utf8').includes(`${exe['curl-a']}:*`); i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal((JSON.parse(readFileSync(fw.rulesPath, 'utf8')) as Record<string, unknown>)[`${exe['curl-a']}:*`], true);
      prompt.keys('q');
      assert.equal(await prompt.exited, 0);
    } finally {
      await prompt.stop();
    }
  });

  it('on a real terminal: raw mode, one key without Enter, the countdown redrawn in place', async () => {
    const prompt = bastionCli(['prompt', '--socket', fw.guiSocket], { tty: true });
    try {
      await prompt.waitFor('waiting for connection requests', 20_000);
      const fetch = fetchFrom(fw, exe['curl-b']!, 5);
      await prompt.waitFor('curl-b wants to connect');
      await prompt.waitFor(' 58 s', 5000); // redrawn each second
      assert.ok(prompt.out.includes('\r\x1b[2K'), 'the countdown line was not redrawn in place');
      prompt.keys('O');
      await prompt.waitFor('→ denied once');
      assert.equal((await fetch).code, 7, 'curl-b was not blocked');
      prompt.keys('q');
      assert.equal(await prompt.exited, 0);
    } finally {
      await prompt.stop();
    }
  });
});

describe('bastion monitor', () => {
  it('prints one line per decision: verdict, program, destination, protocol and what decided', async () => {
    const monitor = bastionCli(['monitor', '--socket', fw.guiSocket]);
    try {
      await monitor.waitFor('watching decisions', 20_000);
      // The monitor answers no prompts: with it alone connected, curl-b gets the default at once.
      assert.equal((await fetchFrom(fw, exe['curl-c']!, 5)).code, 0);
      await monitor.waitFor(`ALLOW curl-c ${exe['curl-c']} → ${fw.net.serverV4}:80 TCP  [rule ${exe['curl-c']}:80]`);
      const started = performance.now();
      assert.equal((await fetchFrom(fw, exe['curl-b']!, 2)).code, 7);
      await monitor.waitFor(`DENY  curl-b ${exe['curl-b']} → ${fw.net.serverV4}:80 TCP  [default action]`);
      assert.ok(performance.now() - started < 5000);
      assert.equal(((await fw.status())['prompts'] as { open: number }).open, 0, 'a prompt was opened for a monitor');
    } finally {
      await monitor.stop();
    }
  });
});
