// The fast path's own packet parser (native/src/fast_path.c, bq_flow_parse) against the
// helper's TS parser, on the same random and mutated packets: whatever the C parser accepts,
// the TS parser reads the same way. Run under ASan too (npm run test:asan).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadNative } from '../../common/native.js';
import { newParsedPacket, parsePacket } from '../../helper/packet.js';
import { mutate, rng, SEEDS } from '../support/packetMutations.js';

const CASES = Math.min(Number(process.env['BASTION_FUZZ_CASES'] ?? 100_000), 200_000);
const ETH_P_IP = 0x0800;
const ETH_P_IPV6 = 0x86dd;

const hwProtocolOf = (packet: Uint8Array): number => ((packet[0] ?? 0) >> 4 === 6 ? ETH_P_IPV6 : ETH_P_IP);

describe('the fast path packet parser', () => {
  const native = loadNative();

  it('reads the plain TCP and UDP seeds, and leaves ICMP, fragments and extension headers to JS', () => {
    const flows = SEEDS.map((p) => native.flowParse(hwProtocolOf(p), p));
    assert.deepEqual(flows, [
      { family: 4, protocol: 6, srcPort: 40000, dstPort: 80 },
      { family: 4, protocol: 17, srcPort: 54321, dstPort: 53 },
      null,
      null,
      null,
      { family: 6, protocol: 6, srcPort: 40000, dstPort: 80 },
    ]);
    assert.equal(native.flowParse(ETH_P_IPV6, SEEDS[0]!), null, 'an IPv4 packet announced as IPv6');
  });

  it(`agrees with the TS parser on every packet it accepts, over ${CASES.toLocaleString('en')} mutated packets`, () => {
    const rand = rng(0xfa57);
    const ts = newParsedPacket();
    let accepted = 0;
    for (let i = 0; i < CASES; i++) {
      const packet = mutate(rand);
      const hw = rand(8) === 0 ? rand(0x10000) : hwProtocolOf(packet);
      const flow = native.flowParse(hw, packet);
      if (flow === null) continue;
      accepted++;
      const error = parsePacket(packet, ts);
      const where = `case ${i}: ${Buffer.from(packet).toString('hex')}`;
      assert.equal(error, null, where);
      assert.equal(ts.isFragment, false, where);
      assert.deepEqual(
        { family: ts.family, protocol: ts.protocol, srcPort: ts.srcPort, dstPort: ts.dstPort },
        flow,
        where,
      );
    }
    assert.ok(accepted > CASES / 100, `only ${accepted} accepted: the mutations no longer reach the parser`);
  });
});
