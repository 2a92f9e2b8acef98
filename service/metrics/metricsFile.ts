// The metrics as a file for node_exporter's textfile collector: bastion.prom in a directory
// the administrator names, replaced atomically every interval (the collector must never read
// half a file, and reads only *.prom, so the temporary name is never collected).
import { join } from 'node:path';
import type { Logger } from '../../common/log.js';
import { writeFileAtomic } from '../../common/safeFile.js';

export const METRICS_FILE_NAME = 'bastion.prom';
export const DEFAULT_METRICS_INTERVAL_S = 15;

export interface MetricsFileOptions {
  dir: string;
  intervalMs: number;
  /** The whole file's text, collected when it is written. */
  text: () => string;
  log: Logger;
}

export class MetricsFile {
  readonly path: string;
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();
  /** The last write's error, logged once until a write succeeds again; shown by `bastion status`. */
  lastError: string | null = null;
  writes = 0;

  constructor(private readonly options: MetricsFileOptions) {
    this.path = join(options.dir, METRICS_FILE_NAME);
  }

  start(): void {
    void this.write();
    this.timer = setInterval(() => void this.write(), this.options.intervalMs);
    this.timer.unref();
  }

  /** Writes the final counts, so a stopped service's file says what it had counted. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.write();
  }

  /** One write at a time: a slow disk never stacks writes up. */
  write(): Promise<void> {
    this.writing = this.writing.then(() => this.writeNow());
    return this.writing;
  }

  private async writeNow(): Promise<void> {
    try {
      await writeFileAtomic(this.path, this.options.text(), { mode: 0o644 });
      this.writes++;
      if (this.lastError !== null) this.options.log.info({ path: this.path }, 'metrics file written again');
      this.lastError = null;
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      if (this.lastError === null) this.options.log.error({ path: this.path, error }, 'metrics file not written');
      this.lastError = error;
    }
  }
}
