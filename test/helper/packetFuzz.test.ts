// Fuzzing of the packet parser: random buffers and mutations of valid packets (bit flips,
// cuts, splices, extension-header chains) never throw or hang. CI runs 100,000 cases;
// BASTION_FUZZ_CASES=1000000 (npm run test:full) runs the full size.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newParsedPacket, parsePacket } from '../../helper/packet.js';
import { mutate, rng } from '../support/packetMutations.js';

const CASES = Number(process.env['BASTION_FUZZ_CASES'] ?? 100_000);

describe('packet parser fuzzing', () => {
  it(`never throws on ${CASES.toLocaleString('en')} random and mutated packets`, () => {
    const rand = rng(0x5eed);
    const out = newParsedPacket();
    const outcomes = new Map<string, number>();
    for (let i = 0; i < CASES; i++) {
      const packet = mutate(rand);
      let result: string | null;
      try {
        result = parsePacket(packet, out);
      } catch (err) {
        assert.fail(`case ${i} threw ${(err as Error).message} on ${Buffer.from(packet).toString('hex')}`);
      }
      if (result === null) {
        assert.ok(out.family === 4 || out.family === 6);
        assert.ok(out.srcPort >= 0 && out.srcPort <= 65535 && out.dstPort >= 0 && out.dstPort <= 65535);
      }
      const key = result ?? 'ok';
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    }
    // The fuzzer reached both sides: accepted packets and each kind of refusal.
    for (const kind of ['ok', 'truncated', 'bad-version']) assert.ok((outcomes.get(kind) ?? 0) > 0, `no "${kind}" outcome`);
  });
});
