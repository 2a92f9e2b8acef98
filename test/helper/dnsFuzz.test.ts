// Fuzzing of the DNS answer reader (helper/dns/dnsAnswers.ts): random buffers and mutations of
// valid answers (bit flips, cuts, splices, compression pointers aimed anywhere) never throw, and
// whatever they yield is within the caps and the host-name grammar. CI runs 100,000 cases;
// BASTION_FUZZ_CASES=1000000 (npm run test:full) runs the full size.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encode, RECURSION_DESIRED, type Answer } from 'dns-packet';
import { normalizeHostName } from '../../common/hostName.js';
import { addressesFromAnswer, MAX_ADDRESSES_PER_ANSWER } from '../../helper/dns/dnsAnswers.js';
import { rng } from '../support/packetMutations.js';

const CASES = Number(process.env['BASTION_FUZZ_CASES'] ?? 100_000);

const SEEDS: Uint8Array[] = [
  encode({
    type: 'response',
    id: 1,
    flags: RECURSION_DESIRED,
    questions: [{ type: 'A', name: 'www.example.org' }],
    answers: [
      { type: 'CNAME', name: 'www.example.org', ttl: 30, data: 'edge.cdn.test' },
      { type: 'A', name: 'edge.cdn.test', ttl: 30, data: '192.0.2.1' },
      { type: 'A', name: 'edge.cdn.test', ttl: 30, data: '192.0.2.2' },
    ],
  }),
  encode({
    type: 'response',
    id: 2,
    questions: [{ type: 'AAAA', name: 'six.example.org' }],
    answers: [{ type: 'AAAA', name: 'six.example.org', ttl: 30, data: '2001:db8::1' } as Answer],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, options: [] } as unknown as Answer],
  }),
  encode({
    type: 'response',
    id: 3,
    questions: [{ type: 'A', name: 'a.b.c.d.e.f.g.example.org' }],
    answers: Array.from({ length: 20 }, (_, i) => ({ type: 'A' as const, name: 'a.b.c.d.e.f.g.example.org', ttl: i, data: `198.51.100.${i}` })),
  }),
];

function mutate(rand: (n: number) => number): Uint8Array {
  if (rand(10) === 0) return Uint8Array.from({ length: rand(600) }, () => rand(256)); // noise
  const base = SEEDS[rand(SEEDS.length)]!;
  const m = Uint8Array.from(base);
  const edits = 1 + rand(6);
  for (let e = 0; e < edits; e++) {
    const at = rand(m.length);
    switch (rand(5)) {
      case 0:
        m[at] = m[at]! ^ (1 << rand(8));
        break; // bit flip
      case 1:
        m[at] = rand(256);
        break; // byte
      case 2:
        m[at] = 0xc0 | rand(64);
        if (at + 1 < m.length) m[at + 1] = rand(256);
        break; // a pointer anywhere
      case 3:
        m[at] = rand(64);
        break; // a label length
      default:
        m[4 + rand(4)] = rand(256);
        break; // header counts
    }
  }
  const cut = rand(4) === 0 ? rand(m.length + 1) : m.length;
  return m.subarray(0, cut);
}

describe('DNS answer reader fuzzing', () => {
  it(`never throws on ${CASES.toLocaleString('en')} random and mutated answers, and yields only checked names`, () => {
    const rand = rng(0xd45);
    let withNames = 0;
    for (let i = 0; i < CASES; i++) {
      const message = mutate(rand);
      let out: ReturnType<typeof addressesFromAnswer>;
      try {
        out = addressesFromAnswer(message);
      } catch (err) {
        assert.fail(`case ${i} threw ${(err as Error).message} on ${Buffer.from(message).toString('hex')}`);
      }
      assert.ok(out.length <= MAX_ADDRESSES_PER_ANSWER);
      for (const a of out) {
        assert.equal(normalizeHostName(a.name), a.name);
        assert.ok(a.address.length === 4 || a.address.length === 16);
      }
      if (out.length > 0) withNames++;
    }
    // The fuzzer reached both sides: answers still read and answers refused.
    assert.ok(withNames > 0 && withNames < CASES, `${withNames} of ${CASES} yielded names`);
  });
});
