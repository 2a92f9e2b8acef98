// Runs test/support/queueProbeChild.ts inside a namespace: it binds a queue with the addon and
// answers packets as `mode` says, then reports what it saw as JSON on stdout.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { REPO } from './bastion.js';

export interface ProbeReport {
  packets: { packetId: number; hwProtocol: number; uid: number; outIfindex: number; firstByte: number; length: number }[];
  verdictOrder: number[];
  errors: string[];
  counters: { packets: number; overruns: number; verdictErrors: number; badMessages: number };
}

export interface QueueProbe {
  report(): Promise<ProbeReport>;
  stop(): Promise<void>;
}

export function startQueueProbe(netns: string, queueNum: number, mode: string): Promise<QueueProbe> {
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      netns,
      process.execPath,
      '--import',
      join(REPO, 'node_modules/tsx/dist/loader.mjs'),
      join(REPO, 'test/support/queueProbeChild.ts'),
      String(queueNum),
      mode,
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return new Promise((resolve, reject) => {
    const check = setInterval(() => {
      if (out.includes('READY\n')) {
        clearInterval(check);
        resolve({
          report: async () => {
            child.stdin.end('report\n');
            await exited;
            const line = out.split('\n').find((l) => l.startsWith('{'));
            if (!line) throw new Error(`probe printed no report: ${err}`);
            return JSON.parse(line) as ProbeReport;
          },
          stop: async () => {
            if (child.exitCode === null) child.kill('SIGKILL');
            await exited;
          },
        });
      }
    }, 20);
    void exited.then((code) => {
      clearInterval(check);
      if (!out.includes('READY\n')) reject(new Error(`probe exited (${code}): ${err.trim()}`));
    });
  });
}
