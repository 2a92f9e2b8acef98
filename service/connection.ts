// What the service reasons about: a packet record seen through the user's eyes (which program,
// which destination), built once per record.
import { formatAddress } from '../common/address.js';
import type { PacketRecord } from '../common/types.js';
import { destSubject } from './rules/ruleKey.js';

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
  /**
   * The destination's host name, learned by the helper from DNS answers this machine received
   * (docs/host-names.md); absent when unknown. Lower case, no final dot, checked characters.
   */
  host?: string;
}

export function toConnection(record: PacketRecord): Connection {
  const conn: Connection = {
    record,
    destIp: formatAddress(record.dstAddr),
    exe: record.process?.exe || null,
    comm: record.process?.comm || null,
    port: record.dstPort,
    protocol: protocolName(record.protocol),
  };
  if (record.host) conn.host = record.host;
  return conn;
}

function protocolName(protocol: number): ProtocolName {
  if (protocol === 6) return 'TCP';
  if (protocol === 17) return 'UDP';
  if (protocol === 1 || protocol === 58) return 'ICMP';
  return 'OTHER';
}

/**
 * Who a connection is, in rules.json's subject grammar: the executable path, else
 * `@name:<comm>`, else (no process found) `@dest:<ip>:<port>` (`@dest:<ip>:*` for ICMP,
 * which has no port).
 */
export function connectionSubject(conn: Connection): string {
  if (conn.exe) return conn.exe;
  if (conn.comm) return `@name:${conn.comm}`;
  return destSubject(conn.destIp, conn.port);
}

/**
 * The prompt/session key of gui-protocol.md (`<app_path>:<port>`, `@name:<comm>:<port>`): what
 * `clear_cache` names and what connections waiting for the same answer share. A `@dest` subject
 * already carries its port, so it is keyed with `*` as rules.json stores it.
 */
export function connectionKey(conn: Connection): string {
  const subject = connectionSubject(conn);
  return conn.exe || conn.comm ? `${subject}:${conn.port}` : `${subject}:*`;
}

/** The program a prompt is about, for the per-program prompt limit. */
export function programOf(conn: Connection): string {
  return conn.exe ?? (conn.comm ? `@name:${conn.comm}` : 'unknown');
}
