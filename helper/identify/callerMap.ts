// Who called connect()/sendmsg() on a socket, recorded by the kernel (native/src/caller_bpf.h,
// native/bpf/caller.bpf.c): cgroup BPF programs on the root cgroup v2 note, per socket, the
// calling process (pid, uid, start time, executable) before its packet is sent, and forget it
// when the socket is released. A socket held by several processes (inherited across fork+exec,
// passed over SCM_RIGHTS) is then credited to the one that acted, not to whichever holder a
// scan of /proc finds first. The programs only record; they never block anything.

import { readFileSync } from 'node:fs';
import { loadNative } from '../../common/native.js';
import { pinFilter, type FilterPin } from '../pinnedFilter.js';

/**
 * exe: records carry the caller's executable and start time (CAP_PERFMON and kernel BTF), so
 * one that exec'd or whose pid was reused is not taken for it. byFlow: the flow note filter
 * loaded (pinFlowNote), so that queued SYNs can be noted by their ends and the fast path needs no
 * sock_diag for them. verdicts: the
 * programs decide path rules in the kernel. refused: libbpf's words on the first set of
 * programs the kernel refused ('' when it took the first, all of them): why whatever is
 * missing (the executable, the verdicts, the UDP allow filter) is.
 */
export type CallerMapState =
  | {
      attached: true;
      cgroup: string;
      exe: boolean;
      byFlow: boolean;
      verdicts: boolean;
      refused: string;
    }
  | { attached: false; reason: string; log: string };

/** The first cgroup v2 mount point in a /proc/PID/mounts text, or null. */
export function cgroup2Mount(mounts: string): string | null {
  for (const line of mounts.split('\n')) {
    const fields = line.split(' ');
    // Octal escapes (\040 for a space) in the mount point, as the kernel writes them.
    if (fields[2] === 'cgroup2' && fields[1] !== undefined) return fields[1].replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  }
  return null;
}

/** Where cgroup v2 is mounted in our mount namespace, else in init's (through its root). */
function findCgroup2(): string | null {
  for (const [mounts, root] of [
    ['/proc/self/mounts', ''],
    ['/proc/1/mounts', '/proc/1/root'],
  ] as const) {
    try {
      // `ip netns exec` mounts a new /sys, without the cgroup file systems: init still has them.
      const at = cgroup2Mount(readFileSync(mounts, 'utf8'));
      if (at !== null) return root + at;
    } catch {
      // unreadable: try the next
    }
  }
  return null;
}

/**
 * Attaches the programs (needs CAP_BPF and CAP_NET_ADMIN, CAP_PERFMON for the executable, a
 * kernel >= 5.12 with BPF links, BTF and cgroup v2 mounted). verdicts: let them decide in the
 * kernel too (helper/kernelVerdicts.ts), which needs the executable and SO_NETNS_COOKIE (5.15). They stay attached as long as this
 * process lives, and no longer.
 */
export function attachCallerMap(verdicts = false): CallerMapState {
  const cgroup = findCgroup2();
  if (cgroup === null) return { attached: false, reason: 'no cgroup v2 mounted', log: '' };
  try {
    const attached = loadNative().callerAttach(cgroup, verdicts);
    return {
      attached: true,
      cgroup,
      exe: attached.exe,
      byFlow: attached.flows,
      verdicts: attached.verdicts,
      refused: attached.log,
    };
  } catch (err) {
    return { attached: false, reason: (err as Error).message, log: String((err as { log?: unknown }).log ?? '') };
  }
}

export function detachCallerMap(): void {
  try {
    loadNative().callerDetach();
  } catch {
    // no addon: nothing was attached
  }
}

/**
 * Pins the flow note filter (caller.bpf.c bastion_flow_note) in the bpf file system at dir, for
 * the rule our chain runs on SYNs just before its queue rules (FirewallRulesOptions.flowNoteFilter).
 */
export function pinFlowNote(dir: string, chain: string): FilterPin {
  return pinFilter((path) => loadNative().callerFlowNotePin(path), dir, chain, 'flow-note', 'no flow note filter (the kernel refused it)');
}

/**
 * The pid whose connect() sent the bare TCP SYN with these ends (src local, as the packet goes)
 * and sequence number in our network namespace, as the flow note filter noted it; 0 when it did
 * not (or nothing is attached).
 */
export function flowCaller(family: 4 | 6, src: Uint8Array, srcPort: number, dst: Uint8Array, dstPort: number, synSeq: number): number {
  const tgid = loadNative().callerFlowLookup(family === 4 ? 2 : 10, src, srcPort, dst, dstPort, synSeq);
  return tgid > 0 ? tgid : 0;
}
