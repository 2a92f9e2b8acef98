// Attribution end to end (docs/design.md, figure 3): the real helper in a client namespace and the
// real service in learning mode, which logs every decision with the executable the helper
// credited. The clients are copies of test/fixtures/oneshot.c under distinct names (with a
// space in each, which must survive), started from inside the client namespace: one-shot
// processes that connect once and exit, a long-running one among them, forked children, a
// program that execs another after opening its socket. Servers run in the server namespace.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestFirewall } from '../support/firewall.js';
import { buildOneshot, loggedDecisions, nameCopies, runJobs, startServers, tally, type Job, type JobResult, type LoggedDecision } from '../support/oneshot.js';

const ONE_SHOTS = 200;
const CONCURRENCY = 8;
const TCP_PORT = 7000;
/** One-shot UDP client i sends to UDP_PORT + i: no two share a 5-tuple (see startServers). */
const UDP_PORT = 20000;

let fw: TestFirewall;
let servers: ChildProcess | null = null;
let dir: string;
let oneshot: string;

before(async () => {
  fw = new TestFirewall({ config: { mode: 'learning', log_decisions: true } });
  await fw.start();
  servers = await startServers(fw.net, fw.net.server, TCP_PORT, UDP_PORT, ONE_SHOTS);
  dir = join(fw.dir.path, 'clients');
  mkdirSync(dir);
  oneshot = buildOneshot(dir);
});

after(async () => {
  servers?.kill('SIGKILL');
  await fw.close();
});

const host = (family: 4 | 6): string => (family === 4 ? fw.net.serverV4 : fw.net.serverV6);

/** Runs jobs from inside the client namespace; every one must succeed. */
function run(jobs: Job[], concurrency = CONCURRENCY): JobResult[] {
  const results = runJobs(fw.net, fw.net.client, jobs, concurrency, dir, 120_000);
  const failed = results.filter((r) => r.code !== 0);
  assert.equal(failed.length, 0, `${failed.length} clients failed, first: ${JSON.stringify(failed[0])}`);
  return results;
}

/** The decisions logged since mark for protocol to [port, port + ports), once want have arrived. */
async function decisionsSince(mark: number, want: number, protocol: 'TCP' | 'UDP', port: number, ports = 1): Promise<LoggedDecision[]> {
  const read = (): LoggedDecision[] => loggedDecisions(fw.daemon!.lines.slice(mark), protocol, port, ports);
  for (let i = 0; i < 200 && read().length < want; i++) await new Promise((r) => setTimeout(r, 50));
  return read();
}

const mark = (): number => fw.daemon!.lines.length;

/** Every connection credited to its own executable and to the pid that ran it. */
function assertEachCredited(exes: string[], results: JobResult[], decisions: LoggedDecision[]): void {
  const t = tally(exes, decisions);
  assert.deepEqual({ correct: t.correct, wrong: t.wrong, missing: t.missing }, { correct: exes.length, wrong: [], missing: [] });
  const pidOf = new Map(exes.map((exe, i) => [exe, results[i]!.pid]));
  const wrongPid = decisions.filter((d) => d.pid !== pidOf.get(d.exe ?? ''));
  assert.deepEqual(wrongPid, []);
}

describe('one-shot processes: each connection credited to its own executable', () => {
  for (const family of [4, 6] as const) {
    it(`${ONE_SHOTS} TCP clients over IPv${family}, each under its own name, connecting once and exiting`, async () => {
      const exes = nameCopies(oneshot, dir, `tcp v${family} client`, ONE_SHOTS);
      const since = mark();
      const results = run(exes.map((exe) => [exe, 'tcp', host(family), String(TCP_PORT)]));
      assertEachCredited(exes, results, await decisionsSince(since, ONE_SHOTS, 'TCP', TCP_PORT));
    });

    it(`${ONE_SHOTS} UDP clients over IPv${family}, each sending once and waiting for the reply`, async () => {
      const exes = nameCopies(oneshot, dir, `udp v${family} client`, ONE_SHOTS);
      const since = mark();
      const results = run(exes.map((exe, i) => [exe, 'udp', host(family), String(UDP_PORT + i)]));
      assertEachCredited(exes, results, await decisionsSince(since, ONE_SHOTS, 'UDP', UDP_PORT, ONE_SHOTS));
    });
  }
});

