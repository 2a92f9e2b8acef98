// The protobuf codec for the helper <-> service bus: domain types in, bytes out, and back.
// The only module that touches the generated protobuf types (common/generated/bus.ts, from
// proto/bastion.proto); what is written here by hand is the mapping to the domain's names.
import * as pb from './generated/bus.js';
import { IPPROTO, type Attribution, type ExeIdentity, type PacketRecord, type ProcessInfo, type Verdict, type VerdictAction } from './types.js';
import { normalizeHostName } from './hostName.js';

/**
 * Bumped on incompatible changes to proto/bastion.proto. 2: grouped reports
 * (PacketRecord.repeats), which a version-1 service would count as one connection each.
 * 3: ProcessInfo.identity, without which a service believes no program's path.
 * Kernel verdicts (PathRules, ATTRIBUTION_KERNEL, HelperCounters 9-10) need no bump: a service
 * sends PathRules only to a helper announcing 'kernel_verdicts', and a helper decides nothing in
 * the kernel (so reports none) until a service sent them. Nor do InboundPolicy and InboundState:
 * a service sends the policy only to a helper announcing 'inbound', which reports only in reply.
 * ProcessInfo 10-13 (cwd, app id, exe dev/ino) need none either: from an older helper they are
 * absent, and a rule that needs them (script, app_id, sha256) then matches nothing.
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
  /** New connections dropped unasked because their user had too many waiting (helper/uidQueues.ts). */
  floodDrops: number;
  /** Lookups of a packet's process that ran out of time and went on at a later turn (helper/helper.ts). */
  lookupRetries: number;
  /** Of fastAnswered: SYNs whose caller came from the flow note filter's slots, not sock_diag (native/src/fast_path.c). */
  fastByFlow: number;
}

/** A path rule the kernel may apply (proto PathRule): port 0 is every port. */
export interface PathRule {
  path: string;
  port: number;
  allow: boolean;
}

/** What the helper's inbound policy came to (proto InboundState). */
export type InboundStateKind = 'off' | 'bastion' | 'other' | 'error';

export interface InboundState {
  state: InboundStateKind;
  /** For 'other': ufw, firewalld, nftables or iptables. */
  firewall: string;
  detail: string;
}

/** An inbound state's firewall name and detail are cut to this many characters (they are shown). */
const MAX_INBOUND_TEXT = 1024;

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
  | { kind: 'inbound_policy'; enabled: boolean }
  | { kind: 'inbound_state'; inbound: InboundState }
  | { kind: 'end_connections'; flows: Flow[] };

export type DecodeResult = { ok: true; message: BusMessage } | { ok: false; error: string };

/** A domain enum's proto numbers both ways, from a table the compiler checks is complete. */
class EnumMapping<Name extends string> {
  private readonly byName: ReadonlyMap<string, number>;
  private readonly byNumber: ReadonlyMap<number, Name>;

  constructor(
    table: Record<Name, number>,
    /** What a name outside the domain type (a bug, a fuzzer) is sent as: the enum's UNSPECIFIED. */
    private readonly unspecified: number,
  ) {
    const entries = Object.entries(table) as [Name, number][];
    this.byName = new Map(entries);
    this.byNumber = new Map(entries.map(([name, n]) => [n, name]));
  }

  toProto(name: Name): number {
    return this.byName.get(name) ?? this.unspecified;
  }

  /** undefined for UNSPECIFIED and for numbers this side does not know (a newer peer's). */
  fromProto(n: number): Name | undefined {
    return this.byNumber.get(n);
  }
}

