// Host/IP lists at size (lists.d, service/lists): a 1,000,000-entry list (900,000 names in
// hosts-file format, 100,000 IPv4 addresses) parsed as the service parses it, then what one
// connection's lookup costs, against a baseline measured in the same run (the same lookups in a
// list of 10 entries), and what the list holds in memory (heap and RSS after a full GC, against
// the same process before it loaded). Usage: node --expose-gc --import tsx bench/lists.ts [entries]
import { performance } from 'node:perf_hooks';
import { parseList } from '../service/lists/hostLists.js';
import type { HostList } from '../service/lists/hostList.js';

const N = Number(process.argv[2] ?? 1_000_000);
const NAMES = Math.floor(N * 0.9);
const ROUNDS = 2_000_000;

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (!collect) throw new Error('run with node --expose-gc');
  collect();
  collect();
}

function listText(names: number, addresses: number): string {
  const lines: string[] = ['# generated for bench/lists.ts'];
  for (let i = 0; i < names; i++) lines.push(`0.0.0.0 t${i}.ads${i % 1000}.example`);
  for (let i = 0; i < addresses; i++) lines.push(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  return lines.join('\n') + '\n';
}

/** ns per lookup over ROUNDS lookups cycling through the probes. */
function timeLookups(list: HostList, probes: { addr: Uint8Array; host: string }[]): number {
  let hits = 0;
  const start = performance.now();
  for (let i = 0; i < ROUNDS; i++) {
    const p = probes[i % probes.length]!;
    if (list.hasAddress(p.addr) || list.hasName(p.host)) hits++;
  }
  const ns = ((performance.now() - start) * 1e6) / ROUNDS;
  if (hits < 0) console.log(hits); // keeps the loop from being optimized away
  return ns;
}

const probeSets = {
  'listed name (one level below an entry)': [{ addr: Uint8Array.of(198, 51, 100, 7), host: 'cdn.t4242.ads242.example' }],
  'unlisted name (4 labels)': [{ addr: Uint8Array.of(198, 51, 100, 7), host: 'www.static.example.org' }],
  'listed address': [{ addr: Uint8Array.of(10, 1, 2, 3), host: 'x.example.org' }],
  'unlisted address, no name': [{ addr: Uint8Array.of(198, 51, 100, 7), host: '' }],
};

async function main(): Promise<void> {
  const small = await parseList(listText(9, 1));
  gc();
  const before = process.memoryUsage();
  let text: string | null = listText(NAMES, N - NAMES);
  const textBytes = Buffer.byteLength(text);
  const t0 = performance.now();
  const big = await parseList(text);
  const loadMs = performance.now() - t0;
  text = null;
  gc();
  const after = process.memoryUsage();
  const lookups: Record<string, { ns: number; baselineNs: number; ratio: number }> = {};
  for (const [name, probes] of Object.entries(probeSets)) {
    timeLookups(big, probes); // warm up
    timeLookups(small, probes);
    const ns = timeLookups(big, probes);
    const baselineNs = timeLookups(small, probes);
    lookups[name] = { ns: round(ns), baselineNs: round(baselineNs), ratio: round(ns / baselineNs) };
  }
  console.log(
    JSON.stringify(
      {
        entries: big.size,
        badLines: big.stats.badLines,
        fileMiB: round(textBytes / 2 ** 20),
        loadMs: Math.round(loadMs),
        heapDeltaMiB: round((after.heapUsed - before.heapUsed) / 2 ** 20),
        rssDeltaMiB: round((after.rss - before.rss) / 2 ** 20),
        bytesPerEntry: Math.round((after.heapUsed - before.heapUsed) / big.size),
        lookups,
        note: 'baseline: the same lookups in a 10-entry list, same run; ratio = 1,000,000 entries / baseline',
      },
      null,
      2,
    ),
  );
  if (big.size === 0) console.log(small.size);
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

await main();
