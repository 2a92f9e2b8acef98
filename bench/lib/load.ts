// Runs the C load client in the client namespace and summarizes what it measured.
import type { TestNetwork } from '../../test/support/netns.js';
import { summarize, type LatencySummary } from './stats.js';

export interface LoadResult extends LatencySummary {
  perSecond: number;
  failures: number;
  /** CPU time the firewall's processes spent per connection (set by the caller). */
  firewallCpuMicros?: number;
  /** CPU time the whole machine spent per connection, kernel included (set by the caller). */
  machineCpuMicros?: number;
  /** Run time of Bastion's eBPF programs per connection (set by the caller with --bpf-stats). */
  ebpfMicros?: number;
}

export async function runLoad(
  net: TestNetwork,
  client: string,
  protocol: 'tcp' | 'udp' | 'tcp-eperm',
  host: string,
  port: number,
  count: number,
  parallel = 1,
): Promise<LoadResult> {
  const r = await net.runAsync(net.client, client, [protocol, host, String(port), String(count), String(parallel)], 3_600_000);
  const summaryLine = r.stderr.trim().split('\n').pop() ?? '{}';
  const { seconds, failures } = JSON.parse(summaryLine) as { seconds: number; failures: number };
  const samples = r.stdout.trim().split('\n').filter(Boolean).map(Number);
  return { ...summarize(samples), perSecond: count / seconds, failures };
}
