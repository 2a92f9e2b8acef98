// Loads the project's N-API addon (native/): NFQUEUE, sock_diag and SO_PEERCRED.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface QueueOpenOptions {
  queueNum: number;
  copyRange: number;
  maxLen: number;
  rcvbufBytes: number;
  failOpen: boolean;
  batchMax: number;
  /** Verdict for packets of a batch whose JS handler threw: 1 accept, 0 drop. */
  exceptionVerdict: 0 | 1;
}

export interface QueueCountersRaw {
  packets: number;
  overruns: number;
  verdictErrors: number;
  badMessages: number;
  handoffFull: number;
  /** Packets answered by the fast path (native/src/fast_path.h). */
  fastDecided: number;
  /** Packets the fast path matched but left to JS because process events were unread. */
  fastEventsPending: number;
  /** Lookups in which an armed process's fds did not hold the packet's socket. */
  fastMissed: number;
  /** Of those answered, TCP connections whose caller the kernel recorded by their ends (no sock_diag). */
  fastByFlow: number;
}

export interface NativeAddon {
  /** Where each field of a packet slot's header lies (struct bq_slot_header), and its flags. */
  readonly slotLayout: SlotLayout;
  /** fd numbers the fast path tries per armed process at most (BQ_FAST_FDS). */
  fastPathFds: number;
  queueOpen(
    options: QueueOpenOptions,
    /** answeredWaiting: packets the fast path answered wait for queueFastPathTake. */
    onBatch: (count: number, answeredWaiting: boolean) => void,
    onError: (err: Error) => void,
  ): { handle: object; slots: ArrayBuffer; slotSize: number; batchMax: number };
  queueVerdict(handle: object, packetId: number, accept: boolean, mark?: number): number;
  queueReject(handle: object, packetId: number, mark: number): number;
  queueCounters(handle: object): QueueCountersRaw;
  queueClose(handle: object): void;
  /** Answers new connections of armed processes before JS runs (native/src/fast_path.h). */
  queueFastPathEnable(queue: object, procEvents: object): void;
  queueFastPathArm(
    queue: object,
    token: number,
    pid: number,
    uid: number,
    fds: Int32Array,
    protocol: number,
    port: number,
    accept: boolean,
    mark: number | undefined,
    ttlMs: number,
  ): number;
  /** Copies answered packets into the slots buffer; how many (0: none left), -EBUSY inside a batch. */
  queueFastPathTake(queue: object): number;
  /** Disarms pid; without a pid, every entry. */
  queueFastPathDisarm(queue: object, pid?: number): void;
  /** The fast path's own packet parser, for tests: null for what it leaves to JS. */
  flowParse(hwProtocol: number, packet: Uint8Array): { family: 4 | 6; protocol: number; srcPort: number; dstPort: number } | null;
  sockDiagOpen(): object;
  sockDiagLookup(
    handle: object,
    family: number,
    protocol: number,
    src: Uint8Array,
    srcPort: number,
    dst: Uint8Array,
    dstPort: number,
    out: Uint32Array,
  ): number;
  /** SOCK_DESTROY of the one socket with these ends (oriented as sockDiagLookup's): 0 or -errno. */
  sockDiagDestroy(handle: object, family: number, protocol: number, src: Uint8Array, srcPort: number, dst: Uint8Array, dstPort: number): number;
  /**
   * Attaches the connect()/sendmsg() caller-recording programs to the cgroup v2 at that path
   * (native/src/caller_bpf.h); sockDiagLookup then reports callers. exe: records carry the
   * caller's executable and start time; flows: TCP connections are recorded by their ends; log:
   * libbpf's (and the verifier's) words about a load that failed on the way. Throws (errno, and
   * log) when refused.
   */
  callerAttach(cgroup2Path: string, verdicts?: boolean): { exe: boolean; flows: boolean; verdicts: boolean; log: string };
  /**
   * In-kernel verdicts (native/bpf/caller.bpf.c decide()): by the executable's (dev, ino) as the
   * kernel numbers them, protocol and destination port (0: every port). 0 or -errno.
   */
  kernelVerdictSet(dev: number, ino: bigint, protocol: number, port: number, allow: boolean): number;
  kernelVerdictDelete(dev: number, ino: bigint, protocol: number, port: number): number;
  kernelVerdictClear(): number;
  /** The decisions reported since the last call, verdictEvent.bytes each, into out; lost: reports without room. */
  kernelVerdictTake(out: Uint8Array): { count: number; lost: number };
  /**
   * Pins the UDP allow filter (caller.bpf.c bastion_udp_allow) at path in a bpf file system, for
   * our chain's `-m bpf --object-pinned` match. 0 or -errno: -ENOTSUP when the kernel refused it.
   */
  kernelUdpAllowPin(path: string): number;
  /** The helper's sign of life, without which (5 s) the UDP allow filter allows nothing. 0 or -errno. */
  kernelVerdictAlive(): number;
  /** Where each field of a kernelVerdictTake() event lies (bq_verdict_event), and its constants. */
  readonly verdictEvent: VerdictEventLayout;
  /** Where sockDiagLookup writes each field in an out array of `length` elements. */
  readonly sockDiagOut: SockDiagOut;
  /** Where procEventsRead writes each field of an event. */
  readonly procEvent: ProcEventLayout;
  callerDetach(): void;
  callerFlowLookup(family: 2 | 10, src: Uint8Array, srcPort: number, dst: Uint8Array, dstPort: number, synSeq: number): number;
  callerFlowNotePin(path: string): number;
  peerCred(fd: number): { pid: number; uid: number; gid: number };
  /** sd_notify(3): one datagram to $NOTIFY_SOCKET ("/path" or "@abstract"); 0 or -errno. */
  sdNotify(socketPath: string, state: string): number;
  /** One datagram to a Unix socket path, never blocking (MSG_DONTWAIT); 0 or -errno. */
  unixDatagramSend(socketPath: string, data: string): number;
}

