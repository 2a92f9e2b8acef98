// The Prometheus text the service writes, read back by a real text-format parser.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bastionMetrics } from '../../service/metrics/bastionMetrics.js';
import { promText } from '../../service/metrics/promText.js';
import { parsePromText, sampleValue } from '../support/promParse.js';

describe('Prometheus text format', () => {
  it('escapes label values and help text so a parser reads them back unchanged', () => {
    const value = 'a "quoted" \\ back\nslash';
    const text = promText([{ name: 'x_total', help: 'line\none \\ two', type: 'counter', samples: [{ labels: { v: value }, value: 3 }] }]);
    const parsed = parsePromText(text).get('x_total');
    assert.equal(parsed?.type, 'COUNTER');
    assert.equal(parsed?.help, 'line\none \\ two');
    assert.equal(parsed?.metrics[0]?.labels?.['v'], value);
    assert.equal(parsed?.metrics[0]?.value, '3');
  });

  it('refuses a metric name Prometheus could not read', () => {
    assert.throws(() => promText([{ name: 'bad-name', help: '', type: 'gauge', samples: [] }]), /invalid metric name "bad-name"/);
  });

  it('exports decisions by verdict and reason, prompts, and the helper counters', () => {
    const families = parsePromText(
      promText(
        bastionMetrics({
          decisionsByVerdictReason: new Map([
            ['allow rule', 4],
            ['deny timeout', 2],
          ]),
          decisionsByAttribution: new Map([['lookup_timeout', 1]]),
          prompts: { asked: 3, answered: 1, timedOut: 2, limited: 0, open: 0 },
          helperConnected: true,
          helper: {
            packets: 9,
            malformed: 0,
            overruns: 1,
            fallbackVerdicts: 2,
            pending: 0,
            badFrames: 0,
            cacheHits: 3,
            fastAnswered: 1,
            kernelDecided: 5,
            kernelReportsLost: 0,
            floodDrops: 7,
            lookupRetries: 5,
            fastByFlow: 4,
          },
          inbound: 'bastion',
          startedAtMs: 1_700_000_000_000,
        }),
      ),
    );
    assert.equal(sampleValue(families, 'bastion_decisions_total', { verdict: 'allow', reason: 'rule' }), 4);
    assert.equal(sampleValue(families, 'bastion_decisions_total', { verdict: 'deny', reason: 'timeout' }), 2);
    assert.equal(sampleValue(families, 'bastion_identifications_total', { attribution: 'lookup_timeout' }), 1);
    assert.equal(sampleValue(families, 'bastion_prompts_timed_out_total'), 2);
    assert.equal(sampleValue(families, 'bastion_helper_flood_drops_total'), 7);
    assert.equal(sampleValue(families, 'bastion_helper_lookup_retries_total'), 5);
    assert.equal(sampleValue(families, 'bastion_helper_fast_path_flow_hits_total'), 4);
    assert.equal(sampleValue(families, 'bastion_helper_kernel_decisions_total'), 5);
    assert.equal(sampleValue(families, 'bastion_inbound_state', { state: 'bastion' }), 1);
    assert.equal(sampleValue(families, 'bastion_start_time_seconds'), 1_700_000_000);
  });

  it('leaves out the helper counters while no helper is connected', () => {
    const families = parsePromText(
      promText(
        bastionMetrics({
          decisionsByVerdictReason: new Map(),
          decisionsByAttribution: new Map(),
          prompts: { asked: 0, answered: 0, timedOut: 0, limited: 0, open: 0 },
          helperConnected: false,
          helper: null,
          inbound: null,
          startedAtMs: 0,
        }),
      ),
    );
    assert.equal(sampleValue(families, 'bastion_helper_connected'), 0);
    assert.equal(families.has('bastion_helper_packets_total'), false);
  });
});
