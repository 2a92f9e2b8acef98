// The protobuf codec for the helper <-> service bus: domain types in, bytes out, and back.
// The only module that touches generated/reflected protobuf types (proto/bastion.proto).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import type { Attribution, ExeIdentity, PacketRecord, ProcessInfo, Verdict, VerdictAction } from './types.js';
import { normalizeHostName } from './hostName.js';

/**
 * Bumped on incompatible changes to proto/bastion.proto. 2: grouped reports
 * (PacketRecord.repeats), which a version-1 service would count as one connection each.
 * 3: ProcessInfo.identity, without which a service believes no program's path.
 * Kernel verdicts (PathRules, ATTRIBUTION_KERNEL, HelperCounters 9-10) need no bump: a service
 * sends PathRules only to a helper announcing 'kernel_verdicts', and a helper decides nothing in
 * the kernel (so reports none) until a service sent them.
 */
export const PROTOCOL_VERSION = 3;
/** A frame larger than this is dropped before decoding: 256 records of ~1 KiB fit well. */
export const MAX_FRAME_BYTES = 1 << 20;

export interface Hello {
  role: 'helper' | 'service';
  softwareVersion: string;
  protocolVersion: number;
  pid: number;
  capabilities: string[];
  queueNum: number;
  ackDeadlineMs: number;
  maxHoldMs: number;
}

export interface HelperCounters {
  packets: number;
  malformed: number;
  overruns: number;
  fallbackVerdicts: number;
  pending: number;
  badFrames: number;
  cacheHits: number;
  /** Of cacheHits: answered by the addon's fast path (native/src/fast_path.h) before JS ran. */
  fastAnswered: number;
  /** Connections decided in the kernel by path rules (helper/kernelVerdicts.ts), and reports of them lost. */
  kernelDecided: number;
  kernelReportsLost: number;
}

/** A path rule the kernel may apply (proto PathRule): port 0 is every port. */
export interface PathRule {
  path: string;
  port: number;
  allow: boolean;
}

/** Path rules in one PathRules message at most (the kernel's map holds twice this: TCP and UDP). */
export const MAX_PATH_RULES = 8192;

/** An open connection, oriented as its packets leave this host (proto Flow). */
export interface Flow {
  family: 4 | 6;
  protocol: number;
  srcAddr: Uint8Array;
  srcPort: number;
  dstAddr: Uint8Array;
  dstPort: number;
  /**
   * With srcPort 0 (srcAddr empty): every connection to dst that the kernel allowed this
   * program to open (their source ports are known to the helper only).
   */
  exe?: string;
}

/** Flows in one EndConnections message at most. */
export const MAX_END_FLOWS = 4096;

export type BusMessage =
  | { kind: 'hello'; hello: Hello }
  | { kind: 'heartbeat'; sentAtMs: number; helper: HelperCounters | null }
  | { kind: 'packets'; records: PacketRecord[] }
  | { kind: 'verdicts'; verdicts: Verdict[] }
  | { kind: 'cache_reset'; reason: string }
  | { kind: 'path_rules'; rules: PathRule[] }
  | { kind: 'end_connections'; flows: Flow[] };

export type DecodeResult = { ok: true; message: BusMessage } | { ok: false; error: string };

// uint64 fields as plain numbers (start times, counters all fit in 2^53).
protobuf.util.Long = undefined as unknown as typeof protobuf.util.Long;
protobuf.configure();

function protoPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, '..', 'proto', 'bastion.proto'), join(here, '..', '..', 'proto', 'bastion.proto')];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`proto/bastion.proto not found (looked in ${candidates.join(', ')})`);
  return found;
}

const root = protobuf.loadSync(protoPath());
const Envelope = root.lookupType('bastion.v1.Envelope');

const ROLES = ['unspecified', 'helper', 'service'] as const;
const ATTRIBUTIONS: readonly (Attribution | 'unspecified')[] = [
  'unspecified',
  'sock_diag',
  'proc_net',
  'cache',
  'no_socket',
  'process_gone',
  'not_found',
  'unsupported',
];
const IDENTITIES: readonly (ExeIdentity | 'unspecified')[] = ['unspecified', 'host', 'other_user_ns', 'exe_mismatch', 'unverified', 'caller_unproven'];
/** Attributions numbered apart from the list above (see the proto). */
const NUMBERED_APART: ReadonlyMap<Attribution, number> = new Map([
  ['shared', 80],
  ['lookup_timeout', 81],
  ['caller_unknown', 82],
  ['kernel', 83],
]);
const BY_NUMBER_APART = new Map([...NUMBERED_APART].map(([name, n]) => [n, name]));
const ACTIONS: readonly (VerdictAction | 'unspecified')[] = ['unspecified', 'accept', 'drop', 'hold'];

