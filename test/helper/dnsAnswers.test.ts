import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encode, RECURSION_DESIRED, type Answer, type Packet } from 'dns-packet';
import { formatAddress } from '../../common/address.js';
import { addressesFromAnswer, MAX_ADDRESSES_PER_ANSWER } from '../../helper/dns/dnsAnswers.js';
import { dnsMessage } from '../../helper/dns/dnsSnoop.js';
import { HostNames } from '../../helper/dns/hostNames.js';

function answer(question: string, answers: Answer[], extra: Partial<Packet> = {}): Uint8Array {
  return encode({ type: 'response', id: 7, flags: RECURSION_DESIRED, questions: [{ type: 'A', name: question }], answers, ...extra });
}

function learned(message: Uint8Array): string[] {
  return addressesFromAnswer(message).map((a) => `${formatAddress(a.address)}=${a.name}/${a.ttlSeconds}`);
}

describe('addressesFromAnswer', () => {
  it('takes A and AAAA records of the question, named by the question in lower case without the final dot', () => {
    const m = answer('WWW.Example.ORG.', [
      { type: 'A', name: 'www.example.org', ttl: 300, data: '192.0.2.7' },
      { type: 'AAAA', name: 'www.example.org', ttl: 60, data: '2001:db8::7' },
    ]);
    assert.deepEqual(learned(m), ['192.0.2.7=www.example.org/300', '2001:db8::7=www.example.org/60']);
  });

  it('follows a CNAME chain in any order and names the addresses by the question', () => {
    const m = answer('www.example.org', [
      { type: 'A', name: 'edge.cdn.test', ttl: 20, data: '198.51.100.9' },
      { type: 'CNAME', name: 'www.example.org', ttl: 20, data: 'example.org.cdn.test' },
      { type: 'CNAME', name: 'example.org.cdn.test', ttl: 20, data: 'edge.cdn.test' },
    ]);
    assert.deepEqual(learned(m), ['198.51.100.9=www.example.org/20']);
  });

  it('ignores addresses for names the question does not lead to (no names slipped in)', () => {
    const m = answer(
      'www.example.org',
      [
        { type: 'A', name: 'www.example.org', ttl: 20, data: '192.0.2.1' },
        { type: 'A', name: 'bank.test', ttl: 20, data: '203.0.113.5' },
      ],
      { additionals: [{ type: 'A', name: 'www.example.org', ttl: 20, data: '203.0.113.6' }] },
    );
    assert.deepEqual(learned(m), ['192.0.2.1=www.example.org/20']);
  });

  it('refuses names with characters a terminal or a journal line could misread', () => {
    for (const bad of ['evil\u001b[31m.test', 'a b.test', 'x(y).test', 'ünï.test']) {
      assert.deepEqual(learned(answer(bad, [{ type: 'A', name: bad, ttl: 20, data: '192.0.2.1' }])), [], bad);
    }
  });

  it('learns nothing from a query, an error answer, or a question that is not A/AAAA', () => {
    const query = encode({ type: 'query', id: 1, flags: RECURSION_DESIRED, questions: [{ type: 'A', name: 'example.org' }] });
    assert.deepEqual(learned(query), []);
    const nxdomain = answer('example.org', [{ type: 'A', name: 'example.org', ttl: 20, data: '192.0.2.1' }], { flags: 3 });
    assert.deepEqual(learned(nxdomain), []);
    const mx = encode({
      type: 'response',
      id: 1,
      questions: [{ type: 'MX', name: 'example.org' }],
      answers: [{ type: 'A', name: 'example.org', ttl: 1, data: '192.0.2.1' }],
    });
    assert.deepEqual(learned(mx), []);
  });

  it(`takes at most ${MAX_ADDRESSES_PER_ANSWER} addresses from one answer`, () => {
    const many: Answer[] = Array.from({ length: 300 }, (_, i) => ({ type: 'A', name: 'pool.test', ttl: 20, data: `10.0.${i >> 8}.${i & 255}` }));
    assert.equal(addressesFromAnswer(answer('pool.test', many)).length, MAX_ADDRESSES_PER_ANSWER);
  });

  it('refuses a compression pointer loop and a cut message', () => {
    const m = answer('example.org', [{ type: 'A', name: 'example.org', ttl: 20, data: '192.0.2.1' }]);
    assert.deepEqual(learned(m.subarray(0, m.length - 3)), []);
    const loop = Uint8Array.from(m);
    loop[12] = 0xc0; // the question name points at itself
    loop[13] = 12;
    assert.deepEqual(learned(loop), []);
  });
});

