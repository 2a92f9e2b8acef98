// The service's half of inbound protection: the policy is config.json's inbound_protection
// (the helper applies it, helper/inbound); this keeps what the helper last reported and the
// state file the old Python GUI's Inbound card reads (its InboundFirewallDetector, "Bastion
// Basic" when /var/run/bastion/inbound-active holds "active"): present exactly while our own
// inbound chains are in place. docs/gui-extensions.md, "Inbound protection".
import { unlink } from 'node:fs/promises';
import type { Logger } from '../common/log.js';
import { writeFileAtomic } from '../common/safeFile.js';
import type { InboundState } from '../common/wire.js';

export const INBOUND_STATE_FILE_NAME = 'inbound-active';
/** What the old GUI compares the file's stripped text with. */
const ACTIVE_TEXT = 'active\n';

export class InboundStatus {
  private last: InboundState | null = null;
  private tail: Promise<void> = Promise.resolve();

  constructor(
    /** Where the GUI looks (/run/bastion/inbound-active); null: no file. */
    private readonly stateFile: string | null,
    private readonly log: Logger,
  ) {}

  get state(): InboundState | null {
    return this.last;
  }

  /** The helper's report: kept, and the state file follows it. */
  update(state: InboundState): Promise<void> {
    this.last = state;
    return this.writeFile(state.state === 'bastion');
  }

  /** The service stopping: it can no longer say, so the file goes (systemd removes /run/bastion as well). */
  stop(): Promise<void> {
    return this.writeFile(false);
  }

  /** Written or removed in order, never both at once. */
  private writeFile(active: boolean): Promise<void> {
    const path = this.stateFile;
    if (path === null) return this.tail;
    this.tail = this.tail.then(async () => {
      try {
        // 0644: the GUI runs as the desktop user (group bastion reaches /run/bastion).
        if (active) await writeFileAtomic(path, ACTIVE_TEXT, { mode: 0o644 });
        else await unlink(path);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (!active && code === 'ENOENT') return;
        this.log.error({ path, err }, 'the inbound state file was not updated');
      }
    });
    return this.tail;
  }
}