/** Byte offsets of struct bq_slot_header (native/src/queue.h) in each slot, and its flag bits. */
export interface SlotLayout {
  /** The payload follows the header. */
  headerSize: number;
  packetId: number;
  hwProtocol: number;
  hook: number;
  flags: number;
  mark: number;
  indev: number;
  outdev: number;
  uid: number;
  gid: number;
  capLen: number;
  origLen: number;
  fastInode: number;
  fastToken: number;
  fastRepeats: number;
  flagUid: number;
  flagGid: number;
  /** Already answered by the fast path; flagFastAccept: with accept. */
  flagFast: number;
  flagFastAccept: number;
}

/** Int32Array indices of one process event as procEventsRead writes it, and the event types. */
export interface ProcEventLayout {
  /** Elements per event. */
  length: number;
  type: number;
  pid: number;
  ppid: number;
  fork: number;
  exec: number;
  exit: number;
}

export interface VerdictEventLayout {
  bytes: number;
  exeIno: number;
  startNs: number;
  exeDev: number;
  tgid: number;
  uid: number;
  family: number;
  protocol: number;
  verdict: number;
  dstPort: number;
  rulePort: number;
  dstAddr: number;
  comm: number;
  commBytes: number;
  /** verdict values */
  allow: number;
  deny: number;
  /** The socket mark bit of a TCP connection allowed in the kernel (BQ_KERNEL_ACCEPT_MARK). */
  acceptMark: number;
}

export interface SockDiagOut {
  inode: number;
  uid: number;
  state: number;
  callerTgid: number;
  callerFlags: number;
  callerUid: number;
  callerStartLo: number;
  callerStartHi: number;
  callerExeDevLo: number;
  callerExeDevHi: number;
  callerExeInoLo: number;
  callerExeInoHi: number;
  length: number;
  /** callerFlags: callers are recorded (no record means no known caller). */
  flagAttached: number;
  /** callerFlags: this socket has a record. */
  flagRecorded: number;
  /** callerFlags: the record has the executable and start time. */
  flagExe: number;
}

const here = dirname(fileURLToPath(import.meta.url));

/** Where the built addon may be: the source tree, the compiled tree, or an installed path. */
function addonCandidates(): string[] {
  const fromEnv = process.env['BASTION_NATIVE_ADDON'];
  const rel = join('native', 'build', 'Release', 'bastion_native.node');
  return [
    ...(fromEnv ? [fromEnv] : []),
    join(here, '..', rel), // common/ in the source tree
    join(here, '..', '..', rel), // dist/common/ after tsc
  ];
}

let cached: NativeAddon | null = null;

export function loadNative(): NativeAddon {
  if (cached) return cached;
  const path = addonCandidates().find((p) => existsSync(p));
  if (!path) {
    throw new Error(`the native addon is not built (looked in ${addonCandidates().join(', ')}): run "npm run build:native"`);
  }
  cached = createRequire(import.meta.url)(path) as NativeAddon;
  return cached;
}
