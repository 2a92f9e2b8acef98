// The NFQUEUE stage: the addon's reader thread answers what the fast path can and hands the
// rest to JS in batches; verdicts go back by packet id, in any order. Packet payloads are views into one buffer the addon reuses each wake-up, so a
// handler must finish reading them before it returns.
import { loadNative, type NativeAddon, type QueueOpenOptions, type SlotLayout } from '../common/native.js';

export type QueueOptions = QueueOpenOptions;

export const DEFAULT_QUEUE_OPTIONS: QueueOptions = {
  queueNum: 1,
  // IPv6 (40) + a few extension headers + TCP with options (60) fit well within 256 bytes.
  copyRange: 256,
  maxLen: 4096,
  // 8 MiB: with the npm nfqueue addon's 64 KiB, 85-95% of a UDP burst was lost (docs/design.md).
  rcvbufBytes: 8 << 20,
  // A full queue drops: a flood of new flows must not open the door for other connections.
  failOpen: false,
  batchMax: 64,
  exceptionVerdict: 1,
};

export interface QueuedPacket {
  packetId: number;
  /** ETH_P_IP (0x0800) or ETH_P_IPV6 (0x86dd). */
  hwProtocol: number;
  hook: number;
  /** Socket owner from NFQA_UID/GID, -1 when the packet has no socket. */
  uid: number;
  gid: number;
  mark: number;
  inIfindex: number;
  outIfindex: number;
  /** Full packet length; the payload holds at most the copy range. */
  origLen: number;
  payload: Uint8Array;
  /** Already answered by the fast path: its verdict, else null (then the fast fields are 0). */
  fastVerdict: 'accept' | 'drop' | null;
  /** The socket the fast path credited, and the arming that answered it. */
  fastInode: number;
  fastToken: number;
  /** Answered packets this one stands for: the same arming, destination and verdict (1 or more). */
  fastRepeats: number;
}

export interface QueueCounters {
  packets: number;
  overruns: number;
  verdictErrors: number;
  badMessages: number;
  /** Packets given the queue-full verdict because JS was a whole hand-off ring behind. */
  handoffFull: number;
  fastDecided: number;
  fastEventsPending: number;
  fastMissed: number;
  /** Of those answered, TCP connections whose caller the kernel recorded by their ends (no sock_diag). */
  fastByFlow: number;
}

/** One (protocol, port) verdict a process may get from the fast path, and for how long. */
export interface FastPathEntry {
  /** Names this arming in the packets it answers. */
  token: number;
  pid: number;
  /** The uid its sockets belong to (NFQA_UID of the packet it was credited with). */
  uid: number;
  /** fd numbers its next socket probably has, most likely first (at most fastPathFds). */
  fds: readonly number[];
  protocol: number;
  port: number;
  accept: boolean;
  mark: number | undefined;
  ttlMs: number;
}

export class PacketQueue {
  private readonly view: DataView;
  /** Where the addon puts each field of a slot's header. */
  private readonly at: SlotLayout;
  private readonly bytes: Uint8Array;
  /** Reused packet objects, one per slot: nothing is allocated per packet but the payload view. */
  private readonly packets: QueuedPacket[];
  private closed = false;
  /** Called (from the queue's callback) once packets answered by the fast path wait to be taken. */
  onFastAnswered: (() => void) | null = null;

  private constructor(
    private readonly native: NativeAddon,
    private readonly handle: object,
    slots: ArrayBuffer,
    private readonly slotSize: number,
    batchMax: number,
  ) {
    this.at = native.slotLayout;
    this.view = new DataView(slots);
    this.bytes = new Uint8Array(slots);
    this.packets = Array.from({ length: batchMax }, () => ({
      packetId: 0,
      hwProtocol: 0,
      hook: 0,
      uid: -1,
      gid: -1,
      mark: 0,
      inIfindex: 0,
      outIfindex: 0,
      origLen: 0,
      payload: this.bytes.subarray(0, 0),
      fastVerdict: null,
      fastInode: 0,
      fastToken: 0,
      fastRepeats: 0,
    }));
  }

