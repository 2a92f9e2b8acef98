// The bench harness, small: every scenario runs against every system (OpenSnitch aside) and
// records what it measured. Figures are not judged here (bench/ reports ratios); that the
// harness works, and that no connection failed under any system, is.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO, tempDir } from './support/bastion.js';

/** Runs a command to its end and collects what it printed. */
function run(cmd: string, args: string[], cwd: string): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stderr })));
}

interface Row {
  scenario: string;
  system: string;
  result: { count: number; p50: number; p99: number; perSecond: number; failures: number; ebpfMicros?: number | null };
}

describe('bench harness (smoke)', () => {
  it('runs every scenario against no firewall, both readers and Bastion queued and in the kernel', { timeout: 600_000 }, async () => {
    const dir = tempDir('bastion-bench-smoke-');
    try {
      const out = join(dir.path, 'results.json');
      const bench = await run(process.execPath, ['--import', 'tsx', join(REPO, 'bench', 'run.ts'), '--smoke', '--bpf-stats', `--out=${out}`], REPO);
      assert.equal(bench.code, 0, bench.stderr.slice(-2000));
      const results = JSON.parse(readFileSync(out, 'utf8')) as {
        smoke: boolean;
        sizes: Record<string, number>;
        goalLines: string[];
        rows: Row[];
        prompt_isolation: { prompt: { app_name: string; learning_mode: boolean } };
        attribution: { output: string };
        soak: { connections: number; helper: { rssKiB: number; cpuMs: number }; service: { rssKiB: number } }[];
      };
      assert.equal(results.smoke, true);
      const sizes = { 'tcp sequential': results.sizes['seq'], 'tcp 16 parallel': results.sizes['par'], 'udp new flows': results.sizes['udp'] };
      for (const system of ['none', 'c-queue', 'js-queue', 'bastion', 'bastion-kernel']) {
        for (const [scenario, count] of Object.entries(sizes)) {
          const row = results.rows.find((r) => r.system === system && r.scenario === scenario);
          assert.ok(row, `no ${scenario} row for ${system}`);
          assert.equal(row.result.count, count, `${scenario} against ${system}`);
          assert.equal(row.result.failures, 0, `${scenario} against ${system}`);
          assert.ok(row.result.perSecond > 0 && row.result.p50 > 0 && row.result.p99 >= row.result.p50);
        }
      }
      // --bpf-stats: Bastion's programs ran for its connections, and nothing of ours without it.
      for (const scenario of Object.keys(sizes)) {
        const ebpf = (system: string) => results.rows.find((r) => r.system === system && r.scenario === scenario)?.result.ebpfMicros;
        assert.equal(ebpf('none'), 0, scenario);
        assert.ok((ebpf('bastion-kernel') ?? 0) > 0, `${scenario}: ${ebpf('bastion-kernel')}`);
      }
      // A program denied by a path rule: every connect() failed with EPERM, and was timed.
      const eperm = results.rows.filter((r) => r.scenario === 'time to EPERM');
      assert.deepEqual(
        eperm.map((r) => [r.system, r.result.count, r.result.failures]),
        [['bastion-kernel', results.sizes['eperm'], 0]],
      );
      assert.ok(eperm[0]!.result.p99 >= eperm[0]!.result.p50 && eperm[0]!.result.p50 > 0);
      // Each goal is stated beside its figure (whether met is for the real run to say).
      assert.ok(
        results.goalLines.some((l) => l.includes('allowed by rule, udp new flows')),
        results.goalLines.join('\n'),
      );
      assert.ok(
        results.goalLines.some((l) => l.includes('Bastion queued, tcp 16 parallel')),
        results.goalLines.join('\n'),
      );
      // The prompt was really open (curl has no rule) while the allowed connections were measured.
      assert.deepEqual([results.prompt_isolation.prompt.app_name, results.prompt_isolation.prompt.learning_mode], ['curl', false]);
      assert.equal(results.rows.filter((r) => r.scenario.startsWith('tcp seq, ')).length, 2);
      const credited = [...results.attribution.output.matchAll(/(\d+)\/(\d+) credited correctly/g)];
      assert.ok(credited.length >= 2, results.attribution.output);
      for (const [, right, all] of credited) assert.equal(right, all, results.attribution.output);
      assert.deepEqual(
        results.soak.map((s) => s.connections),
        [0, 5000, 10_000, 15_000, 20_000],
      );
      for (const s of results.soak) assert.ok(s.helper.rssKiB > 0 && s.service.rssKiB > 0);
    } finally {
      dir.remove();
    }
  });
});
