// Parses the network-layer packets NFQUEUE hands us: IPv4 or IPv6 (walking extension headers),
// then the ports of TCP/UDP or the type/code of ICMP/ICMPv6.
//
// The copy may be cut at the queue's copy range, so the payload may be missing; only the
// headers we read must be present. Every read is bounds-checked first, nothing throws, and a
// parse allocates only the two address views.

import { IPPROTO } from '../common/types.js';

export interface ParsedPacket {
  family: 4 | 6;
  /** Final L4 protocol number (after IPv6 extension headers). */
  protocol: number;
  /** 4 or 16 bytes: a subarray VIEW into the input (callers copy before keeping). */
  srcAddr: Uint8Array;
  dstAddr: Uint8Array;
  /** 0 when not TCP/UDP. */
  srcPort: number;
  dstPort: number;
  /** -1 when not ICMP/ICMPv6. */
  icmpType: number;
  icmpCode: number;
  /** The identifier of an ICMP/ICMPv6 echo request (what a ping socket is found by); -1 otherwise. */
  icmpEchoId: number;
  /** Where the TCP/UDP/ICMP header starts in the input; -1 when it was not reached. */
  l4Offset: number;
  /** Where the IP payload ends in the input (the total length, or the copy when cut short). */
  l4End: number;
  /** A non-first fragment: no L4 header to read (ports 0). Not an error. */
  isFragment: boolean;
}

export type ParseError = 'truncated' | 'bad-version' | 'bad-header-length' | 'bad-total-length' | 'too-many-extension-headers';

const IPV4_MIN_HEADER = 20;
const IPV6_HEADER = 40;
// Fixed header sizes the kernel itself pulls before reading these protocols.
const TCP_HEADER = 20;
const UDP_HEADER = 8;
const ICMP_HEADER = 8;
/** Echo request types: ICMP 8, ICMPv6 128. */
const ECHO_REQUEST = { [IPPROTO.ICMP]: 8, [IPPROTO.ICMPV6]: 128 } as Readonly<Record<number, number>>;
/** Every IPv6 extension header we walk is at least 8 bytes. */
const EXTENSION_MIN = 8;
/** Bounds the walk so a crafted chain of tiny headers costs a fixed amount of work. */
const MAX_EXTENSION_HEADERS = 16;

const HOP_BY_HOP = 0;
const ROUTING = 43;
const FRAGMENT = 44;
const AUTH_HEADER = 51;
const DESTINATION_OPTIONS = 60;

/** Shared by every packet whose addresses were never reached; it has no bytes to change. */
const NO_ADDRESS = new Uint8Array(0);

/** Allocate the reusable output object once and pass it to every parsePacket call. */
export function newParsedPacket(): ParsedPacket {
  return {
    family: 4,
    protocol: 0,
    srcAddr: NO_ADDRESS,
    dstAddr: NO_ADDRESS,
    srcPort: 0,
    dstPort: 0,
    icmpType: -1,
    icmpCode: -1,
    icmpEchoId: -1,
    l4Offset: -1,
    l4End: 0,
    isFragment: false,
  };
}

/**
 * Fills `out` from `data` (which starts at the IP header) and returns null, or returns why the
 * packet is malformed. On error, fields read before the problem keep their values (so a record
 * can still show the addresses) and the rest hold the neutral values of newParsedPacket().
 */
export function parsePacket(data: Uint8Array, out: ParsedPacket): ParseError | null {
  out.family = 4;
  out.protocol = 0;
  out.srcAddr = NO_ADDRESS;
  out.dstAddr = NO_ADDRESS;
  out.srcPort = 0;
  out.dstPort = 0;
  out.icmpType = -1;
  out.icmpCode = -1;
  out.icmpEchoId = -1;
  out.l4Offset = -1;
  out.l4End = 0;
  out.isFragment = false;

  if (data.length === 0) return 'truncated';
  const version = u8(data, 0) >> 4;
  if (version === 4) return parseIpv4(data, out);
  if (version === 6) return parseIpv6(data, out);
  return 'bad-version';
}

