// Starts the real `bastion helper` / `bastion daemon` processes for tests and reads their
// JSON logs, so a test can wait for "helper started" instead of sleeping.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(REPO, 'cli', 'bastion.ts');
export const TSX = join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs');

export interface LogLine {
  msg?: string;
  level?: number;
  [key: string]: unknown;
}

export class BastionProcess {
  readonly lines: LogLine[] = [];
  private readonly waiters: { test: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  readonly exited: Promise<number | null>;

  /**
   * The child logs into a file, never a pipe: a test blocked in a synchronous call (curl,
   * ping) would stop draining a pipe, and a full pipe would stall the child's logging and so
   * its verdicts. The file is read on a short timer instead.
   */
  constructor(
    readonly child: ChildProcess,
    private readonly logFd: number,
  ) {
    let buf = '';
    let offset = 0;
    const chunk = Buffer.alloc(1 << 16);
    const drain = (): void => {
      for (;;) {
        const n = readSync(this.logFd, chunk, 0, chunk.length, offset);
        if (n <= 0) break;
        offset += n;
        buf += chunk.toString('utf8', 0, n);
      }
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const text = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let line: LogLine;
        try {
          line = JSON.parse(text) as LogLine;
        } catch {
          line = { msg: text };
        }
        if (process.env['BASTION_TEST_VERBOSE']) process.stderr.write(`[${child.pid}] ${text}\n`);
        this.lines.push(line);
        for (let i = this.waiters.length - 1; i >= 0; i--) {
          if (this.waiters[i]!.test(line)) this.waiters.splice(i, 1)[0]!.resolve(line);
        }
      }
    };
    const timer = setInterval(drain, 20);
    child.stdout?.resume();
    child.once('exit', () => {
      drain();
      clearInterval(timer);
      closeSync(this.logFd);
    });
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  /** Resolves with the first log line (past or future) whose msg includes `text`. */
  waitFor(text: string, timeoutMs = 15000): Promise<LogLine> {
    const test = (l: LogLine): boolean => typeof l.msg === 'string' && l.msg.includes(text);
    const seen = this.lines.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(
            `no log line "${text}" within ${timeoutMs} ms; last lines:\n${this.lines
              .slice(-10)
              .map((l) => JSON.stringify(l))
              .join('\n')}`,
          ),
        );
      }, timeoutMs);
      this.waiters.push({
        test,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
    });
  }

  count(text: string): number {
    return this.lines.filter((l) => typeof l.msg === 'string' && l.msg.includes(text)).length;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10000): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

let logCounter = 0;

/** `bastion <args>` as a child process, optionally inside a network namespace. */
/** `logLevel`: the child's BASTION_LOG_LEVEL (default: ours, else info); `wrapper`: a command that runs node (setpriv ...); `env`: more variables. */
export function startBastion(
  args: string[],
  netns?: string,
  logLevel?: string,
  wrapper: readonly string[] = [],
  env: Readonly<Record<string, string>> = {},
): BastionProcess {
  // BASTION_NODE_ARGS: extra node flags for profiling (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
  const extraNodeArgs = (process.env['BASTION_NODE_ARGS'] ?? '').split(' ').filter(Boolean);
  const node = [...wrapper, process.execPath, ...extraNodeArgs, '--import', TSX, CLI, ...args];
  // nsenter, not `ip netns exec`: only the network namespace changes, as for the real unit;
  // ip netns exec also mounts a new /sys, without the cgroup v2 the helper's eBPF attaches to.
  const [cmd, ...rest] = netns ? ['nsenter', `--net=/run/netns/${netns}`, '--', ...node] : node;
  const logPath = join(tmpdir(), `bastion-log-${process.pid}-${logCounter++}.jsonl`);
  const writeFd = openSync(logPath, 'w', 0o600);
  const readFd = openSync(logPath, 'r');
  unlinkSync(logPath); // both fds keep the file; nothing is left behind
  const child = spawn(cmd!, rest, {
    stdio: ['ignore', 'pipe', writeFd],
    env: { ...process.env, ...env, BASTION_LOG_LEVEL: logLevel ?? process.env['BASTION_LOG_LEVEL'] ?? 'info' },
  });
  closeSync(writeFd);
  return new BastionProcess(child, readFd);
}

export function tempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}
