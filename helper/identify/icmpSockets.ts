// Who sent an ICMP packet. The kernel here has no sock_diag for ping sockets at all, and raw
// sockets only with CONFIG_INET_RAW_DIAG (not built on the CI kernel, 6.18), so ICMP is looked up
// in /proc/net, which lists both with owner uid and inode:
// - ping sockets (SOCK_DGRAM + IPPROTO_ICMP, allowed by net.ipv4.ping_group_range) in
//   /proc/net/icmp{,6}: the kernel writes the socket's "port" as the echo identifier of every
//   request it sends, so the identifier names the socket exactly;
// - raw sockets (SOCK_RAW, e.g. ping with CAP_NET_RAW) in /proc/net/raw{,6} under the local
//   "port" of their protocol: nothing in the packet names one of them, so a raw socket is
//   credited only when it is the one socket of the packet's owner uid (NFQA_UID) that could
//   have sent it; with several candidates nobody is credited (never a guess).
// ICMP is rare next to TCP/UDP, so reading these small tables per packet is affordable.

import type { IpFamily, SocketOwner } from '../../common/types.js';
import { IPPROTO } from '../../common/types.js';
import { endpoint, readTable } from './procNet.js';

const UID_COLUMN = 7;
const INODE_COLUMN = 9;
/** IPPROTO_RAW sockets (IP_HDRINCL) can send any protocol, ICMP included (IPv4 only). */
const IPPROTO_RAW = 255;

export interface IcmpPacket {
  family: IpFamily;
  src: Uint8Array;
  dst: Uint8Array;
  /** The echo request identifier, -1 when the packet is not an echo request. */
  echoId: number;
  /** NFQA_UID: the socket owner, -1 when unknown. */
  uid: number;
}

/** The ping or raw socket that sent this ICMP packet, or null when none can be named. */
export function lookupIcmpSocket(packet: IcmpPacket, procRoot = '/proc'): SocketOwner | null {
  const suffix = packet.family === 6 ? '6' : '';
  if (packet.echoId >= 0) {
    const ping = findOne(readTable(`${procRoot}/net/icmp${suffix}`), packet, [packet.echoId]);
    if (ping !== null) return ping;
  }
  const protocols = packet.family === 6 ? [IPPROTO.ICMPV6] : [IPPROTO.ICMP, IPPROTO_RAW];
  return findOne(readTable(`${procRoot}/net/raw${suffix}`), packet, protocols);
}

/**
 * The one live socket whose local endpoint is (source or any address, one of `ports`) and whose
 * remote endpoint is (destination or any address, port 0), owned by the packet's uid when known.
 */
function findOne(table: string, packet: IcmpPacket, ports: readonly number[]): SocketOwner | null {
  if (table === '') return null;
  const zero = new Uint8Array(packet.src.length);
  const remotes = [endpoint(packet.dst, 0), endpoint(zero, 0)];
  let found: SocketOwner | null = null;
  for (const port of ports) {
    for (const local of [endpoint(packet.src, port), endpoint(zero, port)]) {
      for (const remote of remotes) {
        const key = `: ${local} ${remote} `;
        for (let at = table.indexOf(key); at >= 0; at = table.indexOf(key, at + key.length)) {
          const owner = ownerOfLine(table, at);
          if (owner === null || owner.inode === 0) continue;
          if (packet.uid >= 0 && owner.uid !== packet.uid) continue;
          if (found !== null && found.inode !== owner.inode) return null; // two candidates: not ours to choose
          found = owner;
        }
      }
    }
  }
  return found;
}

function ownerOfLine(table: string, at: number): SocketOwner | null {
  const lineEnd = table.indexOf('\n', at);
  const fields = table
    .slice(at + 2, lineEnd < 0 ? undefined : lineEnd)
    .trim()
    .split(/\s+/);
  const uid = Number(fields[UID_COLUMN - 1]);
  const inode = Number(fields[INODE_COLUMN - 1]);
  return Number.isInteger(uid) && Number.isInteger(inode) ? { inode, uid } : null;
}
