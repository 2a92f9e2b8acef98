import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatAddress, newParsedPacket, parsePacket } from '../../helper/packet.js';
import type { ParsedPacket, ParseError } from '../../helper/packet.js';

/** Turns an annotated hex fixture into bytes: whitespace is ignored, '#' starts a comment. */
function hex(text: string): Uint8Array {
  const digits = text.replace(/#.*$/gm, '').replace(/\s+/g, '');
  if (!/^(?:[0-9a-f]{2})*$/i.test(digits)) throw new Error(`bad hex fixture: ${digits}`);
  const bytes = new Uint8Array(digits.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(digits.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

/** The parsed fields with addresses as text, so a whole result compares in one deepEqual. */
function summary(p: ParsedPacket) {
  return {
    family: p.family,
    protocol: p.protocol,
    src: formatAddress(p.srcAddr),
    dst: formatAddress(p.dstAddr),
    srcPort: p.srcPort,
    dstPort: p.dstPort,
    icmpType: p.icmpType,
    icmpCode: p.icmpCode,
    icmpEchoId: p.icmpEchoId,
    isFragment: p.isFragment,
  };
}
type Summary = ReturnType<typeof summary>;

// --- Fixtures. Checksums above L3 are not verified by the parser and are left as zero. ---

const IPV4_TCP_SYN = hex(`
  45 00 00 3c   # version 4, IHL 5 | DSCP/ECN | total length 60
  1c 46 40 00   # identification | flags DF, fragment offset 0
  40 06 32 31   # TTL 64 | protocol 6 (TCP) | header checksum
  c0 00 02 0a   # source 192.0.2.10
  c6 33 64 07   # destination 198.51.100.7
  c0 00 01 bb   # TCP: source port 49152 | destination port 443
  a1 b2 c3 d4   # sequence number
  00 00 00 00   # acknowledgment number
  a0 02 fa f0   # data offset 10 (40 bytes) | flags SYN | window 64240
  00 00 00 00   # checksum | urgent pointer
  02 04 05 b4   # option: MSS 1460
  04 02 08 0a   # option: SACK permitted | timestamps kind, length
  00 01 e2 40   # timestamp value
  00 00 00 00   # timestamp echo reply
  01 03 03 07   # option: NOP | window scale 7
`);
/** IPv4 header (20) + the fixed TCP header (20): every shorter prefix is 'truncated'. */
const IPV4_TCP_SYN_HEADERS = 40;

const IPV4_UDP = hex(`
  45 00 00 24   # version 4, IHL 5 | DSCP/ECN | total length 36
  ab cd 00 00   # identification | no flags, fragment offset 0
  40 11 ba f9   # TTL 64 | protocol 17 (UDP) | header checksum
  0a 00 00 02   # source 10.0.0.2
  0a 00 00 01   # destination 10.0.0.1
  cf 08 00 35   # UDP: source port 53000 | destination port 53
  00 10 00 00   # length 16 | checksum
  de ad be ef ca fe ba be   # payload
`);

const IPV4_ICMP_ECHO = hex(`
  45 00 00 24   # version 4, IHL 5 | DSCP/ECN | total length 36
  00 00 00 00   # identification | fragment offset 0
  40 01 f6 d5   # TTL 64 | protocol 1 (ICMP) | header checksum
  c0 00 02 01   # source 192.0.2.1
  c0 00 02 02   # destination 192.0.2.2
  08 00 00 00   # ICMP: type 8 (echo request), code 0 | checksum
  12 34 00 01   # identifier | sequence
  00 01 02 03 04 05 06 07   # payload
`);

const IPV4_WITH_OPTIONS_UDP = hex(`
  46 00 00 24   # version 4, IHL 6 (24 bytes) | DSCP/ECN | total length 36
  00 01 00 00   # identification | fragment offset 0
  01 11 39 c7   # TTL 1 | protocol 17 (UDP) | header checksum
  0a 00 00 02   # source 10.0.0.2
  e0 00 00 fb   # destination 224.0.0.251
  94 04 00 00   # option: router alert
  14 e9 14 e9   # UDP: source port 5353 | destination port 5353
  00 0c 00 00   # length 12 | checksum
  01 02 03 04   # payload
`);

const IPV4_LATER_FRAGMENT = hex(`
  45 00 00 24   # version 4, IHL 5 | DSCP/ECN | total length 36
  aa aa 00 b9   # identification | fragment offset 185 (1480 bytes)
  40 11 bb 63   # TTL 64 | protocol 17 (UDP) | header checksum
  0a 00 00 02   # source 10.0.0.2
  0a 00 00 01   # destination 10.0.0.1
  11 11 22 22 33 33 44 44 55 55 66 66 77 77 88 88   # payload bytes that look like ports
`);

const IPV4_GRE = hex(`
  45 00 00 18   # version 4, IHL 5 | DSCP/ECN | total length 24
  00 00 00 00   # identification | fragment offset 0
  40 2f 00 00   # TTL 64 | protocol 47 (GRE) | header checksum
  0a 00 00 02   # source 10.0.0.2
  0a 00 00 01   # destination 10.0.0.1
  00 00 08 00   # GRE: flags | protocol IPv4
`);

const SRC6 = '20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 10   # source 2001:db8::10';
const DST6 = '20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01   # destination 2001:db8::1';

const IPV6_TCP_SYN = hex(`
  60 00 00 00   # version 6 | traffic class, flow label
  00 14 06 40   # payload length 20 | next header 6 (TCP) | hop limit 64
  ${SRC6}
  ${DST6}
  c3 50 01 bb   # TCP: source port 50000 | destination port 443
  00 00 00 01   # sequence number
  00 00 00 00   # acknowledgment number
  50 02 ff ff   # data offset 5 | flags SYN | window
  00 00 00 00   # checksum | urgent pointer
`);

const IPV6_UDP_THROUGH_OPTIONS = hex(`
  60 00 00 00   # version 6 | traffic class, flow label
  00 1c 00 40   # payload length 28 | next header 0 (hop-by-hop) | hop limit 64
  ${SRC6}
  ${DST6}
  3c 00 05 02   # hop-by-hop: next header 60 (destination options) | length 0 (8 bytes) | router alert
  00 00 01 00   # router alert value | PadN, 0 bytes
  11 00 01 04   # destination options: next header 17 (UDP) | length 0 (8 bytes) | PadN, 4 bytes
  00 00 00 00   # padding
  d4 31 00 35   # UDP: source port 54321 | destination port 53
  00 0c 00 00   # length 12 | checksum
  ca fe f0 0d   # payload
`);
/** IPv6 header (40) + two 8-byte option headers + UDP header (8). */
const IPV6_UDP_THROUGH_OPTIONS_HEADERS = 64;

const IPV6_FIRST_FRAGMENT = hex(`
  60 00 00 00   # version 6 | traffic class, flow label
  00 18 2c 40   # payload length 24 | next header 44 (fragment) | hop limit 64
  ${SRC6}
  ${DST6}
  11 00 00 01   # fragment: next header 17 (UDP) | reserved | offset 0, more fragments
  00 00 ab cd   # identification
  d4 31 11 94   # UDP: source port 54321 | destination port 4500
  05 e8 00 00   # length 1512 | checksum
  00 00 00 00 00 00 00 00   # payload
`);

const IPV6_LATER_FRAGMENT = hex(`
  60 00 00 00   # version 6 | traffic class, flow label
  00 18 2c 40   # payload length 24 | next header 44 (fragment) | hop limit 64
  ${SRC6}
  ${DST6}
  11 00 05 c8   # fragment: next header 17 (UDP) | reserved | offset 185 (1480 bytes), last
  00 00 ab cd   # identification
  11 11 22 22 33 33 44 44 55 55 66 66 77 77 88 88   # payload bytes that look like ports
`);

const IPV6_ICMPV6_ECHO = hex(`
  60 00 00 00   # version 6 | traffic class, flow label
  00 08 3a 40   # payload length 8 | next header 58 (ICMPv6) | hop limit 64
  ${SRC6}
  ${DST6}
  80 00 00 00   # ICMPv6: type 128 (echo request), code 0 | checksum
  00 2a 00 01   # identifier | sequence
`);

const IPV6_ROUTING_AND_AH_UDP = hex(`
  60 00 00 00   # version 6 | traffic class, flow label
  00 40 2b 40   # payload length 64 | next header 43 (routing) | hop limit 64
  ${SRC6}
  ${DST6}
  33 02 02 01   # routing: next header 51 (AH) | length 2 (24 bytes) | type 2 | segments left 1
  00 00 00 00   # reserved
  20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 99   # home address
  11 04 00 00   # AH: next header 17 (UDP) | length 4 ((4+2)*4 = 24 bytes) | reserved
  00 00 10 01   # SPI
  00 00 00 07   # sequence number
  00 00 00 00 00 00 00 00 00 00 00 00   # ICV
  01 f4 01 f4   # UDP: source port 500 | destination port 500
  00 10 00 00   # length 16 | checksum
  00 00 00 00 00 00 00 00   # payload
`);

const IPV6_ESP = hex(`
  60 00 00 00   # version 6 | traffic class, flow label
  00 10 32 40   # payload length 16 | next header 50 (ESP) | hop limit 64
  ${SRC6}
  ${DST6}
  00 00 10 01   # SPI
  00 00 00 07   # sequence number
  01 bb 01 bb 00 00 00 00   # encrypted bytes that look like ports
`);

const IPV6_NO_NEXT_HEADER = hex(`
  60 00 00 00   # version 6 | traffic class, flow label
  00 08 3c 40   # payload length 8 | next header 60 (destination options) | hop limit 64
  ${SRC6}
  ${DST6}
  3b 00 01 04   # destination options: next header 59 (no next header) | length 0 | PadN, 4 bytes
  00 00 00 00   # padding
`);

const IPV6_JUMBO_LENGTH_TCP = hex(`
  60 00 00 00   # version 6 | traffic class, flow label
  00 00 06 40   # payload length 0 (jumbogram / BIG TCP: the capture bounds it) | TCP | hop limit 64
  ${SRC6}
  ${DST6}
  c3 50 01 bb   # TCP: source port 50000 | destination port 443
  00 00 00 01 00 00 00 00 50 10 ff ff 00 00 00 00   # rest of the TCP header, ACK
`);

/** An IPv6 UDP packet behind `count` chained 8-byte destination options headers. */
function ipv6WithOptionHeaders(count: number): Uint8Array {
  const options = Array.from({ length: count }, (_, i) => {
    const next = i === count - 1 ? '11' : '3c'; // the last one points at UDP
    return `${next} 00 01 04 00 00 00 00   # destination options ${i + 1}: length 0 | PadN, 4 bytes`;
  });
  const payloadLength = (count * 8 + 8).toString(16).padStart(4, '0');
  return hex(`
    60 00 00 00   # version 6 | traffic class, flow label
    ${payloadLength} 3c 40   # payload length | next header 60 (destination options) | hop limit 64
    ${SRC6}
    ${DST6}
    ${options.join('\n')}
    d4 31 00 35 00 08 00 00   # UDP: source port 54321 | destination port 53 | length 8 | checksum
  `);
}

const noIcmp = { icmpType: -1, icmpCode: -1, icmpEchoId: -1 };
const noPorts = { srcPort: 0, dstPort: 0 };
const v6 = { family: 6 as const, src: '2001:db8::10', dst: '2001:db8::1' };

const VALID: { name: string; packet: Uint8Array; expected: Summary }[] = [
  {
    name: 'reads the addresses and ports of an IPv4 TCP SYN',
    packet: IPV4_TCP_SYN,
    expected: { family: 4, protocol: 6, src: '192.0.2.10', dst: '198.51.100.7', srcPort: 49152, dstPort: 443, ...noIcmp, isFragment: false },
  },
  {
    name: 'reads the ports of an IPv4 UDP datagram',
    packet: IPV4_UDP,
    expected: { family: 4, protocol: 17, src: '10.0.0.2', dst: '10.0.0.1', srcPort: 53000, dstPort: 53, ...noIcmp, isFragment: false },
  },
  {
    name: 'reads the type and code of an IPv4 ICMP echo request',
    packet: IPV4_ICMP_ECHO,
    expected: { family: 4, protocol: 1, src: '192.0.2.1', dst: '192.0.2.2', ...noPorts, icmpType: 8, icmpCode: 0, icmpEchoId: 0x1234, isFragment: false },
  },
  {
    name: 'skips IPv4 options to find the UDP header (IHL 6)',
    packet: IPV4_WITH_OPTIONS_UDP,
    expected: { family: 4, protocol: 17, src: '10.0.0.2', dst: '224.0.0.251', srcPort: 5353, dstPort: 5353, ...noIcmp, isFragment: false },
  },
  {
    name: 'marks a non-first IPv4 fragment and reads no ports from its payload',
    packet: IPV4_LATER_FRAGMENT,
    expected: { family: 4, protocol: 17, src: '10.0.0.2', dst: '10.0.0.1', ...noPorts, ...noIcmp, isFragment: true },
  },
  {
    name: 'accepts another IPv4 protocol with ports 0 and no ICMP type',
    packet: IPV4_GRE,
    expected: { family: 4, protocol: 47, src: '10.0.0.2', dst: '10.0.0.1', ...noPorts, ...noIcmp, isFragment: false },
  },
  {
    name: 'reads the ports of an IPv6 TCP SYN',
    packet: IPV6_TCP_SYN,
    expected: { ...v6, protocol: 6, srcPort: 50000, dstPort: 443, ...noIcmp, isFragment: false },
  },
  {
    name: 'walks hop-by-hop and destination options headers to an IPv6 UDP header',
    packet: IPV6_UDP_THROUGH_OPTIONS,
    expected: { ...v6, protocol: 17, srcPort: 54321, dstPort: 53, ...noIcmp, isFragment: false },
  },
  {
    name: 'reads the ports of a first IPv6 fragment',
    packet: IPV6_FIRST_FRAGMENT,
    expected: { ...v6, protocol: 17, srcPort: 54321, dstPort: 4500, ...noIcmp, isFragment: false },
  },
  {
    name: 'marks a non-first IPv6 fragment with the fragment header protocol and no ports',
    packet: IPV6_LATER_FRAGMENT,
    expected: { ...v6, protocol: 17, ...noPorts, ...noIcmp, isFragment: true },
  },
  {
    name: 'reads the type and code of an ICMPv6 echo request',
    packet: IPV6_ICMPV6_ECHO,
    expected: { ...v6, protocol: 58, ...noPorts, icmpType: 128, icmpCode: 0, icmpEchoId: 42, isFragment: false },
  },
  {
    name: 'walks a routing header and an AH counted in 4-byte units to a UDP header',
    packet: IPV6_ROUTING_AND_AH_UDP,
    expected: { ...v6, protocol: 17, srcPort: 500, dstPort: 500, ...noIcmp, isFragment: false },
  },
  {
    name: 'stops at ESP and reports protocol 50 without reading its encrypted bytes',
    packet: IPV6_ESP,
    expected: { ...v6, protocol: 50, ...noPorts, ...noIcmp, isFragment: false },
  },
  {
    name: 'stops at no-next-header and reports protocol 59',
    packet: IPV6_NO_NEXT_HEADER,
    expected: { ...v6, protocol: 59, ...noPorts, ...noIcmp, isFragment: false },
  },
  {
    name: 'reads an IPv6 packet with payload length 0 up to the captured length',
    packet: IPV6_JUMBO_LENGTH_TCP,
    expected: { ...v6, protocol: 6, srcPort: 50000, dstPort: 443, ...noIcmp, isFragment: false },
  },
  {
    name: 'walks exactly 16 chained extension headers',
    packet: ipv6WithOptionHeaders(16),
    expected: { ...v6, protocol: 17, srcPort: 54321, dstPort: 53, ...noIcmp, isFragment: false },
  },
];

const IPV4_BAD_VERSION = hex(`
  55 00 00 14 00 00 00 00 40 06 00 00   # version 5 | otherwise a plausible header
  0a 00 00 02 0a 00 00 01
`);

const MALFORMED: { name: string; packet: Uint8Array; error: ParseError }[] = [
  { name: 'rejects an empty buffer as truncated', packet: new Uint8Array(0), error: 'truncated' },
  { name: 'rejects IP version 5', packet: IPV4_BAD_VERSION, error: 'bad-version' },
  { name: 'rejects IP version 0', packet: hex('00'), error: 'bad-version' },
  {
    name: 'rejects an IPv4 header length below 5 words',
    packet: hex(`
      44 00 00 14   # version 4, IHL 4 (16 bytes) | DSCP/ECN | total length 20
      00 00 00 00 40 06 00 00 0a 00 00 02 0a 00 00 01
    `),
    error: 'bad-header-length',
  },
  {
    name: 'rejects an IPv4 header whose options run past the capture as truncated',
    packet: hex(`
      4f 00 00 3c   # version 4, IHL 15 (60 bytes) | DSCP/ECN | total length 60
      00 00 00 00 40 06 00 00 0a 00 00 02 0a 00 00 01
    `),
    error: 'truncated',
  },
  {
    name: 'rejects an IPv4 total length smaller than the header',
    packet: hex(`
      45 00 00 10   # version 4, IHL 5 | DSCP/ECN | total length 16
      00 00 00 00 40 06 00 00 0a 00 00 02 0a 00 00 01
      c0 00 01 bb 00 00 00 00 00 00 00 00 50 02 ff ff 00 00 00 00
    `),
    error: 'bad-total-length',
  },
  {
    name: 'rejects an IPv4 total length that ends inside the options',
    packet: hex(`
      46 00 00 14   # version 4, IHL 6 (24 bytes) | DSCP/ECN | total length 20
      00 00 00 00 40 11 00 00 0a 00 00 02 0a 00 00 01
      94 04 00 00   # option: router alert
    `),
    error: 'bad-total-length',
  },
  {
    name: 'rejects a TCP header that runs past the IPv4 total length although more bytes were captured',
    packet: hex(`
      45 00 00 18   # version 4, IHL 5 | DSCP/ECN | total length 24: only 4 bytes of TCP belong to it
      00 00 00 00 40 06 00 00 0a 00 00 02 0a 00 00 01
      c0 00 01 bb 00 00 00 00 00 00 00 00 50 02 ff ff 00 00 00 00
    `),
    error: 'truncated',
  },
  {
    name: 'rejects a UDP header that runs past the IPv6 payload length although more bytes were captured',
    packet: hex(`
      60 00 00 00
      00 04 11 40   # payload length 4: only half a UDP header belongs to the packet
      ${SRC6}
      ${DST6}
      d4 31 00 35 00 08 00 00
    `),
    error: 'truncated',
  },
  {
    name: 'rejects an ICMP header shorter than 8 bytes',
    packet: IPV4_ICMP_ECHO.subarray(0, 27),
    error: 'truncated',
  },
  {
    name: 'rejects 17 chained extension headers',
    packet: ipv6WithOptionHeaders(17),
    error: 'too-many-extension-headers',
  },
];

describe('parsePacket', () => {
  describe('reads well-formed packets', () => {
    for (const { name, packet, expected } of VALID) {
      it(name, () => {
        const out = newParsedPacket();
        assert.equal(parsePacket(packet, out), null);
        assert.deepEqual(summary(out), expected);
      });
    }
  });

  describe('reports malformed packets without throwing', () => {
    for (const { name, packet, error } of MALFORMED) {
      it(name, () => {
        assert.equal(parsePacket(packet, newParsedPacket()), error);
      });
    }
  });

  describe('handles every truncation point', () => {
    const cases = [
      { name: 'an IPv4 TCP SYN', packet: IPV4_TCP_SYN, headers: IPV4_TCP_SYN_HEADERS },
      { name: 'an IPv6 UDP packet behind extension headers', packet: IPV6_UDP_THROUGH_OPTIONS, headers: IPV6_UDP_THROUGH_OPTIONS_HEADERS },
    ];
    for (const { name, packet, headers } of cases) {
      it(`returns 'truncated' for every prefix of ${name} that cuts a header, and the full result once the headers are in`, () => {
        const out = newParsedPacket();
        assert.equal(parsePacket(packet, out), null);
        const full = summary(out);
        for (let length = 0; length <= packet.length; length++) {
          const result = parsePacket(packet.subarray(0, length), out);
          if (length < headers) {
            assert.equal(result, 'truncated', `prefix of ${length} bytes`);
          } else {
            assert.equal(result, null, `prefix of ${length} bytes`);
            assert.deepEqual(summary(out), full, `prefix of ${length} bytes`);
          }
        }
      });
    }
  });

  it('clears every field left by the previous packet in the reused output', () => {
    const out = newParsedPacket();
    assert.equal(parsePacket(IPV4_TCP_SYN, out), null);
    assert.equal(parsePacket(IPV6_ICMPV6_ECHO, out), null);
    assert.deepEqual(summary(out), VALID.find((c) => c.packet === IPV6_ICMPV6_ECHO)?.expected);
    assert.equal(parsePacket(IPV4_BAD_VERSION, out), 'bad-version');
    assert.deepEqual(summary(out), summary(newParsedPacket()));
  });

  it('keeps the addresses of a packet whose L4 header is cut', () => {
    const out = newParsedPacket();
    assert.equal(parsePacket(IPV4_TCP_SYN.subarray(0, 30), out), 'truncated');
    assert.equal(formatAddress(out.srcAddr), '192.0.2.10');
    assert.equal(formatAddress(out.dstAddr), '198.51.100.7');
    assert.equal(out.srcPort, 0);
  });

  it('returns addresses as views into the input without copying', () => {
    // The addon hands one shared buffer: the packet may start anywhere inside it.
    const shared = new Uint8Array(512);
    shared.set(IPV6_TCP_SYN, 100);
    const out = newParsedPacket();
    assert.equal(parsePacket(shared.subarray(100, 100 + IPV6_TCP_SYN.length), out), null);
    assert.equal(out.srcAddr.buffer, shared.buffer);
    assert.equal(out.srcAddr.byteOffset, 108);
    assert.equal(out.dstAddr.byteOffset, 124);
    assert.equal(out.dstPort, 443);
  });

  it('never throws on 20,000 random buffers or on mutations of valid packets', () => {
    const random = mulberry32(0x5eed);
    const byte = () => Math.floor(random() * 256);
    const errors = new Set<ParseError | null>([null, 'truncated', 'bad-version', 'bad-header-length', 'bad-total-length', 'too-many-extension-headers']);
    const out = newParsedPacket();
    const check = (data: Uint8Array) => {
      let result: ParseError | null;
      try {
        result = parsePacket(data, out);
        formatAddress(out.srcAddr);
        formatAddress(out.dstAddr);
      } catch (error) {
        throw new Error(`threw on ${Buffer.from(data).toString('hex')}`, { cause: error });
      }
      assert.ok(errors.has(result), `unexpected result ${String(result)}`);
      if (result === null) {
        assert.equal(out.srcAddr.length, out.family === 4 ? 4 : 16);
        assert.equal(out.dstAddr.length, out.srcAddr.length);
        assert.ok(out.srcPort >= 0 && out.srcPort <= 0xffff && out.dstPort >= 0 && out.dstPort <= 0xffff);
      }
    };

    for (let i = 0; i < 20_000; i++) {
      const data = new Uint8Array(Math.floor(random() * 121));
      for (let j = 0; j < data.length; j++) data[j] = byte();
      // Half the buffers get a valid version nibble so the parse goes past the first byte.
      if (data.length > 0 && i % 2 === 0) data[0] = ((i % 4 === 0 ? 4 : 6) << 4) | (byte() & 0x0f);
      check(data);
    }

    const seeds = [...VALID.map((c) => c.packet), ipv6WithOptionHeaders(17)];
    for (const seed of seeds) {
      for (let i = 0; i < 2_000; i++) {
        const data = seed.slice(0, Math.floor(random() * (seed.length + 1)));
        const flips = 1 + Math.floor(random() * 4);
        for (let f = 0; f < flips && data.length > 0; f++) data[Math.floor(random() * data.length)] = byte();
        check(data);
      }
    }
  });
});

describe('formatAddress', () => {
  const cases: { name: string; addr: string; text: string }[] = [
    { name: 'writes IPv4 as a dotted quad', addr: 'c0 00 02 0a', text: '192.0.2.10' },
    { name: 'writes the IPv6 loopback as ::1', addr: '0000 0000 0000 0000 0000 0000 0000 0001', text: '::1' },
    { name: 'writes the unspecified IPv6 address as ::', addr: '0000 0000 0000 0000 0000 0000 0000 0000', text: '::' },
    { name: 'compresses the zero run and drops leading zeros', addr: '2001 0db8 0000 0000 0000 0000 0000 0001', text: '2001:db8::1' },
    { name: 'compresses the leftmost of two equal zero runs', addr: '2001 0db8 0000 0000 0001 0000 0000 0001', text: '2001:db8::1:0:0:1' },
    { name: 'compresses the longer zero run even when it is not the first', addr: '2001 0000 0000 0001 0000 0000 0000 0001', text: '2001:0:0:1::1' },
    { name: 'compresses a trailing zero run', addr: '2001 0db8 0000 0000 0000 0000 0000 0000', text: '2001:db8::' },
    { name: 'writes a link-local address', addr: 'fe80 0000 0000 0000 0000 0000 0000 0001', text: 'fe80::1' },
    { name: 'writes an IPv4-mapped address with a dotted quad', addr: '0000 0000 0000 0000 0000 ffff c000 0201', text: '::ffff:192.0.2.1' },
    { name: 'does not compress a single zero group', addr: '2001 0db8 0000 0001 0001 0001 0001 0001', text: '2001:db8:0:1:1:1:1:1' },
    { name: 'writes hex digits in lowercase', addr: '2001 0DB8 ABCD 0000 0000 0000 0000 FFFF', text: '2001:db8:abcd::ffff' },
    { name: 'returns an empty string for a length that is neither 4 nor 16', addr: '01 02 03', text: '' },
  ];
  for (const { name, addr, text } of cases) {
    it(name, () => {
      assert.equal(formatAddress(hex(addr)), text);
    });
  }
});

/** A small seeded PRNG so a failing random case reproduces on every run. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
