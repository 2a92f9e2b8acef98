// Path rules the kernel applies itself (native/bpf/caller.bpf.c decide()): the service sends the
// rules it allows the kernel to apply (service/kernelRules.ts); each path is resolved here, in
// the helper's mount namespace, to the (device, inode) the kernel sees as a caller's executable,
// and written to the programs' verdict map for TCP and UDP. The kernel's decisions come back
// through a ring buffer and are reported to the service like the fast path's, so none is silent.
//
// The map follows the service's word: emptied at each cache reset (which the service sends
// before the new rules) and whenever the service is gone, so a changed or deleted rule is out of
// the kernel before the service decides by the new ones. A file replaced at its path (an
// upgrade) gets a new inode: the paths are resolved again every REFRESH_MS.
import { lstatSync } from 'node:fs';
import type { Logger } from '../common/log.js';
import type { NativeAddon, VerdictEventLayout } from '../common/native.js';
import { IPPROTO } from '../common/types.js';
import type { PathRule } from '../common/wire.js';
import { pinFilter, type FilterPin } from './pinnedFilter.js';

/** How often rule paths are resolved again, to follow a file replaced at its path. */
export const REFRESH_MS = 2000;
/** How often the helper tells the UDP allow filter it lives (the filter gives up after 5 s: BQ_VERDICT_ALIVE_NS). */
const ALIVE_MS = 1000;
/** Decisions read from the ring per take at most (the ring holds ~3,200). */
const TAKE_EVENTS = 4096;
/** Executables remembered for reports at most (more than the map's rules can name at once). */
const PATHS_KEPT = 16384;
/** Clock ticks per second of /proc/PID/stat's start time (USER_HZ, 100 on every Linux ABI). */
const USER_HZ = 100;

/** One decision the kernel took, with the path of the rule's executable. */
export interface KernelDecision {
  tgid: number;
  uid: number;
  /** /proc/PID/stat field 22 (clock ticks since boot). */
  startTime: number;
  exe: string;
  comm: string;
  family: 4 | 6;
  protocol: number;
  dstAddr: Uint8Array;
  dstPort: number;
  allow: boolean;
  /** How many identical decisions this one stands for (the same process, destination and verdict). */
  repeats: number;
}

interface Entry {
  dev: number;
  ino: bigint;
  protocol: number;
  port: number;
  allow: boolean;
}

/** The kernel's s_dev (MAJOR << 20 | MINOR) of a stat(2) st_dev (glibc's makedev() encoding). */
export function kernelDev(stDev: bigint): number {
  const major = ((stDev >> 8n) & 0xfffn) | ((stDev >> 32n) & ~0xfffn);
  const minor = (stDev & 0xffn) | ((stDev >> 12n) & ~0xffn);
  return Number((major << 20n) | minor);
}

/** Where a path's file is, as the kernel names a caller's executable; a reason when the kernel must not apply its rules. */
export type ResolvedPath = { ok: true; dev: number; ino: bigint } | { ok: false; reason: string };

export function resolvePath(path: string): ResolvedPath {
  let st;
  try {
    st = lstatSync(path, { bigint: true });
  } catch (err) {
    return { ok: false, reason: (err as NodeJS.ErrnoException).code ?? 'unreadable' };
  }
  // A symlink's target runs under the target's own path (/proc/PID/exe), which the rule does not name.
  if (!st.isFile()) return { ok: false, reason: 'not a regular file' };
  // Another name of the same file would be decided by this path's rules, which name only this one.
  if (st.nlink > 1n) return { ok: false, reason: 'hard-linked' };
  return { ok: true, dev: kernelDev(st.dev), ino: st.ino };
}

/**
 * Pins the UDP allow filter (caller.bpf.c bastion_udp_allow) in the bpf file system at dir, for
 * our chain's `-m bpf --object-pinned` match (FirewallRulesOptions.kernelUdpAllowFilter): a
 * cgroup program cannot mark a datagram before netfilter's OUTPUT, so the chain asks the filter.
 * One pin per chain; a pin left by a helper that died is replaced.
 */
export function pinUdpAllow(native: Pick<NativeAddon, 'kernelUdpAllowPin'>, dir: string, chain: string): FilterPin {
  return pinFilter(
    (path) => native.kernelUdpAllowPin(path),
    dir,
    chain,
    'udp-allow',
    'the kernel refused the UDP allow filter (a socket filter reading the task)',
  );
}