describe('processes that live longer, fork or exec', () => {
  it('a long-running process opening 100 connections among 50 one-shot clients gets every one of them', async () => {
    const [holder] = nameCopies(oneshot, dir, 'long running', 1);
    const exes = nameCopies(oneshot, dir, 'beside long running', 50);
    const since = mark();
    const jobs: Job[] = [[holder!, 'hold', '100', host(4), String(TCP_PORT)], ...exes.map((exe) => [exe, 'tcp', host(4), String(TCP_PORT)])];
    const [held, ...results] = run(jobs);
    const decisions = await decisionsSince(since, 150, 'TCP', TCP_PORT);
    const ofHolder = decisions.filter((d) => d.exe === holder);
    assert.equal(ofHolder.length, 100);
    assert.deepEqual(new Set(ofHolder.map((d) => d.pid)), new Set([held!.pid]));
    assertEachCredited(
      exes,
      results,
      decisions.filter((d) => d.exe !== holder),
    );
  });

  it("forked children's connections are credited to each child, not to their parent", async () => {
    const [forker] = nameCopies(oneshot, dir, 'forking client', 1);
    const since = mark();
    const [parent] = run([[forker!, 'fork', '10', host(4), String(TCP_PORT)]]);
    const children = parent!.stdout.trim().split('\n').map(Number);
    const decisions = await decisionsSince(since, 10, 'TCP', TCP_PORT);
    assert.deepEqual(
      decisions.map((d) => d.exe),
      Array(10).fill(forker),
    );
    assert.deepEqual(new Set(decisions.map((d) => d.pid)), new Set(children));
    assert.equal(children.includes(parent!.pid), false);
  });

  it('a connection made after exec is credited to the new program, the one before it to the old', async () => {
    const [first, second] = [...nameCopies(oneshot, dir, 'before exec', 1), ...nameCopies(oneshot, dir, 'after exec', 1)];
    const since = mark();
    const [ran] = run([[first!, 'exec', host(4), String(TCP_PORT), second!]]);
    const decisions = await decisionsSince(since, 2, 'TCP', TCP_PORT);
    assert.deepEqual(
      decisions.map((d) => [d.exe, d.pid]),
      [
        [first, ran!.pid],
        [second, ran!.pid],
      ],
    );
  });
});

describe('packets no process may be credited with', () => {
  it('a UDP datagram whose sender exited before the helper looked is credited to no one', async () => {
    const [sender] = nameCopies(oneshot, dir, 'gone sender', 1);
    const since = mark();
    // The helper cannot look while stopped; the datagram waits in the queue while its sender exits.
    fw.helper!.child.kill('SIGSTOP');
    try {
      run([[sender!, 'udp-send', host(4), String(UDP_PORT)]]);
    } finally {
      fw.helper!.child.kill('SIGCONT');
    }
    const [decision] = await decisionsSince(since, 1, 'UDP', UDP_PORT);
    assert.ok(decision, 'no decision logged');
    assert.equal(decision.exe, null);
    assert.equal(decision.pid, 0);
    assert.ok(['not_found', 'process_gone'].includes(decision.attribution), decision.attribution);
  });

  it("the kernel's own packets (VXLAN carrying ARP) are reported as no_socket and credited to no one", async (t) => {
    const net = fw.net;
    const ip = (...args: string[]): { code: number; stderr: string } => net.run(net.client, 'ip', args);
    const added = ip('link', 'add', 'bst-vx0', 'type', 'vxlan', 'id', '42', 'remote', net.serverV4, 'dstport', '4789');
    if (added.code !== 0) {
      t.skip(`no VXLAN in this kernel: ${added.stderr.trim()}`);
      return;
    }
    try {
      ip('addr', 'add', '198.19.7.1/24', 'dev', 'bst-vx0');
      ip('link', 'set', 'bst-vx0', 'up');
      const since = mark();
      net.run(net.client, 'ping', ['-c', '1', '-W', '1', '198.19.7.2']); // no answer: ARP goes out in VXLAN
      const decisions = await decisionsSince(since, 1, 'UDP', 4789);
      assert.ok(decisions.length >= 1, 'no decision for the VXLAN packets');
      for (const d of decisions) assert.deepEqual([d.exe, d.pid, d.attribution], [null, 0, 'no_socket']);
    } finally {
      ip('link', 'del', 'bst-vx0');
    }
  });
});
