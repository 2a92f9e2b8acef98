// What Bastion's eBPF programs cost (`--bpf-stats`): their run time, which the kernel counts per
// program while kernel.bpf_stats_enabled is 1. It is firewall CPU spent inside the connecting
// program's own system calls, so the helper's and service's /proc/PID/stat never show it.
// Counting costs two clock reads per run, which the measured rates then carry.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

const SYSCTL = '/proc/sys/kernel/bpf_stats_enabled';

/** Turns the kernel's counting on; returns what turns it back to how it was. */
export function enableBpfStats(): () => void {
  const before = readFileSync(SYSCTL, 'utf8').trim();
  writeFileSync(SYSCTL, '1\n');
  return () => writeFileSync(SYSCTL, `${before}\n`);
}

/** Nanoseconds Bastion's programs (named bastion_*) have run, all together, so far. */
export function bastionProgramNs(): number {
  const programs = JSON.parse(execFileSync('bpftool', ['--json', 'prog', 'show'], { encoding: 'utf8' })) as { name?: string; run_time_ns?: number }[];
  return programs.filter((p) => p.name?.startsWith('bastion_')).reduce((sum, p) => sum + (p.run_time_ns ?? 0), 0);
}
