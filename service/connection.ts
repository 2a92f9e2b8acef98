// What the service reasons about: a packet record seen through the user's eyes (which program,
// which destination), built once per record.
import { formatAddress } from '../common/address.js';
import type { ExeIdentity, PacketRecord } from '../common/types.js';
import { destSubject } from './rules/ruleKey.js';

export type ProtocolName = 'TCP' | 'UDP' | 'ICMP' | 'OTHER';

export interface Connection {
  record: PacketRecord;
  destIp: string;
  /**
   * Executable path, null when no process was found or its path could not be believed (the
   * helper's ExeIdentity is not 'host'): only this one matches path rules and the whitelist.
   */
  exe: string | null;
  /** The path an unbelieved process claims (shown, never matched), else null. */
  claimedExe: string | null;
  identity: ExeIdentity | null;
  /** The socket's owner (NFQUEUE's uid), else the process's real uid, else -1: whose prompt it is. */
  uid: number;
  comm: string | null;
  /** Destination port; 0 for protocols without ports. */
  port: number;
  protocol: ProtocolName;
  /**
   * The destination's host name, learned by the helper from DNS answers this machine received
   * (docs/host-names.md); absent when unknown. Lower case, no final dot, checked characters.
   */
  host?: string;
  /**
   * When `host` is absent: the name a resolver other than the system's gave the destination
   * (PacketRecord.unverifiedHost). Anyone may have forged it: shown as unverified, never matched.
   */
  unverifiedHost?: string;
}

export function toConnection(record: PacketRecord): Connection {
  const p = record.process;
  const trusted = p !== null && p.identity === 'host';
  const conn: Connection = {
    record,
    destIp: formatAddress(record.dstAddr),
    exe: (trusted && p.exe) || null,
    claimedExe: (!trusted && p?.exe) || null,
    identity: p?.identity ?? null,
    uid: record.uid >= 0 ? record.uid : (p?.uid ?? -1),
    comm: record.process?.comm || null,
    port: record.dstPort,
    protocol: protocolName(record.protocol),
  };
  if (record.host) conn.host = record.host;
  else if (record.unverifiedHost) conn.unverifiedHost = record.unverifiedHost;
  return conn;
}

function protocolName(protocol: number): ProtocolName {
  if (protocol === 6) return 'TCP';
  if (protocol === 17) return 'UDP';
  if (protocol === 1 || protocol === 58) return 'ICMP';
  return 'OTHER';
}

/** Why a claimed path is not believed, in the words prompts and `bastion monitor` show. */
const DOUBT: Record<ExeIdentity, string> = {
  host: '',
  other_user_ns: 'other user namespace',
  exe_mismatch: 'exe does not match path',
  unverified: 'exe not verified',
  caller_unproven: 'caller not proven',
};

/**
 * The program as people see it: the path, or for a path that is not believed the path with why
 * (`/usr/bin/curl (other user namespace)`, `(other mount namespace: exe does not match path)`).
 * The tray may send it back in add_rule: such a path rule matches no process that claims it.
 */
export function displayPath(conn: Connection): string | null {
  if (conn.exe) return conn.exe;
  if (!conn.claimedExe || conn.identity === null) return null;
  const mount = conn.record.process?.otherMountNs === true && conn.identity !== 'other_user_ns' ? 'other mount namespace: ' : '';
  return `${conn.claimedExe} (${mount}${DOUBT[conn.identity]})`;
}

/** Prefix of the subject of a program whose path is not believed: not rules.json grammar, so no rule or session has it. */
const UNVERIFIED_PREFIX = '@unverified:';

/**
 * Who a connection is, in rules.json's subject grammar: the executable path, else
 * `@name:<comm>`, else (no process found) `@dest:<ip>:<port>` (`@dest:<ip>:*` for ICMP,
 * which has no port). A program whose path is not
 * believed is `@unverified:<uid>:<claimed path>`, outside the grammar: it never collides with a
 * host path's prompt, session or rule, and the uid keeps one user's from joining another's.
 */
export function connectionSubject(conn: Connection): string {
  if (conn.exe) return conn.exe;
  if (conn.claimedExe) return `${UNVERIFIED_PREFIX}${conn.uid}:${conn.claimedExe}`;
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
  return conn.exe || conn.claimedExe || conn.comm ? `${subject}:${conn.port}` : `${subject}:*`;
}

/** Whether answers about this connection may outlive it (a session or a rule): not for an unbelieved path. */
export function isVerifiedSubject(conn: Connection): boolean {
  return conn.claimedExe === null;
}

/** The program a prompt is about, for the per-program prompt limit. */
export function programOf(conn: Connection): string {
  return conn.exe ?? (conn.claimedExe ? connectionSubject(conn) : conn.comm ? `@name:${conn.comm}` : 'unknown');
}
