// What the service exports as metrics: its own decision and prompt counters and the helper's
// counters from its last heartbeat. Counters restart at 0 with their process (Prometheus'
// rate() handles resets); the helper's vanish while no helper is connected.
import type { Attribution } from '../../common/types.js';
import type { HelperCounters } from '../../common/wire.js';
import type { MetricFamily, Sample } from './promText.js';

export interface MetricsSource {
  decisionsByVerdictReason: ReadonlyMap<string, number>;
  decisionsByAttribution: ReadonlyMap<Attribution, number>;
  prompts: { asked: number; answered: number; timedOut: number; limited: number; open: number };
  helperConnected: boolean;
  helper: HelperCounters | null;
  /** The inbound policy's state (service/inbound), null before the helper said. */
  inbound: string | null;
  startedAtMs: number;
}

/** Helper counters exported as counters, with the help text each gets. */
const HELPER_COUNTERS: readonly [keyof HelperCounters, string, string][] = [
  ['packets', 'bastion_helper_packets_total', 'Packets the helper took from the queue.'],
  ['malformed', 'bastion_helper_malformed_packets_total', 'Queued packets that could not be parsed.'],
  ['overruns', 'bastion_helper_queue_overruns_total', 'Queue overruns (ENOBUFS): packets the kernel could not hand to the helper.'],
  ['floodDrops', 'bastion_helper_flood_drops_total', 'New connections dropped unasked because their user had too many waiting.'],
  ['lookupRetries', 'bastion_helper_lookup_retries_total', "Lookups of a packet's process that ran out of time and went on at a later turn."],
  ['fallbackVerdicts', 'bastion_helper_fallback_verdicts_total', 'Verdicts the helper applied itself because the service was absent or late.'],
  ['cacheHits', 'bastion_helper_cache_hits_total', "Packets answered from the helper's verdict cache."],
  [
    'fastByFlow',
    'bastion_helper_fast_path_flow_hits_total',
    "SYNs the helper's fast path answered with their caller from the flow note filter, not sock_diag.",
  ],
  ['kernelDecided', 'bastion_helper_kernel_decisions_total', 'Connections decided in the kernel (eBPF) by path rules.'],
  ['kernelReportsLost', 'bastion_helper_kernel_reports_lost_total', 'Reports of kernel decisions lost (the ring buffer was full).'],
  ['badFrames', 'bastion_helper_bad_frames_total', 'Undecodable frames the helper received from the service.'],
];

export function bastionMetrics(s: MetricsSource): MetricFamily[] {
  const decisions: Sample[] = [...s.decisionsByVerdictReason].map(([key, value]) => {
    const [verdict = '', reason = ''] = key.split(' ');
    return { labels: { verdict, reason }, value };
  });
  const identified: Sample[] = [...s.decisionsByAttribution].map(([attribution, value]) => ({ labels: { attribution }, value }));
  const families: MetricFamily[] = [
    {
      name: 'bastion_decisions_total',
      help: 'Connections decided, by verdict (allow, deny) and reason (rule, prompt, timeout, default, session, learning, localhost, lan, system-service).',
      type: 'counter',
      samples: decisions,
    },
    {
      name: 'bastion_identifications_total',
      help: "Decided connections by how their process was identified (lookup_timeout: not within the packet's time; kernel: decided in the kernel).",
      type: 'counter',
      samples: identified,
    },
    { name: 'bastion_prompts_asked_total', help: 'Prompts opened on the GUI clients.', type: 'counter', samples: [{ value: s.prompts.asked }] },
    { name: 'bastion_prompts_answered_total', help: 'Prompts a person answered.', type: 'counter', samples: [{ value: s.prompts.answered }] },
    {
      name: 'bastion_prompts_timed_out_total',
      help: 'Prompts unanswered within timeout_seconds: the default action applied.',
      type: 'counter',
      samples: [{ value: s.prompts.timedOut }],
    },
    {
      name: 'bastion_prompts_limited_total',
      help: 'Questions decided by the default at once because a prompt limit was reached.',
      type: 'counter',
      samples: [{ value: s.prompts.limited }],
    },
    { name: 'bastion_prompts_open', help: 'Prompts waiting for an answer now.', type: 'gauge', samples: [{ value: s.prompts.open }] },
    {
      name: 'bastion_helper_connected',
      help: 'Whether the root helper is connected (1) or not (0).',
      type: 'gauge',
      samples: [{ value: s.helperConnected ? 1 : 0 }],
    },
    {
      name: 'bastion_start_time_seconds',
      help: 'When the policy service started, in seconds since the epoch.',
      type: 'gauge',
      samples: [{ value: Math.floor(s.startedAtMs / 1000) }],
    },
  ];
  if (s.inbound !== null) {
    families.push({
      name: 'bastion_inbound_state',
      help: "Inbound protection: 1 for the state it is in (bastion: Bastion's own chains; other: another firewall drops inbound; off: none; error).",
      type: 'gauge',
      samples: [{ labels: { state: s.inbound }, value: 1 }],
    });
  }
  const helper = s.helper;
  if (helper) {
    for (const [field, name, help] of HELPER_COUNTERS) families.push({ name, help, type: 'counter', samples: [{ value: helper[field] }] });
    families.push({
      name: 'bastion_helper_pending_packets',
      help: 'Packets the helper holds now, waiting for a verdict.',
      type: 'gauge',
      samples: [{ value: helper.pending }],
    });
  }
  return families;
}