// ---- encode ----

function processToProto(p: ProcessInfo): Record<string, unknown> {
  return {
    pid: p.pid,
    uid: p.uid,
    exe: p.exe,
    exeDeleted: p.exeDeleted,
    comm: p.comm,
    cmdline: p.cmdline,
    ppid: p.ppid,
    parentExe: p.parentExe,
    startTime: p.startTime,
    identity: IDENTITIES.indexOf(p.identity),
    otherMountNs: p.otherMountNs,
  };
}

function recordToProto(r: PacketRecord): Record<string, unknown> {
  return {
    packetId: r.packetId,
    // A record from outside the type (a bug, a fuzzer) is encoded as no family, which the decoder refuses.
    family: familyCode(r.family as number),
    transport: transportOf(r.protocol, r.family),
    ipProtocol: r.protocol,
    srcAddr: r.srcAddr,
    dstAddr: r.dstAddr,
    srcPort: r.srcPort,
    dstPort: r.dstPort,
    icmpType: r.icmpType < 0 ? 0 : r.icmpType,
    icmpCode: r.icmpCode < 0 ? 0 : r.icmpCode,
    inIfindex: r.inIfindex,
    outIfindex: r.outIfindex,
    hasUid: r.uid >= 0,
    uid: r.uid < 0 ? 0 : r.uid,
    gid: r.gid < 0 ? 0 : r.gid,
    malformed: r.malformed,
    process: r.process ? processToProto(r.process) : null,
    socketInode: r.socketInode,
    attribution: NUMBERED_APART.get(r.attribution) ?? ATTRIBUTIONS.indexOf(r.attribution),
    lookupMicros: r.lookupMicros,
    payloadLength: r.payloadLength,
    decidedByHelper: r.helperVerdict !== undefined,
    helperAccepted: r.helperVerdict === 'accept',
    repeats: r.repeats ?? 0,
    host: r.host ?? '',
    unverifiedHost: r.host ? '' : (r.unverifiedHost ?? ''),
  };
}

function transportOf(protocol: number, family: 4 | 6): number {
  if (protocol === 6) return 1;
  if (protocol === 17) return 2;
  if (protocol === 1 && family === 4) return 3;
  if (protocol === 58 && family === 6) return 4;
  return 0;
}

function toProto(m: BusMessage): Record<string, unknown> {
  switch (m.kind) {
    case 'hello':
      return { hello: { ...m.hello, role: ROLES.indexOf(m.hello.role) } };
    case 'heartbeat':
      return { heartbeat: { sentAtMs: m.sentAtMs, helper: m.helper } };
    case 'packets':
      return { packets: { records: m.records.map(recordToProto) } };
    case 'verdicts':
      return {
        verdicts: {
          verdicts: m.verdicts.map((v) => ({
            packetId: v.packetId,
            action: ACTIONS.indexOf(v.action),
            hasMark: v.mark !== undefined,
            mark: v.mark ?? 0,
            holdMs: v.holdMs ?? 0,
            cacheMs: v.cacheMs ?? 0,
          })),
        },
      };
    case 'cache_reset':
      return { cacheReset: { reason: m.reason } };
    case 'path_rules':
      return { pathRules: { rules: m.rules } };
    case 'end_connections':
      return {
        endConnections: {
          flows: m.flows.map((f) => ({
            family: familyCode(f.family),
            ipProtocol: f.protocol,
            srcAddr: f.srcAddr,
            srcPort: f.srcPort,
            dstAddr: f.dstAddr,
            dstPort: f.dstPort,
            exe: f.exe ?? '',
          })),
        },
      };
  }
}

/** Encodes straight from plain objects: fromObject's validation pass would double the cost. */
export function encodeBusMessage(m: BusMessage): Uint8Array {
  return Envelope.encode(toProto(m)).finish();
}

// ---- decode ----

type Obj = Record<string, unknown>;
const num = (v: unknown): number => (typeof v === 'number' ? v : 0);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const bool = (v: unknown): boolean => v === true;
const bytes = (v: unknown): Uint8Array => (v instanceof Uint8Array ? v : new Uint8Array(0));

