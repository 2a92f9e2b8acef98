// One-shot client processes for the attribution tests and bench/attribution.ts: the C client
// of test/fixtures/oneshot.c compiled once, hard-linked under many names (readlink of
// /proc/PID/exe shows the name a process was started through, so each name is a distinct
// executable path as the firewall sees it), and run from inside the client namespace.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, linkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LogLine } from './bastion.js';
import { REPO } from './bastion.js';
import type { TestNetwork } from './netns.js';

export const ONESHOT_SOURCE = join(REPO, 'test', 'fixtures', 'oneshot.c');

/** Compiles the client into dir; returns its path. */
export function buildOneshot(dir: string): string {
  const out = join(dir, 'oneshot');
  execFileSync('cc', ['-O2', '-Wall', '-o', out, ONESHOT_SOURCE], { stdio: 'pipe' });
  return out;
}

/** The binary under count distinct names `${prefix}-NNNN` in dir: hard links, else copies. */
export function nameCopies(binary: string, dir: string, prefix: string, count: number): string[] {
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = join(dir, `${prefix}-${String(i).padStart(4, '0')}`);
    try {
      linkSync(binary, name);
    } catch {
      copyFileSync(binary, name);
      execFileSync('chmod', ['755', name]);
    }
    names.push(name);
  }
  return names;
}

/** argv[0] is the executable. */
export type Job = string[];

export interface JobResult {
  pid: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

// Runs inside the client namespace: starts jobs `concurrency` at a time, prints the results.
const LAUNCHER = `
const { spawn } = require('child_process');
const jobs = JSON.parse(require('fs').readFileSync(process.argv[1], 'utf8'));
const concurrency = Number(process.argv[2]);
const results = new Array(jobs.length);
let next = 0, running = 0, finished = 0;
function start() {
  while (running < concurrency && next < jobs.length) {
    const i = next++;
    running++;
    const c = spawn(jobs[i][0], jobs[i].slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    c.on('error', (e) => (stderr += e.message));
    c.on('close', (code) => {
      results[i] = { pid: c.pid ?? 0, code, stdout, stderr };
      running--;
      if (++finished === jobs.length) process.stdout.write(JSON.stringify(results));
      else start();
    });
  }
}
if (jobs.length === 0) process.stdout.write('[]'); else start();
`;

/** Runs every job from inside ns, `concurrency` at a time; results in job order. */
export function runJobs(net: TestNetwork, ns: string, jobs: Job[], concurrency: number, dir: string, timeoutMs = 600_000): JobResult[] {
  const file = join(dir, `jobs-${Date.now()}-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(jobs));
  const r = net.run(ns, process.execPath, ['-e', LAUNCHER, file, String(concurrency)], timeoutMs);
  if (r.code !== 0) throw new Error(`launcher failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as JobResult[];
}

/**
 * UDP echo servers (dual-stack) on udpCount ports from udpPort, and a TCP listener that
 * closes each connection. One UDP port per process: conntrack keeps a UDP flow for 30 s
 * after its last packet, and among 1,000 kernel-chosen source ports a few repeat, so two
 * processes sending to one port would sometimes share a 5-tuple whose entry is not NEW any
 * more; such a packet never reaches the queue and nobody can be credited with it.
 */
const SERVERS = `
const [tcpPort, udpPort, udpCount] = process.argv.slice(1).map(Number);
const dgram = require('dgram');
let pending = udpCount + 1;
const ready = () => { if (--pending === 0) console.log('ready'); };
for (let port = udpPort; port < udpPort + udpCount; port++) {
  const s = dgram.createSocket({ type: 'udp6', ipv6Only: false });
  s.on('message', (m, r) => s.send(m, r.port, r.address));
  s.bind(port, '::', ready);
}
require('net').createServer((c) => { c.on('error', () => {}); c.end(); }).listen(tcpPort, '::', ready);
`;

/** Starts the servers in ns; resolves once they listen. Kill the child to stop them. */
export async function startServers(net: TestNetwork, ns: string, tcpPort: number, udpPort: number, udpCount = 1): Promise<ChildProcess> {
  const child = net.spawn(ns, process.execPath, ['-e', SERVERS, String(tcpPort), String(udpPort), String(udpCount)]);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`servers exited (${String(code)}): ${stderr}`)));
  });
  try {
    await ready;
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return child;
}

/** A decision the service logged (log_decisions: true), as read from its JSON log. */
export interface LoggedDecision {
  pid: number;
  exe: string | null;
  comm: string | null;
  destIp: string;
  port: number;
  protocol: string;
  attribution: string;
  lookupMicros: number;
}

/** Decisions for protocol ('TCP', 'UDP') to ports [port, port + ports). */
export function loggedDecisions(lines: readonly LogLine[], protocol: string, port: number, ports = 1): LoggedDecision[] {
  return lines
    .filter((l) => (l.msg === 'allowed' || l.msg === 'blocked') && l['protocol'] === protocol)
    .map((l) => l as unknown as LoggedDecision)
    .filter((d) => d.port >= port && d.port < port + ports);
}

export interface AttributionTally {
  /** Processes whose one connection was credited to their own executable. */
  correct: number;
  /** Decisions credited to an executable that was not the sender's, or to none. */
  wrong: LoggedDecision[];
  /** Senders with no decision at all. */
  missing: string[];
}

/**
 * Each of exes sent exactly one connection: a decision is correct when it names one of exes
 * not credited before. Anything else (another program, no program, a second credit) is wrong.
 */
export function tally(exes: readonly string[], decisions: readonly LoggedDecision[]): AttributionTally {
  const expected = new Set(exes);
  const credited = new Set<string>();
  const wrong: LoggedDecision[] = [];
  for (const d of decisions) {
    if (d.exe !== null && expected.has(d.exe) && !credited.has(d.exe)) credited.add(d.exe);
    else wrong.push(d);
  }
  return { correct: credited.size, wrong, missing: exes.filter((e) => !credited.has(e)) };
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
