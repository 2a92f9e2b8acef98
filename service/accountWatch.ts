// Tells when the system's accounts change: the whitelist names system services by user
// (whitelist.ts), and a package installed while the service runs adds its user then (chrony's
// _chrony was denied until a restart). useradd, userdel and vipw replace /etc/passwd by a
// rename, which ends a watch on the file itself, so the directory is watched for that name;
// one change arrives as several events (passwd+, passwd-, the lock, the rename), so they are
// gathered for debounceMs before the one call.
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from '../common/log.js';

export interface AccountWatchOptions {
  /** Default /etc/passwd. */
  path: string;
  debounceMs: number;
  onChange: () => void;
  log: Pick<Logger, 'warn' | 'debug'>;
}

export class AccountWatch {
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly options: AccountWatchOptions) {}

  /** False (and a warning) when the directory cannot be watched: accounts are then read at start and on reload only. */
  start(): boolean {
    const name = basename(this.options.path);
    try {
      this.watcher = watch(dirname(this.options.path), { persistent: false }, (_event, file) => {
        // No name: the kernel did not say which file; read again to be sure.
        if (file === null || file.toString() === name) this.schedule();
      });
    } catch (err) {
      this.options.log.warn({ err, path: this.options.path }, 'accounts cannot be watched: system services added later are recognized after a reload');
      return false;
    }
    this.watcher.on('error', (err) => {
      this.options.log.warn({ err, path: this.options.path }, 'watching accounts failed: system services added later are recognized after a reload');
      this.stop();
    });
    return true;
  }

  stop(): void {
    this.watcher?.close();
    this.watcher = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      try {
        this.options.onChange();
      } catch (err) {
        this.options.log.warn({ err }, 'reacting to an account change failed');
      }
    }, this.options.debounceMs);
    this.timer.unref();
  }
}
