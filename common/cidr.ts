// Address blocks (CIDR) as bytes, for rules that name a destination network and for host/IP
// lists. Parsed once when rules or lists load; matching compares bytes and allocates nothing.
import { isIP } from 'node:net';
import { formatAddress, ipv4Bytes, ipv6Bytes } from './address.js';

export interface Cidr {
  /** 4 or 16 bytes, network order, host bits cleared. */
  readonly bytes: Uint8Array;
  readonly prefix: number;
  /** Canonical text: `<network>/<prefix>` (a single address keeps its /32 or /128). */
  readonly text: string;
}

/** The bytes of an IPv4 or IPv6 address in text, or null when it is not one (zone ids refused). */
export function parseAddress(text: string): Uint8Array | null {
  // isIP first: it refuses what the byte parsers would let through (leading zeros, zone ids).
  const family = isIP(text);
  if (family === 4) return ipv4Bytes(text);
  return family === 6 && !text.includes('%') ? ipv6Bytes(text) : null;
}

/** `<address>` or `<address>/<prefix>`; null when it is neither. Host bits are cleared. */
export function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf('/');
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const bytes = parseAddress(addressText);
  if (bytes === null) return null;
  const bits = bytes.length * 8;
  let prefix = bits;
  if (slash >= 0) {
    const prefixText = text.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(prefixText)) return null;
    prefix = Number(prefixText);
    if (prefix > bits) return null;
  }
  for (let bit = prefix; bit < bits; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return { bytes, prefix, text: `${formatAddress(bytes)}/${prefix}` };
}

/** Whether addr (4 or 16 bytes) lies in the block; an IPv4 block never matches an IPv6 address. */
export function cidrContains(cidr: Cidr, addr: Uint8Array): boolean {
  if (addr.length !== cidr.bytes.length) return false;
  const whole = cidr.prefix >> 3;
  for (let i = 0; i < whole; i++) if (addr[i] !== cidr.bytes[i]) return false;
  const rest = cidr.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (addr[whole]! & mask) === cidr.bytes[whole];
}
