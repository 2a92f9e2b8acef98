// Fallback socket lookup through /proc/net/{tcp,udp}{,6}, for kernels or sandboxes where
// NETLINK_SOCK_DIAG is unavailable. Slow (reading /proc/net/tcp costs ~9 ms even in an empty
// namespace, against ~60 µs for an exact sock_diag request), so only used when we must.

import { readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import type { IpFamily, SocketOwner } from '../../common/types.js';

/** Columns of a /proc/net/{tcp,udp}{,6} line once split on whitespace. */
const UID_COLUMN = 7;
const INODE_COLUMN = 9;

const LITTLE_ENDIAN = endianness() === 'LE';
const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).toUpperCase().padStart(2, '0'));
const V4_MAPPED_PREFIX = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

/**
 * An address as the kernel prints it: each 32-bit word with %08X of its in-memory value,
 * so on little-endian machines the bytes of every word come out reversed
 * (127.0.0.1 -> "0100007F").
 */
export function procNetAddress(addr: Uint8Array): string {
  let out = '';
  for (let word = 0; word + 4 <= addr.length; word += 4) {
    for (let i = 0; i < 4; i++) out += HEX[addr[word + (LITTLE_ENDIAN ? 3 - i : i)] ?? 0];
  }
  return out;
}

/** "ADDR:PORT" with the port as %04X, the way the kernel prints endpoints. */
export function endpoint(addr: Uint8Array, port: number): string {
  return `${procNetAddress(addr)}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
}

function v4Mapped(addr: Uint8Array): Uint8Array {
  const mapped = new Uint8Array(16);
  mapped.set(V4_MAPPED_PREFIX);
  mapped.set(addr.subarray(0, 4), 12);
  return mapped;
}

export function readTable(path: string): string {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return ''; // no such table (IPv6 disabled, protocol not built): nothing matches
  }
}

/**
 * The owner of the line whose local and remote endpoints are exactly these. A 4-tuple can
 * appear twice (a TIME_WAIT entry, inode 0, beside a new socket): a live inode wins.
 */
function findLine(table: string, local: string, remote: string): SocketOwner | null {
  const key = `: ${local} ${remote} `;
  let best: SocketOwner | null = null;
  for (let at = table.indexOf(key); at >= 0; at = table.indexOf(key, at + key.length)) {
    const lineEnd = table.indexOf('\n', at);
    const fields = table
      .slice(at + 2, lineEnd < 0 ? undefined : lineEnd)
      .trim()
      .split(/\s+/);
    const uid = Number(fields[UID_COLUMN - 1]);
    const inode = Number(fields[INODE_COLUMN - 1]);
    if (!Number.isInteger(uid) || !Number.isInteger(inode)) continue;
    if (best === null || (best.inode === 0 && inode !== 0)) best = { inode, uid };
  }
  return best;
}

/** TCP: the exact 4-tuple. UDP: connected exactly, else unconnected on the local port. */
function findInTable(table: string, protocol: 6 | 17, src: Uint8Array, srcPort: number, dst: Uint8Array, dstPort: number): SocketOwner | null {
  if (table === '') return null;
  const exact = findLine(table, endpoint(src, srcPort), endpoint(dst, dstPort));
  if (exact !== null || protocol === 6) return exact;
  // An unconnected UDP socket shows remote 0:0, local either the address it bound or wildcard.
  const zero = new Uint8Array(src.length);
  const anyRemote = endpoint(zero, 0);
  return findLine(table, endpoint(src, srcPort), anyRemote) ?? findLine(table, endpoint(zero, srcPort), anyRemote);
}

/**
 * The socket that sent a packet, found in /proc/net. An IPv4 packet may come from a
 * dual-stack IPv6 socket, which the kernel lists in the "6" table with v4-mapped addresses.
 */
export function lookupProcNet(
  family: IpFamily,
  protocol: 6 | 17,
  src: Uint8Array,
  srcPort: number,
  dst: Uint8Array,
  dstPort: number,
  procRoot = '/proc',
): SocketOwner | null {
  const name = protocol === 6 ? 'tcp' : 'udp';
  if (family === 6) return findInTable(readTable(`${procRoot}/net/${name}6`), protocol, src, srcPort, dst, dstPort);
  return (
    findInTable(readTable(`${procRoot}/net/${name}`), protocol, src, srcPort, dst, dstPort) ??
    findInTable(readTable(`${procRoot}/net/${name}6`), protocol, v4Mapped(src), srcPort, v4Mapped(dst), dstPort)
  );
}

/** The bytes of an address as the kernel prints it (procNetAddress's inverse). */
function parseProcNetAddress(text: string): Uint8Array {
  const out = new Uint8Array(text.length / 2);
  for (let word = 0; word * 8 < text.length; word++) {
    for (let i = 0; i < 4; i++) {
      const byte = parseInt(text.slice(word * 8 + i * 2, word * 8 + i * 2 + 2), 16);
      out[word * 4 + (LITTLE_ENDIAN ? 3 - i : i)] = byte;
    }
  }
  return out;
}

/** TCP states in /proc/net/tcp: connected, or connecting. */
const ESTABLISHED = '01';
const SYN_SENT = '02';

/**
 * The local ends of the TCP sockets connected (or connecting) to dst:dstPort, from
 * /proc/net/tcp{,6} (an IPv4 destination also as v4-mapped, from dual-stack sockets): for
 * ending connections whose source port nobody recorded (helper/liveConnections.ts). Rare:
 * only when a kernel-allowed program's allowance is withdrawn.
 */
export function tcpConnectionsTo(
  family: IpFamily,
  dst: Uint8Array,
  dstPort: number,
  procRoot = '/proc',
): { family: IpFamily; src: Uint8Array; srcPort: number }[] {
  const out: { family: IpFamily; src: Uint8Array; srcPort: number }[] = [];
  const scan = (table: string, remote: string, as: IpFamily): void => {
    for (const line of table.split('\n')) {
      const fields = line.trim().split(/\s+/);
      if (fields[2] !== remote || (fields[3] !== ESTABLISHED && fields[3] !== SYN_SENT)) continue;
      const [addr, port] = (fields[1] ?? '').split(':');
      if (addr === undefined || port === undefined) continue;
      const src = parseProcNetAddress(addr);
      out.push(as === 6 && family === 4 ? { family: 4, src: src.slice(12), srcPort: parseInt(port, 16) } : { family: as, src, srcPort: parseInt(port, 16) });
    }
  };
  if (family === 6) scan(readTable(`${procRoot}/net/tcp6`), endpoint(dst, dstPort), 6);
  else {
    scan(readTable(`${procRoot}/net/tcp`), endpoint(dst, dstPort), 4);
    scan(readTable(`${procRoot}/net/tcp6`), endpoint(v4Mapped(dst), dstPort), 6);
  }
  return out;
}