export class KernelVerdicts {
  private rules: PathRule[] = [];
  /** Map key -> what it holds now. */
  private readonly entries = new Map<string, Entry>();
  /**
   * `dev:ino` -> the rule path it stood for, kept across clear() (bounded, oldest first out): a
   * decision taken just before a rule change is reported after it, and still names its program.
   */
  private readonly paths = new Map<string, string>();
  private refreshTimer: NodeJS.Timeout | null = null;
  private aliveTimer: NodeJS.Timeout | null = null;
  private readonly events: Uint8Array;
  private readonly view: DataView;
  /** The same bytes as events, to turn an event into a grouping key. */
  private readonly eventBytes: Buffer;
  private readonly layout: VerdictEventLayout;
  /** What the last sync left to the queue, as logged: said again only when it changes. */
  private leftToQueue = '';
  /** Decisions taken in the kernel, and reports of them lost (ring full), since start. */
  decided = 0;
  lost = 0;

  constructor(
    private readonly native: Pick<
      NativeAddon,
      'kernelVerdictSet' | 'kernelVerdictDelete' | 'kernelVerdictClear' | 'kernelVerdictTake' | 'verdictEvent' | 'kernelVerdictAlive'
    >,
    private readonly log: Logger,
    private readonly resolve: (path: string) => ResolvedPath = resolvePath,
  ) {
    this.layout = native.verdictEvent;
    this.events = new Uint8Array(this.layout.bytes * TAKE_EVENTS);
    this.view = new DataView(this.events.buffer);
    this.eventBytes = Buffer.from(this.events.buffer, this.events.byteOffset, this.events.byteLength);
  }

  start(): void {
    this.refreshTimer = setInterval(() => this.refresh(), REFRESH_MS);
    this.refreshTimer.unref();
    this.alive();
    this.aliveTimer = setInterval(() => this.alive(), ALIVE_MS);
    this.aliveTimer.unref();
  }

