// What the service reasons about: a packet record seen through the user's eyes (which program,
// which destination), built once per record.
import { formatAddress } from '../common/address.js';
import type { PacketRecord } from '../common/types.js';

export type ProtocolName = 'TCP' | 'UDP' | 'ICMP' | 'OTHER';

export interface Connection {
  record: PacketRecord;
  destIp: string;
  /** Executable path, null when no process was found. */
  exe: string | null;
  comm: string | null;
  /** Destination port; 0 for protocols without ports. */
  port: number;
  protocol: ProtocolName;
}

export function toConnection(record: PacketRecord): Connection {
  return {
    record,
    destIp: formatAddress(record.dstAddr),
    exe: record.process?.exe || null,
    comm: record.process?.comm || null,
    port: record.dstPort,
    protocol: protocolName(record.protocol),
  };
}

function protocolName(protocol: number): ProtocolName {
  if (protocol === 6) return 'TCP';
  if (protocol === 17) return 'UDP';
  if (protocol === 1 || protocol === 58) return 'ICMP';
  return 'OTHER';
}

/** The session/prompt key of gui-protocol.md: `<app_path>:<port>` (`@name:<comm>:<port>` without a path). */
export function connectionKey(conn: Connection): string {
  const subject = conn.exe ?? (conn.comm ? `@name:${conn.comm}` : `@dest:${conn.destIp}`);
  return `${subject}:${conn.port}`;
}