const ROLES = new EnumMapping<Hello['role']>(
  { helper: pb.Hello_Role.ROLE_HELPER, service: pb.Hello_Role.ROLE_SERVICE } satisfies Record<Hello['role'], pb.Hello_Role>,
  pb.Hello_Role.ROLE_UNSPECIFIED,
);
const ATTRIBUTIONS = new EnumMapping<Attribution>(
  {
    sock_diag: pb.Attribution.ATTRIBUTION_SOCK_DIAG,
    proc_net: pb.Attribution.ATTRIBUTION_PROC_NET,
    cache: pb.Attribution.ATTRIBUTION_CACHE,
    no_socket: pb.Attribution.ATTRIBUTION_NO_SOCKET,
    process_gone: pb.Attribution.ATTRIBUTION_PROCESS_GONE,
    not_found: pb.Attribution.ATTRIBUTION_NOT_FOUND,
    unsupported: pb.Attribution.ATTRIBUTION_UNSUPPORTED,
    shared: pb.Attribution.ATTRIBUTION_SHARED,
    lookup_timeout: pb.Attribution.ATTRIBUTION_LOOKUP_TIMEOUT,
    caller_unknown: pb.Attribution.ATTRIBUTION_CALLER_UNKNOWN,
    kernel: pb.Attribution.ATTRIBUTION_KERNEL,
  } satisfies Record<Attribution, pb.Attribution>,
  pb.Attribution.ATTRIBUTION_UNSPECIFIED,
);
const IDENTITIES = new EnumMapping<ExeIdentity>(
  {
    host: pb.ExeIdentity.EXE_IDENTITY_HOST,
    other_user_ns: pb.ExeIdentity.EXE_IDENTITY_OTHER_USER_NS,
    exe_mismatch: pb.ExeIdentity.EXE_IDENTITY_EXE_MISMATCH,
    unverified: pb.ExeIdentity.EXE_IDENTITY_UNVERIFIED,
    caller_unproven: pb.ExeIdentity.EXE_IDENTITY_CALLER_UNPROVEN,
  } satisfies Record<ExeIdentity, pb.ExeIdentity>,
  pb.ExeIdentity.EXE_IDENTITY_UNSPECIFIED,
);
const ACTIONS = new EnumMapping<VerdictAction>(
  {
    accept: pb.Verdict_Action.ACTION_ACCEPT,
    drop: pb.Verdict_Action.ACTION_DROP,
    hold: pb.Verdict_Action.ACTION_HOLD,
  } satisfies Record<VerdictAction, pb.Verdict_Action>,
  pb.Verdict_Action.ACTION_UNSPECIFIED,
);
const INBOUND_STATES = new EnumMapping<InboundStateKind>(
  {
    off: pb.InboundState_State.STATE_OFF,
    bastion: pb.InboundState_State.STATE_BASTION,
    other: pb.InboundState_State.STATE_OTHER,
    error: pb.InboundState_State.STATE_ERROR,
  } satisfies Record<InboundStateKind, pb.InboundState_State>,
  pb.InboundState_State.STATE_UNSPECIFIED,
);

/** An IP family (4 or 6) on the wire; anything else (a bug, a fuzzer) as none, which the decoder refuses. */
function familyToProto(family: number): pb.IpFamily {
  return family === 4 ? pb.IpFamily.FAMILY_IPV4 : family === 6 ? pb.IpFamily.FAMILY_IPV6 : pb.IpFamily.FAMILY_UNSPECIFIED;
}

/** 4 or 6, or 0 for none or a value this side does not know. */
function familyFromProto(family: number): 4 | 6 | 0 {
  return family === pb.IpFamily.FAMILY_IPV4 ? 4 : family === pb.IpFamily.FAMILY_IPV6 ? 6 : 0;
}

// ---- encode ----

function processToProto(p: ProcessInfo): pb.ProcessInfo {
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
    identity: IDENTITIES.toProto(p.identity),
    otherMountNs: p.otherMountNs,
    cwd: p.cwd ?? '',
    appId: p.appId ?? '',
    exeDev: p.exeFile?.dev ?? 0,
    exeIno: p.exeFile?.ino ?? 0,
  };
}

function recordToProto(r: PacketRecord): pb.PacketRecord {
  return {
    packetId: r.packetId,
    // A record from outside the type (a bug, a fuzzer) is encoded as no family, which the decoder refuses.
    family: familyToProto(r.family),
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
    attribution: ATTRIBUTIONS.toProto(r.attribution),
    lookupMicros: r.lookupMicros,
    payloadLength: r.payloadLength,
    decidedByHelper: r.helperVerdict !== undefined,
    helperAccepted: r.helperVerdict === 'accept',
    repeats: r.repeats ?? 0,
    host: r.host ?? '',
    unverifiedHost: r.host ? '' : (r.unverifiedHost ?? ''),
  };
}

function transportOf(protocol: number, family: 4 | 6): pb.Transport {
  if (protocol === IPPROTO.TCP) return pb.Transport.TRANSPORT_TCP;
  if (protocol === IPPROTO.UDP) return pb.Transport.TRANSPORT_UDP;
  if (protocol === IPPROTO.ICMP && family === 4) return pb.Transport.TRANSPORT_ICMP;
  if (protocol === IPPROTO.ICMPV6 && family === 6) return pb.Transport.TRANSPORT_ICMPV6;
  return pb.Transport.TRANSPORT_OTHER;
}

