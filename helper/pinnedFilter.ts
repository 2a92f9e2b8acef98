// Socket filters of ours that our chain's rules run (iptables -m bpf --object-pinned): each is
// pinned in a bpf file system under a name of its chain's, where iptables-restore reads it. The
// rule holds its own reference, so a pin only has to live while rules are written.
import { unlinkSync } from 'node:fs';
import { constants } from 'node:os';

/** Where a filter may be pinned: a path iptables-restore reads as one word. */
const PIN_DIR = /^\/[A-Za-z0-9_./-]*$/;

/** A filter pinned for a rule, or why not (refused: the kernel refused the filter itself). */
export type FilterPin = { ok: true; path: string } | { ok: false; reason: string; refused?: boolean };

/**
 * Pins a filter (pin: the addon's call, 0 or -errno) at dir/bastion-CHAIN-NAME, replacing a pin
 * left by a helper that died. refusedReason: what -ENOTSUP means for this filter.
 */
export function pinFilter(pin: (path: string) => number, dir: string, chain: string, name: string, refusedReason: string): FilterPin {
  if (!PIN_DIR.test(dir) || dir.split('/').includes('..')) return { ok: false, reason: `unusable bpf file system path ${JSON.stringify(dir)}` };
  const path = `${dir.replace(/\/+$/, '')}/bastion-${chain}-${name}`;
  try {
    unlinkSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') return { ok: false, reason: `${path}: ${code ?? 'cannot replace'}` };
  }
  const rc = pin(path);
  if (rc === 0) return { ok: true, path };
  if (rc === -constants.errno.ENOTSUP) return { ok: false, refused: true, reason: refusedReason };
  if (rc === -constants.errno.EPERM) return { ok: false, reason: `${dir} is not a bpf file system, or not writable` };
  return { ok: false, reason: `pinning ${path} failed: errno ${-rc}` };
}

/** Removes a pin (our chain's rule holds the filter as long as the rule exists). */
export function unpinFilter(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone already
  }
}
