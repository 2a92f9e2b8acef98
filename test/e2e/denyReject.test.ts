// A connection the service denies fails at once: the helper sends it back through our chain
// with a mark its REJECT rules match (a TCP reset, an ICMP port unreachable), instead of a
// dropped SYN that the program retries until its own timeout (ssh 30 s, git 135 s).
// `--deny-with drop` keeps the old behaviour.
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { TestFirewall } from '../support/firewall.js';

/** Connects `count` times in sequence; prints each failure's code and time to it (ms), as JSON. */
const CLIENT = `
  const net = require('net');
  const [host, count] = [process.argv[1], Number(process.argv[2])];
  const out = [];
  (function next() {
    if (out.length === count) { process.stdout.write(JSON.stringify(out)); return; }
    const t = process.hrtime.bigint();
    const s = net.connect({ host, port: 80, timeout: 3000 });
    const done = (code) => { out.push([code, Number(process.hrtime.bigint() - t) / 1e6]); s.destroy(); next(); };
    s.once('connect', () => done('connected'));
    s.once('timeout', () => done('timeout'));
    s.once('error', (e) => done(e.code));
  })();`;

/** A connected UDP socket sends one datagram and waits for an answer or an error. */
const UDP_CLIENT = `
  import socket, sys
  s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
  s.connect((sys.argv[1], 5300)); s.settimeout(2)
  s.send(b'x')
  try:
    s.recv(16); print('answer')
  except ConnectionRefusedError:
    print('refused')
  except socket.timeout:
    print('timeout')`.replace(/^ {2}/gm, '');

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

describe('a denied connection', () => {
  let fw: TestFirewall;
  before(async () => {
    fw = await new TestFirewall({ config: { mode: 'enforcement', default_action: 'deny' } }).start();
  });
  after(async () => {
    await fw?.close();
  });

  it('is refused at once over TCP, IPv4 and IPv6 (a reset, not a dropped SYN)', async (t: TestContext) => {
    for (const host of [fw.net.serverV4, fw.net.serverV6]) {
      const r = await fw.net.runAsync(fw.net.client, process.execPath, ['-e', CLIENT, host, '50'], 60_000);
      const results = JSON.parse(r.stdout) as [string, number][];
      assert.deepEqual([...new Set(results.map(([code]) => code))], ['ECONNREFUSED'], r.stdout);
      const ms = results.map(([, time]) => time).sort((a, b) => a - b);
      t.diagnostic(`${host}: time to ECONNREFUSED over 50 denied connects: p50 ${percentile(ms, 50).toFixed(2)} ms, p99 ${percentile(ms, 99).toFixed(2)} ms`);
    }
    assert.equal(fw.connectionsReceived(), 0);
  });

  it('gets an ICMP port unreachable over UDP: a connected socket sees ECONNREFUSED', async () => {
    for (const host of [fw.net.serverV4, fw.net.serverV6]) {
      const r = await fw.net.runAsync(fw.net.client, 'python3', ['-c', UDP_CLIENT, host], 10_000);
      assert.equal(r.stdout.trim(), 'refused', r.stderr);
    }
  });

  it('the chain rejects only what carries its mark: an allowed program still gets out', async () => {
    await fw.close();
    fw = await new TestFirewall({ rules: { '/usr/bin/curl:80': true }, config: { mode: 'enforcement', default_action: 'deny' } }).start();
    assert.equal(fw.http(fw.net.serverV4), true);
  });
});

describe('--deny-with drop', () => {
  it('drops instead: the program waits for its own timeout', async () => {
    const fw = await new TestFirewall({ config: { mode: 'enforcement', default_action: 'deny' }, helperArgs: ['--deny-with', 'drop'] }).start();
    try {
      const r = await fw.net.runAsync(fw.net.client, process.execPath, ['-e', CLIENT.replace('timeout: 3000', 'timeout: 1500'), fw.net.serverV4, '1'], 20_000);
      assert.deepEqual(
        (JSON.parse(r.stdout) as [string, number][]).map(([code]) => code),
        ['timeout'],
      );
      assert.equal(fw.iptablesRules(4).includes('REJECT'), false);
    } finally {
      await fw.close();
    }
  });
});