function processFromProto(p: Obj): ProcessInfo {
  return {
    pid: num(p['pid']),
    uid: num(p['uid']),
    exe: str(p['exe']),
    exeDeleted: bool(p['exeDeleted']),
    comm: str(p['comm']),
    cmdline: Array.isArray(p['cmdline']) ? p['cmdline'].map(str) : [],
    ppid: num(p['ppid']),
    parentExe: str(p['parentExe']),
    startTime: num(p['startTime']),
    identity: identityFromProto(p['identity']),
    otherMountNs: bool(p['otherMountNs']),
  };
}

/** Anything but a known value (an older helper sends none) is 'unverified': never trusted. */
function identityFromProto(v: unknown): ExeIdentity {
  const identity = IDENTITIES[num(v)];
  return identity === undefined || identity === 'unspecified' ? 'unverified' : identity;
}

function recordFromProto(r: Obj): PacketRecord | string {
  const family = r['family'] === 1 ? 4 : r['family'] === 2 ? 6 : 0;
  if (family === 0) return 'record without an IP family';
  const src = bytes(r['srcAddr']);
  const dst = bytes(r['dstAddr']);
  const addrLen = family === 4 ? 4 : 16;
  const malformed = bool(r['malformed']);
  if (!malformed && (src.length !== addrLen || dst.length !== addrLen)) return 'record with a bad address length';
  const attribution = BY_NUMBER_APART.get(num(r['attribution'])) ?? ATTRIBUTIONS[num(r['attribution'])];
  const isIcmp = r['transport'] === 3 || r['transport'] === 4;
  const record: PacketRecord = {
    packetId: num(r['packetId']),
    family,
    protocol: num(r['ipProtocol']),
    srcAddr: src,
    dstAddr: dst,
    srcPort: num(r['srcPort']),
    dstPort: num(r['dstPort']),
    icmpType: isIcmp ? num(r['icmpType']) : -1,
    icmpCode: isIcmp ? num(r['icmpCode']) : -1,
    inIfindex: num(r['inIfindex']),
    outIfindex: num(r['outIfindex']),
    uid: bool(r['hasUid']) ? num(r['uid']) : -1,
    gid: bool(r['hasUid']) ? num(r['gid']) : -1,
    malformed,
    process: r['process'] ? processFromProto(r['process'] as Obj) : null,
    socketInode: num(r['socketInode']),
    attribution: attribution === undefined || attribution === 'unspecified' ? 'not_found' : attribution,
    lookupMicros: num(r['lookupMicros']),
    payloadLength: num(r['payloadLength']),
  };
  if (bool(r['decidedByHelper'])) {
    record.helperVerdict = bool(r['helperAccepted']) ? 'accept' : 'drop';
    if (num(r['repeats']) > 1) record.repeats = num(r['repeats']);
  }
  // Checked here too: the name ends up in prompts, terminals and journal lines.
  const host = typeof r['host'] === 'string' && r['host'] !== '' ? normalizeHostName(r['host']) : null;
  if (host !== null) record.host = host;
  else {
    const unverified = typeof r['unverifiedHost'] === 'string' && r['unverifiedHost'] !== '' ? normalizeHostName(r['unverifiedHost']) : null;
    if (unverified !== null) record.unverifiedHost = unverified;
  }
  return record;
}