describe('dnsMessage', () => {
  const msg = Uint8Array.from([1, 2, 3, 4]);
  it('is the UDP payload', () => {
    const d = new Uint8Array(8 + 4);
    d.set(msg, 8);
    assert.deepEqual([...dnsMessage(d, 17, 0, d.length)!], [1, 2, 3, 4]);
  });

  it('is a TCP segment holding one whole length-prefixed message, else nothing', () => {
    const d = new Uint8Array(20 + 2 + 4);
    d[12] = 5 << 4; // data offset: 20 bytes
    d[20] = 0;
    d[21] = 4;
    d.set(msg, 22);
    assert.deepEqual([...dnsMessage(d, 6, 0, d.length)!], [1, 2, 3, 4]);
    d[21] = 9; // announces more than the segment holds
    assert.equal(dnsMessage(d, 6, 0, d.length), null);
    d[21] = 4;
    d[12] = 4 << 4; // a data offset below the minimum header
    assert.equal(dnsMessage(d, 6, 0, d.length), null);
  });
});

describe('HostNames', () => {
  const v4 = (text: string) => Uint8Array.from(text.split('.').map(Number));

  it('keeps a name for its TTL clamped to the minimum, then forgets it', () => {
    let now = 0;
    const names = new HostNames({ now: () => now, minTtlMs: 60_000, maxTtlMs: 3_600_000 });
    names.learn(v4('192.0.2.1'), 'example.org', 5);
    now = 59_999;
    assert.equal(names.lookup(v4('192.0.2.1')), 'example.org');
    now = 60_000;
    assert.equal(names.lookup(v4('192.0.2.1')), undefined);
  });

  it('a day-long TTL is cut to the maximum', () => {
    let now = 0;
    const names = new HostNames({ now: () => now, minTtlMs: 1, maxTtlMs: 3_600_000 });
    names.learn(v4('192.0.2.1'), 'example.org', 86_400);
    now = 3_600_000;
    assert.equal(names.lookup(v4('192.0.2.1')), undefined);
  });

  it('the last answer for an address names it', () => {
    const names = new HostNames();
    names.learn(v4('192.0.2.1'), 'a.test', 300);
    names.learn(v4('192.0.2.1'), 'b.test', 300);
    assert.equal(names.lookup(v4('192.0.2.1')), 'b.test');
    assert.equal(names.size, 1);
  });

  it('stays within its size under a flood of answers, dropping the oldest first', () => {
    const names = new HostNames({ maxEntries: 1000 });
    const v6 = new Uint8Array(16);
    for (let i = 0; i < 100_000; i++) {
      names.learn(Uint8Array.from([10, (i >> 16) & 255, (i >> 8) & 255, i & 255]), `host${i}.test`, 300);
      v6[15] = i & 255;
      v6[14] = (i >> 8) & 255;
      names.learn(v6, `six${i}.test`, 300);
    }
    assert.equal(names.size, 1000);
    assert.equal(names.evicted, 199_000);
    assert.equal(names.lookup(Uint8Array.from([10, 1, 134, 159])), 'host99999.test');
    assert.equal(names.lookup(Uint8Array.from([10, 0, 0, 1])), undefined);
  });
});
