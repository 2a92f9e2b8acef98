// A copy of the last rules.json or config.json that loaded, kept in the service's state
// directory: a file broken between two starts (a bad edit, a full disk) must not start the
// firewall with no rules or the default mode. Reloads keep what is in memory; only a start
// has nothing in memory to keep, and reads this instead.
import { readFileNoFollow, writeFileAtomic } from '../common/safeFile.js';

export class LastGoodCopy {
  /** What was last written, so an unchanged file is not rewritten at every reload. */
  private written: string | null = null;

  constructor(
    readonly path: string,
    private readonly logger?: { warn(obj: object, msg?: string): void },
  ) {}

  /** Remembers `text` as the last file that loaded; a failure to write is logged, never fatal. */
  async remember(text: string): Promise<void> {
    if (text === this.written) return;
    try {
      // 0640: the rules say which programs may connect; the service's user and group only.
      await writeFileAtomic(this.path, text, { mode: 0o640 });
      this.written = text;
    } catch (err) {
      this.logger?.warn({ path: this.path, error: err instanceof Error ? err.message : String(err) }, 'last good copy not saved');
    }
  }

  /** The last good text, or null when there is none (first start, or no state directory). */
  async recall(maxBytes: number): Promise<string | null> {
    const read = await readFileNoFollow(this.path, maxBytes);
    if (read.ok) this.written = read.text;
    return read.ok ? read.text : null;
  }
}