  /**
   * Binds the queue. `onBatch` gets the packets of one wake-up; if it throws, the addon gives
   * every packet it did not answer the exception verdict and reports the error to `onError`.
   */
  static open(options: QueueOptions, onBatch: (packets: readonly QueuedPacket[], count: number) => void, onError: (err: Error) => void): PacketQueue {
    const native = loadNative();
    let queue: PacketQueue | null = null;
    const opened = native.queueOpen(
      options,
      (count, answeredWaiting) => {
        if (!queue) return;
        if (answeredWaiting) queue.onFastAnswered?.();
        if (count > 0) onBatch(queue.decode(count), count);
      },
      onError,
    );
    queue = new PacketQueue(native, opened.handle, opened.slots, opened.slotSize, opened.batchMax);
    return queue;
  }

  private decode(count: number): readonly QueuedPacket[] {
    const { view: v, at } = this;
    for (let i = 0; i < count; i++) {
      const base = i * this.slotSize;
      const p = this.packets[i]!;
      const flags = v.getUint8(base + at.flags);
      p.packetId = v.getUint32(base + at.packetId, true);
      p.hwProtocol = v.getUint16(base + at.hwProtocol, true);
      p.hook = v.getUint8(base + at.hook);
      p.mark = v.getUint32(base + at.mark, true);
      p.inIfindex = v.getUint32(base + at.indev, true);
      p.outIfindex = v.getUint32(base + at.outdev, true);
      p.uid = flags & at.flagUid ? v.getUint32(base + at.uid, true) : -1;
      p.gid = flags & at.flagGid ? v.getUint32(base + at.gid, true) : -1;
      p.origLen = v.getUint32(base + at.origLen, true);
      const fast = (flags & at.flagFast) !== 0;
      p.fastVerdict = fast ? (flags & at.flagFastAccept ? 'accept' : 'drop') : null;
      p.fastInode = fast ? v.getUint32(base + at.fastInode, true) : 0;
      p.fastToken = fast ? v.getUint32(base + at.fastToken, true) : 0;
      p.fastRepeats = fast ? v.getUint32(base + at.fastRepeats, true) : 0;
      const capLen = v.getUint32(base + at.capLen, true);
      const start = base + at.headerSize;
      p.payload = this.bytes.subarray(start, start + Math.min(capLen, this.slotSize - at.headerSize));
    }
    return this.packets;
  }

  /** Applies a verdict; returns 0 or a negative errno (e.g. -EBADF after close). */
  verdict(packetId: number, accept: boolean, mark?: number): number {
    if (this.closed) return -9; // EBADF
    return mark === undefined ? this.native.queueVerdict(this.handle, packetId, accept) : this.native.queueVerdict(this.handle, packetId, accept, mark);
  }

  /** Sends the packet through the hook again with `mark`, which selects our chain's REJECT rule. */
  reject(packetId: number, mark: number): number {
    if (this.closed) return -9; // EBADF
    return this.native.queueReject(this.handle, packetId, mark);
  }

  counters(): QueueCounters {
    return this.native.queueCounters(this.handle);
  }

  /**
   * Lets the addon answer new connections of armed processes itself (native/src/fast_path.h).
   * procEvents: the process connector's native handle, whose unread events stop it.
   */
  enableFastPath(procEvents: object): void {
    this.native.queueFastPathEnable(this.handle, procEvents);
  }

  /** fd numbers the fast path tries per armed process at most. */
  get fastPathFds(): number {
    return this.native.fastPathFds;
  }

  /** 0, or a negative errno (-EBADF when closed or not enabled, -EINVAL for a bad entry). */
  armFastPath(e: FastPathEntry): number {
    if (this.closed) return -9;
    return this.native.queueFastPathArm(this.handle, e.token, e.pid, e.uid, Int32Array.from(e.fds), e.protocol, e.port, e.accept, e.mark, e.ttlMs);
  }

  /**
   * Packets the fast path answered since the last take, at most a batch (take again until the
   * count is 0). Like a batch, they are views into the reused buffer: read them before the next
   * take. Never call it from inside onBatch.
   */
  takeFastAnswered(): { packets: readonly QueuedPacket[]; count: number } {
    const count = this.closed ? 0 : this.native.queueFastPathTake(this.handle);
    return count > 0 ? { packets: this.decode(count), count } : { packets: this.packets, count: 0 };
  }

  /** Disarms one process, or every one. */
  disarmFastPath(pid?: number): void {
    if (this.closed) return;
    if (pid === undefined) this.native.queueFastPathDisarm(this.handle);
    else this.native.queueFastPathDisarm(this.handle, pid);
  }

  /** Unbinds the queue. Packets still held by the kernel are dropped by it, so answer them first. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.queueClose(this.handle);
  }
}