  stop(): void {
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    if (this.aliveTimer) clearInterval(this.aliveTimer);
    this.refreshTimer = null;
    this.aliveTimer = null;
    this.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  /** The service's rules for the kernel, replacing every earlier set. */
  replace(rules: PathRule[]): void {
    this.rules = rules;
    this.sync();
  }

  /** Nothing is decided in the kernel until replace() (the policy changed, or the service is gone). */
  clear(): void {
    this.rules = [];
    const rc = this.native.kernelVerdictClear();
    if (rc !== 0) this.log.error({ rc }, 'emptying the kernel verdict map failed');
    this.entries.clear();
  }

  /** The UDP allow filter, held by our chain's rule, allows nothing once these stop (the helper gone). */
  private alive(): void {
    const rc = this.native.kernelVerdictAlive();
    if (rc !== 0) this.log.error({ rc }, 'the UDP allow filter cannot be told the helper lives: UDP allows go to the queue');
  }

  /** Paths resolved again: a file replaced at its path is decided by its new inode only. */
  private refresh(): void {
    if (this.rules.length > 0) this.sync();
  }

  private sync(): void {
    const wanted = new Map<string, Entry>();
    const paths = new Map<string, string>();
    const conflicting = new Set<string>();
    const skipped: Record<string, string> = {};
    for (const rule of this.rules) {
      const file = this.resolve(rule.path);
      if (!file.ok) {
        skipped[rule.path] = file.reason;
        continue;
      }
      const fileKey = `${file.dev}:${file.ino}`;
      const other = paths.get(fileKey);
      // Two rule paths for one file (a bind mount): the kernel cannot tell them apart.
      if (other !== undefined && other !== rule.path) conflicting.add(fileKey);
      paths.set(fileKey, rule.path);
      for (const protocol of [IPPROTO.TCP, IPPROTO.UDP]) {
        wanted.set(`${fileKey}:${protocol}:${rule.port}`, { dev: file.dev, ino: file.ino, protocol, port: rule.port, allow: rule.allow });
      }
    }
    for (const [key, entry] of wanted) if (conflicting.has(`${entry.dev}:${entry.ino}`)) wanted.delete(key);
    for (const fileKey of conflicting) paths.delete(fileKey);
    // Stale entries go first: a rule deleted must not outlive the call.
    for (const [key, entry] of this.entries) {
      if (wanted.has(key)) continue;
      const rc = this.native.kernelVerdictDelete(entry.dev, entry.ino, entry.protocol, entry.port);
      if (rc !== 0) {
        this.log.error({ rc, key }, 'removing a kernel verdict failed: emptying the map');
        this.clear();
        return;
      }
      this.entries.delete(key);
    }
    for (const [key, entry] of wanted) {
      const had = this.entries.get(key);
      if (had !== undefined && had.allow === entry.allow) continue;
      const rc = this.native.kernelVerdictSet(entry.dev, entry.ino, entry.protocol, entry.port, entry.allow);
      if (rc !== 0) {
        // Full, say: that rule stays on the queue path, where the service applies it.
        this.log.warn({ rc, key }, 'a kernel verdict was not stored: its connections go to the queue');
        if (had !== undefined) this.native.kernelVerdictDelete(entry.dev, entry.ino, entry.protocol, entry.port);
        this.entries.delete(key);
        continue;
      }
      this.entries.set(key, entry);
    }
    for (const [fileKey, path] of paths) {
      this.paths.delete(fileKey); // re-inserted: the newest last
      this.paths.set(fileKey, path);
    }
    while (this.paths.size > PATHS_KEPT) {
      const oldest = this.paths.keys().next();
      if (oldest.done === true) break;
      this.paths.delete(oldest.value);
    }
    // Said once per change (the paths are resolved again every REFRESH_MS): such a program's
    // connections are still decided by its rules, in the queue, only more slowly.
    const left = JSON.stringify({ skipped, sharedFiles: conflicting.size });
    if (left !== this.leftToQueue) {
      this.leftToQueue = left;
      if (Object.keys(skipped).length > 0 || conflicting.size > 0) {
        this.log.info({ skipped, sharedFiles: conflicting.size }, 'path rules left to the queue: the kernel cannot tell these files by their inode');
      }
    }
  }

  /**
   * Hands report every decision the kernel took since the last call, identical ones (a program
   * connecting to the same destination again and again) once, with their count. Returns false
   * when the take was full (more may wait: call again).
   */
  take(report: (decision: KernelDecision) => void): boolean {
    const { count, lost } = this.native.kernelVerdictTake(this.events);
    if (lost > 0) {
      this.lost += lost;
      this.log.warn({ lost }, 'reports of decisions taken in the kernel were lost (ring buffer full): they are not counted');
    }
    if (count < 0) {
      this.log.error({ rc: count }, 'reading the kernel decisions failed');
      return true;
    }
    const bytes = this.layout.bytes;
    // An event holds no per-connection field (no source port) and its padding is zeroed: equal
    // bytes are the same process, executable, destination and verdict.
    const groups = new Map<string, KernelDecision>();
    for (let i = 0; i < count; i++) {
      const key = this.eventBytes.toString('latin1', i * bytes, (i + 1) * bytes);
      const same = groups.get(key);
      if (same) same.repeats++;
      else groups.set(key, this.decode(i * bytes));
    }
    this.decided += count;
    for (const decision of groups.values()) report(decision);
    return count < TAKE_EVENTS;
  }

  /** The event at byte offset base of the take buffer. */
  private decode(base: number): KernelDecision {
    const at = this.layout;
    const v = this.view;
    const dev = v.getUint32(base + at.exeDev, true);
    const ino = v.getBigUint64(base + at.exeIno, true);
    const family = v.getUint16(base + at.family, true) === 10 ? 6 : 4;
    const commBytes = this.events.subarray(base + at.comm, base + at.comm + at.commBytes);
    const nul = commBytes.indexOf(0);
    return {
      tgid: v.getUint32(base + at.tgid, true),
      uid: v.getUint32(base + at.uid, true),
      startTime: Number(v.getBigUint64(base + at.startNs, true) / BigInt(1e9 / USER_HZ)),
      // Its path as the rule named it; a rule changed since may have dropped it.
      exe: this.paths.get(`${dev}:${ino}`) ?? '',
      comm: Buffer.from(nul < 0 ? commBytes : commBytes.subarray(0, nul)).toString('utf8'),
      family,
      protocol: v.getUint8(base + at.protocol),
      dstAddr: this.events.slice(base + at.dstAddr, base + at.dstAddr + (family === 4 ? 4 : 16)),
      dstPort: v.getUint16(base + at.dstPort, true),
      allow: v.getUint8(base + at.verdict) === at.allow,
      repeats: 1,
    };
  }
}
