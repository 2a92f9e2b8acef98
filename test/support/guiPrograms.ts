// Programs for prompt tests: copies of curl under names of their own (each its own executable
// path and comm, so each is a different program to the firewall), run without blocking the test.
import { chmodSync, copyFileSync, mkdirSync } from 'node:fs';
import type { TestFirewall } from './firewall.js';

export function copyPrograms(fw: TestFirewall, names: readonly string[]): Record<string, string> {
  const dir = `${fw.dir.path}/bin`;
  mkdirSync(dir, { recursive: true });
  const out: Record<string, string> = {};
  for (const name of names) {
    const path = `${dir}/${name}`;
    copyFileSync('/usr/bin/curl', path);
    chmodSync(path, 0o755);
    out[name] = path;
  }
  return out;
}

export interface FetchResult {
  /** curl's exit code: 0 fetched, 28 timed out (a dropped SYN), 7 refused. */
  code: number | null;
  /** curl's time_connect: from start to TCP established, in ms (0 when it never connected). */
  connectMs: number;
  wallMs: number;
}

/** One HTTP GET from the client namespace to the server, asynchronously. */
export function fetchFrom(fw: TestFirewall, exe: string, timeoutS: number, host = fw.net.serverV4): Promise<FetchResult> {
  const started = performance.now();
  const url = host.includes(':') ? `http://[${host}]/` : `http://${host}/`;
  const child = fw.net.spawn(fw.net.client, exe, ['-s', '-o', '/dev/null', '-m', String(timeoutS), '-w', '%{time_connect}', url]);
  let out = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (d: string) => (out += d));
  child.stderr?.resume();
  return new Promise((resolve) => {
    child.once('exit', (code) => resolve({ code, connectMs: Number(out.trim() || '0') * 1000, wallMs: performance.now() - started }));
  });
}

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
