// One host/IP list (lists.d, docs/rules.md "Lists"): names, addresses and address blocks,
// looked up in O(1) per connection. A name entry matches itself and every name below it
// (found by walking the name's labels: a.b.example.org tries a.b.example.org, b.example.org,
// example.org, org). Addresses and blocks are kept per prefix length in Sets of the masked
// network, so a lookup costs one Set probe per prefix length the list uses (at most 33 / 129).
import { normalizeHostName } from '../../common/hostName.js';
import { parseCidr } from '../../common/cidr.js';

/** The addresses a hosts file maps blocked names to: the line names hosts, not an address to block. */
const SINKHOLES = new Set(['0.0.0.0', '127.0.0.1', '::', '::1', '0:0:0:0:0:0:0:0', '0:0:0:0:0:0:0:1']);
/** Names every hosts file has for the machine itself: never list entries. */
const LOCAL_NAMES = new Set([
  'localhost',
  'localhost.localdomain',
  'local',
  'broadcasthost',
  'ip6-localhost',
  'ip6-loopback',
  'ip6-localnet',
  'ip6-mcastprefix',
  'ip6-allnodes',
  'ip6-allrouters',
  '0.0.0.0',
]);

export interface ListStats {
  names: number;
  addresses: number;
  /** Lines that were neither a comment, a name, an address, a block nor a hosts-file line. */
  badLines: number;
  /** The first few bad lines, for messages: `<line number>: <text>` (cut at 80 characters). */
  badSamples: string[];
}

const MAX_SAMPLES = 5;

export class HostList {
  private readonly names = new Set<string>();
  /** prefix -> networks: IPv4 as a uint32, IPv6 as 32 hex digits. */
  private readonly v4 = new Map<number, Set<number>>();
  private readonly v6 = new Map<number, Set<string>>();
  readonly stats: ListStats = { names: 0, addresses: 0, badLines: 0, badSamples: [] };

  /** Adds one line of a list file; a bad line is counted, never thrown. */
  addLine(raw: string, lineNumber: number): void {
    const hash = raw.indexOf('#');
    const line = (hash >= 0 ? raw.slice(0, hash) : raw).trim();
    if (line === '') return;
    const tokens = line.split(/\s+/);
    if (tokens.length > 1) {
      // hosts-file format: `0.0.0.0 ads.example.com [more names]`
      if (!SINKHOLES.has(tokens[0]!)) return this.bad(lineNumber, raw);
      for (const token of tokens.slice(1)) {
        if (LOCAL_NAMES.has(token.toLowerCase())) continue;
        if (!this.addName(token)) return this.bad(lineNumber, raw);
      }
      return;
    }
    const token = tokens[0]!;
    if (/^[0-9.]+(\/[0-9]+)?$/.test(token) || token.includes(':')) {
      if (!this.addBlock(token)) this.bad(lineNumber, raw);
      return;
    }
    if (!this.addName(token.startsWith('*.') ? token.slice(2) : token)) this.bad(lineNumber, raw);
  }

  private addName(text: string): boolean {
    const name = normalizeHostName(text);
    if (name === null) return false;
    if (!this.names.has(name)) {
      this.names.add(name);
      this.stats.names++;
    }
    return true;
  }

  private addBlock(text: string): boolean {
    const cidr = parseCidr(text);
    if (cidr === null) return false;
    if (cidr.bytes.length === 4) {
      let set = this.v4.get(cidr.prefix);
      if (set === undefined) this.v4.set(cidr.prefix, (set = new Set()));
      set.add(v4Number(cidr.bytes));
    } else {
      let set = this.v6.get(cidr.prefix);
      if (set === undefined) this.v6.set(cidr.prefix, (set = new Set()));
      set.add(Buffer.from(cidr.bytes).toString('hex'));
    }
    this.stats.addresses++;
    return true;
  }

  private bad(lineNumber: number, raw: string): void {
    this.stats.badLines++;
    if (this.stats.badSamples.length < MAX_SAMPLES) this.stats.badSamples.push(`${lineNumber}: ${raw.length > 80 ? `${raw.slice(0, 80)}…` : raw}`);
  }

  /** Whether the destination address (4 or 16 bytes) is listed, or lies in a listed block. */
  hasAddress(addr: Uint8Array): boolean {
    if (addr.length === 4) {
      if (this.v4.size === 0) return false;
      const n = v4Number(addr);
      for (const [prefix, set] of this.v4) if (set.has(prefix === 0 ? 0 : (n & (~0 << (32 - prefix))) >>> 0)) return true;
      return false;
    }
    if (this.v6.size === 0 || addr.length !== 16) return false;
    const hex = Buffer.from(addr.buffer, addr.byteOffset, 16).toString('hex');
    for (const [prefix, set] of this.v6) if (set.has(maskHex(hex, prefix))) return true;
    return false;
  }

  /** Whether the name, or a name it is below, is listed. */
  hasName(name: string): boolean {
    if (this.names.size === 0) return false;
    for (let at = 0; at >= 0; at = name.indexOf('.', at) + 1 || -1) {
      if (this.names.has(at === 0 ? name : name.slice(at))) return true;
    }
    return false;
  }

  get size(): number {
    return this.stats.names + this.stats.addresses;
  }
}

function v4Number(bytes: Uint8Array): number {
  return ((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0;
}

/** 32 hex digits with the bits past prefix cleared. */
function maskHex(hex: string, prefix: number): string {
  if (prefix === 128) return hex;
  const full = prefix >> 2;
  const rest = prefix & 3;
  let out = hex.slice(0, full);
  if (rest > 0) out += (parseInt(hex[full]!, 16) & (0xf << (4 - rest)) & 0xf).toString(16);
  return out.padEnd(32, '0');
}
