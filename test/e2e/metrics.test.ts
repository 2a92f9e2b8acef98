// The metrics file end to end: real traffic through the real helper and service in test
// namespaces, then bastion.prom read by a Prometheus text-format parser.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { describe, it } from 'node:test';
import { tempDir } from '../support/bastion.js';
import { TestFirewall } from '../support/firewall.js';
import { parsePromText, sampleValue, type ParsedFamily } from '../support/promParse.js';

const CURL = '/usr/bin/curl';

async function waitForMetrics(path: string, ready: (f: Map<string, ParsedFamily>) => boolean): Promise<Map<string, ParsedFamily>> {
  let last = new Map<string, ParsedFamily>();
  for (let i = 0; i < 100; i++) {
    if (existsSync(path)) {
      last = parsePromText(readFileSync(path, 'utf8'));
      if (ready(last)) return last;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`metrics never showed what was expected; last: ${JSON.stringify([...last.values()])}`);
}

describe('the metrics file', () => {
  it('counts an allowed HTTP request and a denied ping by verdict and reason, with the helper counters', async () => {
    // node_exporter's textfile directory stands in as a directory of the test's own.
    const textfileDir = tempDir('bastion-textfile-');
    const fw = new TestFirewall({ rules: { [`${CURL}:80`]: true }, daemonArgs: ['--metrics-dir', textfileDir.path, '--metrics-interval', '1'] });
    try {
      await fw.start();
      assert.equal(fw.http(fw.net.serverV4), true, 'HTTP request failed');
      assert.equal(fw.ping(fw.net.serverV4), false, 'ping got a reply');
      const path = `${textfileDir.path}/bastion.prom`;
      const families = await waitForMetrics(
        path,
        (f) =>
          (sampleValue(f, 'bastion_decisions_total', { verdict: 'deny', reason: 'default' }) ?? 0) >= 1 && sampleValue(f, 'bastion_helper_connected') === 1,
      );
      assert.equal(sampleValue(families, 'bastion_decisions_total', { verdict: 'allow', reason: 'rule' }), 1);
      assert.equal(sampleValue(families, 'bastion_decisions_total', { verdict: 'deny', reason: 'default' }), 1);
      assert.ok((sampleValue(families, 'bastion_helper_packets_total') ?? 0) >= 1, 'the helper counted no packet');
      assert.equal(sampleValue(families, 'bastion_prompts_asked_total'), 0, 'nobody could be asked');
      assert.equal(families.get('bastion_decisions_total')?.type, 'COUNTER');
      assert.equal(statSync(path).mode & 0o777, 0o644);
      const status = await fw.status();
      assert.deepEqual(status['metrics'], { file: path, writes: (status['metrics'] as { writes: number }).writes, error: null });
    } finally {
      await fw.close();
      textfileDir.remove();
    }
  });
});