/** Decodes one frame; never throws. A frame over maxBytes is refused before decoding. */
export function decodeBusMessage(frame: Uint8Array, maxBytes = MAX_FRAME_BYTES): DecodeResult {
  if (frame.length > maxBytes) return { ok: false, error: `frame of ${frame.length} bytes exceeds ${maxBytes}` };
  // Fields are read straight off the decoded message (unset ones come from its prototype's
  // defaults); a toObject() copy would cost as much as the decode itself.
  let env: Obj;
  try {
    env = Envelope.decode(frame) as unknown as Obj;
  } catch (err) {
    return { ok: false, error: `undecodable frame: ${(err as Error).message}` };
  }
  switch (env['body']) {
    case 'hello': {
      const h = env['hello'] as Obj;
      const role = ROLES[num(h['role'])];
      if (role !== 'helper' && role !== 'service') return { ok: false, error: 'hello without a role' };
      return {
        ok: true,
        message: {
          kind: 'hello',
          hello: {
            role,
            softwareVersion: str(h['softwareVersion']),
            protocolVersion: num(h['protocolVersion']),
            pid: num(h['pid']),
            capabilities: Array.isArray(h['capabilities']) ? h['capabilities'].map(str) : [],
            queueNum: num(h['queueNum']),
            ackDeadlineMs: num(h['ackDeadlineMs']),
            maxHoldMs: num(h['maxHoldMs']),
          },
        },
      };
    }
    case 'heartbeat': {
      const hb = env['heartbeat'] as Obj;
      const c = hb['helper'] as Obj | null | undefined;
      return {
        ok: true,
        message: {
          kind: 'heartbeat',
          sentAtMs: num(hb['sentAtMs']),
          helper: c
            ? {
                packets: num(c['packets']),
                malformed: num(c['malformed']),
                overruns: num(c['overruns']),
                fallbackVerdicts: num(c['fallbackVerdicts']),
                pending: num(c['pending']),
                badFrames: num(c['badFrames']),
                cacheHits: num(c['cacheHits']),
                fastAnswered: num(c['fastAnswered']),
                kernelDecided: num(c['kernelDecided']),
                kernelReportsLost: num(c['kernelReportsLost']),
              }
            : null,
        },
      };
    }
    case 'packets': {
      const records: PacketRecord[] = [];
      for (const r of ((env['packets'] as Obj)['records'] as Obj[] | undefined) ?? []) {
        const rec = recordFromProto(r);
        if (typeof rec === 'string') return { ok: false, error: rec };
        records.push(rec);
      }
      return { ok: true, message: { kind: 'packets', records } };
    }
    case 'verdicts': {
      const verdicts: Verdict[] = [];
      for (const v of ((env['verdicts'] as Obj)['verdicts'] as Obj[] | undefined) ?? []) {
        const action = ACTIONS[num(v['action'])];
        if (action === undefined || action === 'unspecified') return { ok: false, error: 'verdict without an action' };
        const verdict: Verdict = { packetId: num(v['packetId']), action };
        if (bool(v['hasMark'])) verdict.mark = num(v['mark']);
        if (action === 'hold') verdict.holdMs = num(v['holdMs']);
        else if (num(v['cacheMs']) > 0) verdict.cacheMs = num(v['cacheMs']);
        verdicts.push(verdict);
      }
      return { ok: true, message: { kind: 'verdicts', verdicts } };
    }
    case 'cacheReset':
      return { ok: true, message: { kind: 'cache_reset', reason: str((env['cacheReset'] as Obj)['reason']) } };
    case 'pathRules': {
      const given = ((env['pathRules'] as Obj)['rules'] as Obj[] | undefined) ?? [];
      if (given.length > MAX_PATH_RULES) return { ok: false, error: `${given.length} path rules exceed ${MAX_PATH_RULES}` };
      const rules: PathRule[] = [];
      for (const r of given) {
        const path = str(r['path']);
        const port = num(r['port']);
        if (!path.startsWith('/') || port > 65535) return { ok: false, error: 'path rule without an absolute path or with a bad port' };
        rules.push({ path, port, allow: bool(r['allow']) });
      }
      return { ok: true, message: { kind: 'path_rules', rules } };
    }
    case 'endConnections': {
      const given = ((env['endConnections'] as Obj)['flows'] as Obj[] | undefined) ?? [];
      if (given.length > MAX_END_FLOWS) return { ok: false, error: `${given.length} flows exceed ${MAX_END_FLOWS}` };
      const flows: Flow[] = [];
      for (const f of given) {
        const family = f['family'] === 1 ? 4 : f['family'] === 2 ? 6 : 0;
        const src = bytes(f['srcAddr']);
        const dst = bytes(f['dstAddr']);
        const srcPort = num(f['srcPort']);
        const dstPort = num(f['dstPort']);
        const exe = str(f['exe']);
        const len = family === 4 ? 4 : 16;
        const byProgram = srcPort === 0 && src.length === 0 && exe.startsWith('/');
        if (family === 0 || (!byProgram && src.length !== len) || dst.length !== len || srcPort > 65535 || dstPort > 65535) {
          return { ok: false, error: 'flow with a bad family, address or port' };
        }
        flows.push({ family, protocol: num(f['ipProtocol']), srcAddr: src, srcPort, dstAddr: dst, dstPort, ...(byProgram && { exe }) });
      }
      return { ok: true, message: { kind: 'end_connections', flows } };
    }
    default:
      return { ok: false, error: 'empty envelope' };
  }
}

function familyCode(family: number): number {
  return family === 4 ? 1 : family === 6 ? 2 : 0;
}
