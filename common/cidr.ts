// Address blocks (CIDR) as bytes, for rules that name a destination network and for host/IP
// lists. Parsed once when rules or lists load; matching compares bytes and allocates nothing.
import { isIP } from 'node:net';
import { formatAddress } from './address.js';

export interface Cidr {
  /** 4 or 16 bytes, network order, host bits cleared. */
  readonly bytes: Uint8Array;
  readonly prefix: number;
  /** Canonical text: `<network>/<prefix>` (a single address keeps its /32 or /128). */
  readonly text: string;
}

/** The bytes of an IPv4 or IPv6 address in text, or null when it is not one (zone ids refused). */
export function parseAddress(text: string): Uint8Array | null {
  const family = isIP(text);
  if (family === 4) return new Uint8Array(text.split('.').map(Number));
  if (family !== 6 || text.includes('%')) return null;
  let head = text;
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    // An embedded dotted quad (::ffff:192.0.2.1) stands for the last two groups.
    const q = text
      .slice(lastColon + 1)
      .split('.')
      .map(Number);
    head = `${text.slice(0, lastColon + 1)}${((q[0]! << 8) | q[1]!).toString(16)}:${((q[2]! << 8) | q[3]!).toString(16)}`;
  }
  const halves = head.split('::');
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const left = parse(halves[0]!);
  const right = halves.length > 1 ? parse(halves[1]!) : [];
  const fill = 8 - left.length - right.length;
  const groups = halves.length > 1 ? [...left, ...new Array<number>(Math.max(fill, 0)).fill(0), ...right] : left;
  if (groups.length !== 8) return null;
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[i * 2] = g >> 8;
    bytes[i * 2 + 1] = g & 0xff;
  });
  return bytes;
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
