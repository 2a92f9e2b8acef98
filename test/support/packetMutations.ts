// Random and mutated packets for the parser fuzz tests (TS parser and the addon's fast-path parser).

const hex = (s: string): Uint8Array =>
  Uint8Array.from(
    s
      .replace(/\s+/g, '')
      .match(/../g)!
      .map((b) => parseInt(b, 16)),
  );

export const SEEDS: Uint8Array[] = [
  // IPv4 TCP SYN 198.18.0.1:40000 -> 198.18.0.2:80
  hex('4500003c 1c46 4000 4006 0000 c6120001 c6120002 9c40 0050 00000001 00000000 a002 faf0 0000 0000'),
  // IPv4 UDP 53
  hex('4500001c 0000 4000 4011 0000 c6120001 c6120002 d431 0035 0008 0000'),
  // IPv4 ICMP echo
  hex('45000054 0000 4000 4001 0000 c6120001 c6120002 0800 0000 0001 0001'),
  // IPv6 hop-by-hop -> dest options -> UDP
  hex('60000000 0020 00 40 fd0000b5000000000000000000000001 fd0000b5000000000000000000000002 3c 00 0000 00000000 11 00 0000 00000000 d431 0035 0008 0000'),
  // IPv6 fragment header (first fragment) -> TCP
  hex(
    '60000000 0020 2c 40 fd0000b5000000000000000000000001 fd0000b5000000000000000000000002 06 00 0001 12345678 9c40 0050 00000001 00000000 5002 faf0 0000 0000',
  ),
  // IPv6 TCP SYN, no extension header
  hex('60000000 0014 06 40 fd0000b5000000000000000000000001 fd0000b5000000000000000000000002 9c40 0050 00000001 00000000 5002 faf0 0000 0000'),
];

export function rng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    // xorshift32: fast, reproducible
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % n;
  };
}

export function mutate(rand: (n: number) => number): Uint8Array {
  const base = SEEDS[rand(SEEDS.length)]!;
  switch (rand(5)) {
    case 0: // random bytes
      return Uint8Array.from({ length: rand(160) }, () => rand(256));
    case 1: {
      // flip bits
      const p = base.slice();
      for (let k = rand(8) + 1; k > 0; k--) p[rand(p.length)]! ^= 1 << rand(8);
      return p;
    }
    case 2: // cut short
      return base.slice(0, rand(base.length + 1));
    case 3: {
      // splice two seeds
      const other = SEEDS[rand(SEEDS.length)]!;
      const cut = rand(base.length);
      const out = new Uint8Array(cut + other.length - Math.min(cut, other.length));
      out.set(base.subarray(0, cut));
      out.set(other.subarray(Math.min(cut, other.length)), cut);
      return out;
    }
    default: {
      // an IPv6 header followed by a long random chain of extension headers
      const p = new Uint8Array(40 + 8 * (rand(24) + 1));
      p.set(SEEDS[3]!.subarray(0, 40));
      p[6] = [0, 43, 44, 51, 60, 6, 17][rand(7)]!;
      for (let i = 40; i < p.length; i += 8) {
        p[i] = [0, 43, 44, 51, 60, 59, 6][rand(7)]!;
        p[i + 1] = rand(3);
      }
      return p;
    }
  }
}
