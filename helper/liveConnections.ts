// Ends open connections when the service asks (EndConnections: the rule that allowed them was
// deleted or narrowed, a timed answer ran out). The service decides which; the helper checks
// each one: only TCP flows it queued or reported itself (so outbound ones, that went through
// our chain) are ended, never a socket the service merely names (an inbound SSH session, the
// helper's own bus). A connection the kernel allowed (helper/kernelVerdicts.ts) has no source
// port anyone recorded: the service names the program and destination, and the helper ends the
// sockets to it whose recorded connect() caller is a process the kernel allowed there. Ended through sock_diag's SOCK_DESTROY: the program's socket fails with
// ECONNABORTED at once and the peer gets a reset, whether or not the program sends again.
import { formatAddress } from '../common/address.js';
import type { Logger } from '../common/log.js';
import { IPPROTO } from '../common/types.js';
import type { Flow } from '../common/wire.js';

/** TCP flows remembered at most; the oldest are forgotten first (then never ended by a request). */
const MAX_SEEN = 65536;
const ENOENT = 2;

export interface SocketDestroyer {
  destroy(family: 4 | 6, protocol: number, src: Uint8Array, srcPort: number, dst: Uint8Array, dstPort: number): number;
}

/** What ending a connection the kernel allowed needs: its sockets by destination, and who connected each. */
export interface KernelSockets {
  connectionsTo(family: 4 | 6, dst: Uint8Array, dstPort: number): { family: 4 | 6; src: Uint8Array; srcPort: number }[];
  /** The process the kernel recorded as the socket's connect() caller (pid, start time), or null. */
  callerOf(family: 4 | 6, src: Uint8Array, srcPort: number, dst: Uint8Array, dstPort: number): { pid: number; startTime: number } | null;
}

/** Kernel-allowed (program, destination) pairs remembered at most, each with up to this many processes. */
const MAX_KERNEL_PAIRS = 16384;
const MAX_PROCESSES_PER_PAIR = 64;

export interface EndCounters {
  ended: number;
  /** Asked for, but not a flow this helper saw (refused). */
  unknown: number;
  /** Seen, but its socket was already gone. */
  gone: number;
  failed: number;
}

export class LiveConnections {
  /** Flow key -> the flow, in the order first seen. */
  private readonly seen = new Map<string, Flow>();
  /** `family|dst|port|exe` -> pid -> start time: processes the kernel allowed to connect there. */
  private readonly kernelAllowed = new Map<string, Map<number, number>>();
  readonly counters: EndCounters = { ended: 0, unknown: 0, gone: 0, failed: 0 };

  constructor(
    private readonly sockets: SocketDestroyer | null,
    private readonly log: Logger,
    private readonly kernelSockets: KernelSockets | null = null,
  ) {}

  /** A TCP connection the kernel allowed (no source port known yet): its program may lose it later. */
  sawKernel(d: { family: 4 | 6; protocol: number; dstAddr: Uint8Array; dstPort: number; exe: string; tgid: number; startTime: number }): void {
    if (d.protocol !== IPPROTO.TCP || d.exe === '') return;
    const key = programKey(d.family, d.dstAddr, d.dstPort, d.exe);
    let pids = this.kernelAllowed.get(key);
    if (pids === undefined) {
      this.kernelAllowed.set(key, (pids = new Map()));
      if (this.kernelAllowed.size > MAX_KERNEL_PAIRS) this.kernelAllowed.delete(this.kernelAllowed.keys().next().value!);
    }
    pids.set(d.tgid, d.startTime);
    if (pids.size > MAX_PROCESSES_PER_PAIR) pids.delete(pids.keys().next().value!);
  }

  /** A new TCP connection's first packet, as sent to the service: it may be ended later. */
  saw(flow: Flow): void {
    if (flow.protocol !== IPPROTO.TCP) return;
    const key = flowKey(flow);
    if (this.seen.has(key)) return;
    // The record's own address arrays: nothing writes to them once the record is built.
    const { family, protocol, srcAddr, srcPort, dstAddr, dstPort } = flow;
    this.seen.set(key, { family, protocol, srcAddr, srcPort, dstAddr, dstPort });
    if (this.seen.size > MAX_SEEN) this.seen.delete(this.seen.keys().next().value!);
  }

  /** Ends each flow asked for that this helper saw; the rest are refused and counted. */
  end(flows: readonly Flow[]): void {
    const before = { ...this.counters };
    for (const asked of flows) {
      if (asked.srcPort === 0 && asked.exe !== undefined) {
        this.endKernelAllowed(asked);
        continue;
      }
      const key = flowKey(asked);
      const flow = this.seen.get(key);
      if (flow === undefined) {
        this.counters.unknown++;
        continue;
      }
      this.seen.delete(key);
      if (this.sockets === null) {
        this.counters.failed++;
        continue;
      }
      const rc = this.sockets.destroy(flow.family, flow.protocol, flow.srcAddr, flow.srcPort, flow.dstAddr, flow.dstPort);
      if (rc === 0) this.counters.ended++;
      else if (rc === -ENOENT) this.counters.gone++;
      else {
        this.counters.failed++;
        this.log.warn({ rc, dst: `${formatAddress(flow.dstAddr)}:${flow.dstPort}` }, 'an open connection could not be ended');
      }
    }
    const delta = (k: keyof EndCounters): number => this.counters[k] - before[k];
    this.log.info(
      { asked: flows.length, ended: delta('ended'), gone: delta('gone'), refused: delta('unknown'), failed: delta('failed') },
      "open connections ended at the service's request",
    );
  }

  /**
   * Every connection to the flow's destination whose connect() caller is a process the kernel
   * allowed to connect there as that program (pid and start time, as recorded at the decision).
   */
  private endKernelAllowed(asked: Flow): void {
    const key = programKey(asked.family, asked.dstAddr, asked.dstPort, asked.exe!);
    const pids = this.kernelAllowed.get(key);
    if (pids === undefined || this.sockets === null || this.kernelSockets === null) {
      this.counters.unknown++;
      return;
    }
    this.kernelAllowed.delete(key);
    for (const s of this.kernelSockets.connectionsTo(asked.family, asked.dstAddr, asked.dstPort)) {
      const caller = this.kernelSockets.callerOf(s.family, s.src, s.srcPort, asked.dstAddr, asked.dstPort);
      if (caller === null || pids.get(caller.pid) !== caller.startTime) continue;
      const rc = this.sockets.destroy(s.family, IPPROTO.TCP, s.src, s.srcPort, asked.dstAddr, asked.dstPort);
      if (rc === 0) this.counters.ended++;
      else if (rc === -ENOENT) this.counters.gone++;
      else this.counters.failed++;
    }
  }
}

function programKey(family: 4 | 6, dst: Uint8Array, port: number, exe: string): string {
  return `${family}|${formatAddress(dst)}|${port}|${exe}`;
}

function flowKey(f: Flow): string {
  return `${f.family}|${f.protocol}|${formatAddress(f.srcAddr)}|${f.srcPort}|${formatAddress(f.dstAddr)}|${f.dstPort}`;
}
