// fork/exec/exit of every process from the kernel's process connector (native/src/proc_events.c).
// The socket index learns which pids are new from these events instead of listing /proc
// (~100 µs with 120 processes here, and it grows with every process) on each unknown socket,
// and, as the socket is polled on the event loop, it hears of a new program while that
// program is still starting: before its first connect() (see SocketOwnerIndex.prefetch).
// The events are a hint that orders the search, never a proof: every owner found is still
// verified by reading its fd link, and the index falls back to listing /proc whenever events
// may have been lost (the kernel reports an overflow) or the search comes up empty.

import { loadNative, type NativeAddon, type ProcEventLayout } from '../../common/native.js';
import { readProcFile } from './processInfo.js';

/** The addon's process-event functions (native/src/bind_proc_events.c). */
interface ProcEventsAddon {
  /** onReadable runs on the event loop whenever events are waiting. */
  procEventsOpen(onReadable: () => void): object;
  /** Fills out with (type, pid, ppid) triples; returns how many, or -errno. */
  procEventsRead(handle: object, out: Int32Array): number;
  procEventsClose(handle: object): void;
  /** Where each field of an event lies in out, and the event types. */
  readonly procEvent: ProcEventLayout;
}

export interface ProcessEventListener {
  /** A new process (not a thread). */
  onFork(pid: number, ppid: number): void;
  /** pid now runs another program: its exe and most of its fds have changed. */
  onExec(pid: number): void;
  /** pid has exited; the number may be handed out again from now on. */
  onExit(pid: number): void;
  /** Events were dropped (socket buffer overflow): what was learned from them is incomplete. */
  onLost(): void;
}

/** What the socket index and the resolver need of ProcessEvents (tests give a fake). */
export interface ProcessEventSource {
  readonly isOpen: boolean;
  subscribe(listener: ProcessEventListener): void;
  /** Hands every event queued so far to the listeners, synchronously. */
  drain(): void;
}

export interface ProcessEventCounters {
  forks: number;
  execs: number;
  exits: number;
  /** Times the kernel reported dropped events. */
  overflows: number;
}

const ENOBUFS = 105;
const ENOTRECOVERABLE = 131;
/** Events taken per read call: one call drains a burst of this many. */
const EVENTS_PER_READ = 256;

export type ProcessEventsOpenResult = { events: ProcessEvents; reason: null } | { events: null; reason: string };

export class ProcessEvents implements ProcessEventSource {
  readonly counters: ProcessEventCounters = { forks: 0, execs: 0, exits: 0, overflows: 0 };
  private readonly out: Int32Array;
  private readonly listeners: ProcessEventListener[] = [];
  private handle: object | null = null;
  /**
   * Errors thrown by listeners. Each listener is called on its own, so one that throws cannot
   * keep an event from the others; after an error every listener is told events were lost,
   * since the one that threw may have missed what it needed.
   */
  listenerErrors = 0;

  private constructor(private readonly native: ProcEventsAddon) {
    this.out = new Int32Array(EVENTS_PER_READ * native.procEvent.length);
  }

  /**
   * Subscribes, or says why not. The kernel reports pids of the initial pid namespace and
   * ignores listeners outside the initial user and pid namespaces, so we do not even try there.
   */
  static open(options: { procRoot?: string } = {}): ProcessEventsOpenResult {
    const outside = outsideInitialNamespaces(options.procRoot ?? '/proc');
    if (outside !== null) return { events: null, reason: outside };
    try {
      const events = new ProcessEvents(loadNative() as NativeAddon & ProcEventsAddon);
      events.handle = events.native.procEventsOpen(() => events.drainFromLoop());
      return { events, reason: null };
    } catch (err) {
      if ((err as { errno?: number }).errno === ENOTRECOVERABLE) throw err; // left in the wrong netns
      return { events: null, reason: (err as Error).message };
    }
  }

  get isOpen(): boolean {
    return this.handle !== null;
  }

  subscribe(listener: ProcessEventListener): void {
    this.listeners.push(listener);
  }

  /** The addon's handle (for the queue's fast path, which watches it for unread events); null once closed. */
  get nativeHandle(): object | null {
    return this.handle;
  }

  /** Hands every event queued so far to the listeners, in the order they happened. */
  drain(): void {
    if (this.handle === null) return;
    for (;;) {
      const n = this.native.procEventsRead(this.handle, this.out);
      if (n < 0) {
        if (n !== -ENOBUFS) return; // EBADF after close; nothing else is expected here
        this.counters.overflows++;
        this.tellAll((l) => l.onLost());
        continue;
      }
      const { out } = this;
      const at = this.native.procEvent;
      for (let i = 0; i < n; i++) {
        const base = i * at.length;
        this.dispatch(out[base + at.type]!, out[base + at.pid]!, out[base + at.ppid]!);
      }
      if (n < EVENTS_PER_READ) return;
    }
  }

  /** Unsubscribes; the handle is never used again (the addon frees it). Listeners are told that events stop. */
  close(): void {
    if (this.handle === null) return;
    this.native.procEventsClose(this.handle);
    this.handle = null;
    this.tellAll((l) => l.onLost());
  }

  private drainFromLoop(): void {
    try {
      this.drain();
    } catch {
      this.listenerErrors++;
    }
  }

  private dispatch(type: number, pid: number, ppid: number): void {
    const types = this.native.procEvent;
    if (type === types.fork) {
      this.counters.forks++;
      this.tellAll((l) => l.onFork(pid, ppid));
    } else if (type === types.exec) {
      this.counters.execs++;
      this.tellAll((l) => l.onExec(pid));
    } else if (type === types.exit) {
      this.counters.exits++;
      this.tellAll((l) => l.onExit(pid));
    }
  }

  /** Calls every listener, each on its own; if one throws, all are told events were lost. */
  private tellAll(call: (l: ProcessEventListener) => void): void {
    let failed = false;
    for (const l of this.listeners) {
      try {
        call(l);
      } catch {
        failed = true;
      }
    }
    if (!failed) return;
    this.listenerErrors++;
    for (const l of this.listeners) {
      try {
        l.onLost();
      } catch {
        this.listenerErrors++;
      }
    }
  }
}

/**
 * Why the connector cannot serve us here, or null. kthreadd is pid 2 only in the initial pid
 * namespace; the identity uid map only in the initial user namespace.
 */
function outsideInitialNamespaces(procRoot: string): string | null {
  try {
    if (!readProcFile(`${procRoot}/2/stat`).startsWith('2 (kthreadd) ')) return 'not in the initial pid namespace';
    const uidMap = readProcFile(`${procRoot}/self/uid_map`).trim().split(/\s+/);
    if (uidMap.join(' ') !== '0 0 4294967295') return 'not in the initial user namespace';
  } catch (err) {
    return `cannot tell the namespaces apart: ${(err as Error).message}`;
  }
  return null;
}
