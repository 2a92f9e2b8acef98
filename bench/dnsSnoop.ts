// What reading DNS answers for host names costs (helper/dns/dnsSnoop.ts):
// 1. the parse alone: addressesFromAnswer on a typical answer (a CNAME and two addresses);
// 2. end to end: the round trip of DNS queries from the client namespace to a DNS server in
//    the server namespace, with no firewall, with the firewall but without host names
//    (--no-host-names), and with them. Every answer after the first is an established reply,
//    so it passes the DNS queue and nothing else: the difference is the snooping.
// Run: npm run --silent build:native && tsx bench/dnsSnoop.ts [--queries=3000]
import { encode, RECURSION_DESIRED } from 'dns-packet';
import { writeFileSync } from 'node:fs';
import { addressesFromAnswer } from '../helper/dns/dnsAnswers.js';
import { TestFirewall } from '../test/support/firewall.js';
import { TestNetwork } from '../test/support/netns.js';

const QUERIES = Number(/--queries=(\d+)/.exec(process.argv.join(' '))?.[1] ?? 3000);

const SERVER = `
const dgram = require('dgram');
const s = dgram.createSocket('udp4');
s.on('message', (q, peer) => {
  const a = Buffer.concat([q.subarray(0, 2), Buffer.from([0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]), q.subarray(12),
    Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 0, 2])]);
  s.send(a, peer.port, peer.address);
});
s.bind(53, process.argv[1]);
`;

const CLIENT = `
const dgram = require('dgram');
const [server, n] = [process.argv[1], Number(process.argv[2])];
const s = dgram.createSocket('udp4');
const q = Buffer.from('00000100000100000000000003777777076578616d706c65047465737400000100 01'.replace(/ /g, ''), 'hex');
const times = [];
let t0 = 0, i = 0;
s.on('message', () => {
  times.push(Number(process.hrtime.bigint() - t0) / 1000);
  if (++i === n) {
    times.sort((a, b) => a - b);
    console.log(JSON.stringify({ p50: times[Math.floor(n / 2)], p99: times[Math.floor(n * 0.99)] }));
    process.exit(0);
  }
  send();
});
function send() { q.writeUInt16BE(i & 0xffff, 0); t0 = process.hrtime.bigint(); s.send(q, 53, server); }
send();
`;

function parseCost(): number {
  const answer = encode({
    type: 'response',
    id: 1,
    flags: RECURSION_DESIRED,
    questions: [{ type: 'A', name: 'www.example.org' }],
    answers: [
      { type: 'CNAME', name: 'www.example.org', ttl: 30, data: 'www.example.org.cdn.test' },
      { type: 'A', name: 'www.example.org.cdn.test', ttl: 30, data: '192.0.2.1' },
      { type: 'A', name: 'www.example.org.cdn.test', ttl: 30, data: '192.0.2.2' },
    ],
  });
  for (let i = 0; i < 20_000; i++) addressesFromAnswer(answer); // warm up
  const n = 200_000;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) addressesFromAnswer(answer);
  return ((performance.now() - t0) * 1000) / n;
}

async function roundTrips(net: TestNetwork): Promise<{ p50: number; p99: number }> {
  const r = await net.runAsync(net.client, process.execPath, ['-e', CLIENT, net.serverV4, String(QUERIES)], 120_000);
  if (r.code !== 0) throw new Error(`DNS client failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { p50: number; p99: number };
}

async function withServer<T>(net: TestNetwork, fn: () => Promise<T>): Promise<T> {
  const server = net.spawn(net.server, process.execPath, ['-e', SERVER, net.serverV4]);
  try {
    await new Promise((r) => setTimeout(r, 300));
    return await fn();
  } finally {
    server.kill('SIGKILL');
  }
}

async function withFirewall(hostNames: boolean): Promise<{ p50: number; p99: number }> {
  const fw = new TestFirewall({ helperArgs: hostNames ? [] : ['--no-host-names'] });
  writeFileSync(fw.rulesPath, JSON.stringify({ [`@dest:${fw.net.serverV4}:53:*`]: true, [`@dest:${fw.net.serverV4}:80:*`]: true }));
  try {
    await fw.start();
    return await withServer(fw.net, () => roundTrips(fw.net));
  } finally {
    await fw.close();
  }
}

async function main(): Promise<void> {
  console.log(`parse: ${parseCost().toFixed(2)} µs per answer (CNAME + 2 A)`);
  const plain = TestNetwork.create();
  let none: { p50: number; p99: number };
  try {
    none = await withServer(plain, () => roundTrips(plain));
  } finally {
    plain.destroy();
  }
  const without = await withFirewall(false);
  const withNames = await withFirewall(true);
  const line = (name: string, r: { p50: number; p99: number }) =>
    `${name.padEnd(34)} p50 ${r.p50.toFixed(0).padStart(5)} µs  p99 ${r.p99.toFixed(0).padStart(6)} µs`;
  console.log(`DNS round trip, ${QUERIES} sequential queries:`);
  console.log(line('no firewall', none));
  console.log(line('firewall, --no-host-names', without));
  console.log(line('firewall, host names (snooping)', withNames));
}

await main();