function toProto(m: BusMessage): pb.Envelope {
  switch (m.kind) {
    case 'hello':
      return { hello: { ...m.hello, role: ROLES.toProto(m.hello.role) } };
    case 'heartbeat':
      return { heartbeat: { sentAtMs: m.sentAtMs, helper: m.helper } };
    case 'packets':
      return { packets: { records: m.records.map(recordToProto) } };
    case 'verdicts':
      return {
        verdicts: {
          verdicts: m.verdicts.map((v) => ({
            packetId: v.packetId,
            action: ACTIONS.toProto(v.action),
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
    case 'inbound_policy':
      return { inboundPolicy: { enabled: m.enabled } };
    case 'inbound_state':
      return { inboundState: { state: INBOUND_STATES.toProto(m.inbound.state), firewall: m.inbound.firewall, detail: m.inbound.detail } };
    case 'end_connections':
      return {
        endConnections: {
          flows: m.flows.map((f) => ({
            family: familyToProto(f.family),
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

export function encodeBusMessage(m: BusMessage): Uint8Array {
  return pb.encodeEnvelope(toProto(m));
}

// ---- decode ----
// Fields are read straight off the decoded messages (unset ones come from their prototypes'
// defaults); a toObject() copy would cost as much as the decode itself.

function processFromProto(p: pb.ProcessInfo): ProcessInfo {
  const info: ProcessInfo = {
    pid: p.pid,
    uid: p.uid,
    exe: p.exe,
    exeDeleted: p.exeDeleted,
    comm: p.comm,
    cmdline: [...p.cmdline],
    ppid: p.ppid,
    parentExe: p.parentExe,
    startTime: p.startTime,
    // Anything but a known value (an older helper sends none) is 'unverified': never trusted.
    identity: IDENTITIES.fromProto(p.identity) ?? 'unverified',
    otherMountNs: p.otherMountNs,
  };
  if (p.cwd !== '') info.cwd = p.cwd;
  if (p.appId !== '') info.appId = p.appId;
  if (p.exeIno !== 0) info.exeFile = { dev: p.exeDev, ino: p.exeIno };
  return info;
}

function recordFromProto(r: pb.PacketRecord): PacketRecord | string {
  const family = familyFromProto(r.family);
  if (family === 0) return 'record without an IP family';
  const src = r.srcAddr;
  const dst = r.dstAddr;
  const addrLen = family === 4 ? 4 : 16;
  const malformed = r.malformed;
  if (!malformed && (src.length !== addrLen || dst.length !== addrLen)) return 'record with a bad address length';
  const isIcmp = r.transport === pb.Transport.TRANSPORT_ICMP || r.transport === pb.Transport.TRANSPORT_ICMPV6;
  const record: PacketRecord = {
    packetId: r.packetId,
    family,
    protocol: r.ipProtocol,
    srcAddr: src,
    dstAddr: dst,
    srcPort: r.srcPort,
    dstPort: r.dstPort,
    icmpType: isIcmp ? r.icmpType : -1,
    icmpCode: isIcmp ? r.icmpCode : -1,
    inIfindex: r.inIfindex,
    outIfindex: r.outIfindex,
    uid: r.hasUid ? r.uid : -1,
    gid: r.hasUid ? r.gid : -1,
    malformed,
    process: r.process ? processFromProto(r.process) : null,
    socketInode: r.socketInode,
    attribution: ATTRIBUTIONS.fromProto(r.attribution) ?? 'not_found',
    lookupMicros: r.lookupMicros,
    payloadLength: r.payloadLength,
  };
  if (r.decidedByHelper) {
    record.helperVerdict = r.helperAccepted ? 'accept' : 'drop';
    if (r.repeats > 1) record.repeats = r.repeats;
  }
  // Checked here too: the name ends up in prompts, terminals and journal lines.
  const host = r.host !== '' ? normalizeHostName(r.host) : null;
  if (host !== null) record.host = host;
  else {
    const unverified = r.unverifiedHost !== '' ? normalizeHostName(r.unverifiedHost) : null;
    if (unverified !== null) record.unverifiedHost = unverified;
  }
  return record;
}

function helloFromProto(h: pb.Hello): DecodeResult {
  const role = ROLES.fromProto(h.role);
  if (role === undefined) return { ok: false, error: 'hello without a role' };
  const hello: Hello = {
    role,
    softwareVersion: h.softwareVersion,
    protocolVersion: h.protocolVersion,
    pid: h.pid,
    capabilities: [...h.capabilities],
    queueNum: h.queueNum,
    ackDeadlineMs: h.ackDeadlineMs,
    maxHoldMs: h.maxHoldMs,
  };
  return { ok: true, message: { kind: 'hello', hello } };
}

function countersFromProto(c: pb.HelperCounters): HelperCounters {
  return {
    packets: c.packets,
    malformed: c.malformed,
    overruns: c.overruns,
    fallbackVerdicts: c.fallbackVerdicts,
    pending: c.pending,
    badFrames: c.badFrames,
    cacheHits: c.cacheHits,
    fastAnswered: c.fastAnswered,
    kernelDecided: c.kernelDecided,
    kernelReportsLost: c.kernelReportsLost,
    floodDrops: c.floodDrops,
    lookupRetries: c.lookupRetries,
    fastByFlow: c.fastByFlow,
  };
}

function verdictsFromProto(given: readonly pb.Verdict[]): DecodeResult {
  const verdicts: Verdict[] = [];
  for (const v of given) {
    const action = ACTIONS.fromProto(v.action);
    if (action === undefined) return { ok: false, error: 'verdict without an action' };
    const verdict: Verdict = { packetId: v.packetId, action };
    if (v.hasMark) verdict.mark = v.mark;
    if (action === 'hold') verdict.holdMs = v.holdMs;
    else if (v.cacheMs > 0) verdict.cacheMs = v.cacheMs;
    verdicts.push(verdict);
  }
  return { ok: true, message: { kind: 'verdicts', verdicts } };
}

function pathRulesFromProto(given: readonly pb.PathRule[]): DecodeResult {
  if (given.length > MAX_PATH_RULES) return { ok: false, error: `${given.length} path rules exceed ${MAX_PATH_RULES}` };
  const rules: PathRule[] = [];
  for (const { path, port, allow } of given) {
    if (!path.startsWith('/') || port > 65535) return { ok: false, error: 'path rule without an absolute path or with a bad port' };
    rules.push({ path, port, allow });
  }
  return { ok: true, message: { kind: 'path_rules', rules } };
}

function endConnectionsFromProto(given: readonly pb.Flow[]): DecodeResult {
  if (given.length > MAX_END_FLOWS) return { ok: false, error: `${given.length} flows exceed ${MAX_END_FLOWS}` };
  const flows: Flow[] = [];
  for (const f of given) {
    const family = familyFromProto(f.family);
    const { srcAddr, dstAddr, srcPort, dstPort, exe } = f;
    const len = family === 4 ? 4 : 16;
    const byProgram = srcPort === 0 && srcAddr.length === 0 && exe.startsWith('/');
    if (family === 0 || (!byProgram && srcAddr.length !== len) || dstAddr.length !== len || srcPort > 65535 || dstPort > 65535) {
      return { ok: false, error: 'flow with a bad family, address or port' };
    }
    flows.push({ family, protocol: f.ipProtocol, srcAddr, srcPort, dstAddr, dstPort, ...(byProgram && { exe }) });
  }
  return { ok: true, message: { kind: 'end_connections', flows } };
}

/** Decodes one frame; never throws. A frame over maxBytes is refused before decoding. */
export function decodeBusMessage(frame: Uint8Array, maxBytes = MAX_FRAME_BYTES): DecodeResult {
  if (frame.length > maxBytes) return { ok: false, error: `frame of ${frame.length} bytes exceeds ${maxBytes}` };
  let env: pb.Envelope;
  try {
    env = pb.decodeEnvelope(frame);
  } catch (err) {
    return { ok: false, error: `undecodable frame: ${(err as Error).message}` };
  }
  switch (env.body) {
    case 'hello':
      return helloFromProto(env.hello);
    case 'heartbeat':
      return {
        ok: true,
        message: { kind: 'heartbeat', sentAtMs: env.heartbeat.sentAtMs, helper: env.heartbeat.helper ? countersFromProto(env.heartbeat.helper) : null },
      };
    case 'packets': {
      const records: PacketRecord[] = [];
      for (const r of env.packets.records) {
        const rec = recordFromProto(r);
        if (typeof rec === 'string') return { ok: false, error: rec };
        records.push(rec);
      }
      return { ok: true, message: { kind: 'packets', records } };
    }
    case 'verdicts':
      return verdictsFromProto(env.verdicts.verdicts);
    case 'cacheReset':
      return { ok: true, message: { kind: 'cache_reset', reason: env.cacheReset.reason } };
    case 'pathRules':
      return pathRulesFromProto(env.pathRules.rules);
    case 'inboundPolicy':
      return { ok: true, message: { kind: 'inbound_policy', enabled: env.inboundPolicy.enabled } };
    case 'inboundState': {
      const state = INBOUND_STATES.fromProto(env.inboundState.state);
      if (state === undefined) return { ok: false, error: 'inbound state without a state' };
      const { firewall, detail } = env.inboundState;
      return {
        ok: true,
        message: { kind: 'inbound_state', inbound: { state, firewall: firewall.slice(0, MAX_INBOUND_TEXT), detail: detail.slice(0, MAX_INBOUND_TEXT) } },
      };
    }
    case 'endConnections':
      return endConnectionsFromProto(env.endConnections.flows);
    case undefined:
      return { ok: false, error: 'empty envelope' };
  }
}