function parseIpv4(data: Uint8Array, out: ParsedPacket): ParseError | null {
  out.family = 4;
  if (data.length < IPV4_MIN_HEADER) return 'truncated';
  const headerLength = (u8(data, 0) & 0x0f) * 4;
  if (headerLength < IPV4_MIN_HEADER) return 'bad-header-length';
  if (data.length < headerLength) return 'truncated';
  const totalLength = u16(data, 2);
  if (totalLength < headerLength) return 'bad-total-length';

  out.protocol = u8(data, 9);
  out.srcAddr = data.subarray(12, 16);
  out.dstAddr = data.subarray(16, 20);
  // Only the first fragment (offset 0) carries the L4 header; the others are payload bytes.
  if ((u16(data, 6) & 0x1fff) !== 0) {
    out.isFragment = true;
    return null;
  }
  // The L4 header must lie inside both the capture and the packet's own total length.
  return parseTransport(data, headerLength, Math.min(data.length, totalLength), IPPROTO.ICMP, out);
}

function parseIpv6(data: Uint8Array, out: ParsedPacket): ParseError | null {
  out.family = 6;
  if (data.length < IPV6_HEADER) return 'truncated';
  out.srcAddr = data.subarray(8, 24);
  out.dstAddr = data.subarray(24, 40);
  const payloadLength = u16(data, 4);
  // Payload length 0 marks a jumbogram or a BIG TCP GSO packet: only the capture bounds it.
  const end = payloadLength === 0 ? data.length : Math.min(data.length, IPV6_HEADER + payloadLength);

  let next = u8(data, 6);
  let offset = IPV6_HEADER;
  let walked = 0;
  while (isExtensionHeader(next)) {
    if (++walked > MAX_EXTENSION_HEADERS) return 'too-many-extension-headers';
    if (offset + EXTENSION_MIN > end) return 'truncated';
    const headerNext = u8(data, offset);
    if (next === FRAGMENT) {
      // Fragment offset is the top 13 bits of bytes 2-3; non-first fragments have no L4 header.
      if ((u16(data, offset + 2) & 0xfff8) !== 0) {
        out.protocol = headerNext;
        out.isFragment = true;
        return null;
      }
      offset += EXTENSION_MIN;
    } else {
      // AH counts its length in 4-byte units minus 2 (RFC 4302); the others in 8-byte units minus 1.
      const lengthField = u8(data, offset + 1);
      const length = next === AUTH_HEADER ? (lengthField + 2) * 4 : (lengthField + 1) * 8;
      if (offset + length > end) return 'truncated';
      offset += length;
    }
    next = headerNext;
  }
  // ESP (50) and no-next-header (59) end the walk here: nothing after them is readable.
  out.protocol = next;
  return parseTransport(data, offset, end, IPPROTO.ICMPV6, out);
}

function isExtensionHeader(next: number): boolean {
  return next === HOP_BY_HOP || next === ROUTING || next === FRAGMENT || next === AUTH_HEADER || next === DESTINATION_OPTIONS;
}

/** Reads the L4 header at `offset`, which must end by `end`; `icmp` is the family's ICMP number. */
function parseTransport(data: Uint8Array, offset: number, end: number, icmp: number, out: ParsedPacket): ParseError | null {
  const protocol = out.protocol;
  out.l4Offset = offset;
  out.l4End = end;
  if (protocol === IPPROTO.TCP || protocol === IPPROTO.UDP) {
    if (offset + (protocol === IPPROTO.TCP ? TCP_HEADER : UDP_HEADER) > end) return 'truncated';
    out.srcPort = u16(data, offset);
    out.dstPort = u16(data, offset + 2);
  } else if (protocol === icmp) {
    if (offset + ICMP_HEADER > end) return 'truncated';
    out.icmpType = u8(data, offset);
    out.icmpCode = u8(data, offset + 1);
    if (out.icmpType === ECHO_REQUEST[icmp]) out.icmpEchoId = u16(data, offset + 4);
  }
  return null;
}

// Callers bounds-check before reading; the `!` records that promise for noUncheckedIndexedAccess.
function u8(data: Uint8Array, i: number): number {
  return data[i]!;
}

function u16(data: Uint8Array, i: number): number {
  return (data[i]! << 8) | data[i + 1]!;
}

// Address text lives in common/ so the service can use it too; re-exported for callers here.
export { formatAddress } from '../common/address.js';
