// Writes journal entries with journald's native protocol: one datagram of "KEY=value\n" fields
// to /run/systemd/journal/socket (systemd's "Native Journal Protocol"). journald adds _PID,
// _SYSTEMD_UNIT and the rest from the sender's credentials, so `journalctl -u
// bastion-firewall` shows the MESSAGE as "bastion-daemon[PID]: MESSAGE".
//
// Without journald (no socket, or it refused or could not take the datagram at once) the
// MESSAGE goes to stdout as a plain line instead: under systemd a unit's stdout goes to the
// journal too (without the BASTION_* fields), and on a terminal the line is still readable.
// A send never blocks (MSG_DONTWAIT): a stalled journald costs a line, never a verdict.
import type { Logger } from '../../common/log.js';
import { loadNative } from '../../common/native.js';
import type { JournalEntry } from './decisionLine.js';

export const JOURNAL_SOCKET = '/run/systemd/journal/socket';

/** The process name journalctl shows; the GUI's helper scripts know the service by it too. */
export const SYSLOG_IDENTIFIER = 'bastion-daemon';

/** One datagram to a Unix socket path; 0 or -errno. */
export type DatagramSend = (socketPath: string, data: string) => number;

/** Just under the addon's 8 KiB datagram buffer. */
const MAX_DATAGRAM_BYTES = 8000;

export interface JournalWriterOptions {
  socketPath?: string;
  send?: DatagramSend;
  /** Where a line goes when journald cannot take it. */
  fallback?: (line: string) => void;
  log: Logger;
}

export interface JournalSink {
  write(entry: JournalEntry): void;
}

/** The native protocol's form of an entry. Values never hold a newline (decisionLine.ts). */
export function encodeEntry(entry: JournalEntry): string {
  let text = `MESSAGE=${entry.message}\nPRIORITY=${entry.priority}\nSYSLOG_IDENTIFIER=${SYSLOG_IDENTIFIER}\n`;
  for (const [key, value] of Object.entries(entry.fields)) text += `${key}=${value}\n`;
  return text;
}

export class JournalWriter implements JournalSink {
  private readonly socketPath: string;
  private readonly send: DatagramSend;
  private readonly fallback: (line: string) => void;
  /** The errno of the last failed send, to log a change of state once rather than per line. */
  private failing = 0;
  /** Entries sent, and entries that went to stdout instead. */
  sent = 0;
  fellBack = 0;

  constructor(private readonly options: JournalWriterOptions) {
    this.socketPath = options.socketPath ?? JOURNAL_SOCKET;
    this.send = options.send ?? ((path, data) => loadNative().unixDatagramSend(path, data));
    if (options.fallback) {
      this.fallback = options.fallback;
    } else {
      // A closed stdout (EPIPE) must cost log lines, never the service: no unhandled 'error'.
      process.stdout.on('error', () => undefined);
      this.fallback = (line) => process.stdout.write(line + '\n');
    }
  }

  write(entry: JournalEntry): void {
    const datagram = encodeEntry(entry);
    let rc: number;
    try {
      rc = Buffer.byteLength(datagram) <= MAX_DATAGRAM_BYTES ? this.send(this.socketPath, datagram) : -90; // EMSGSIZE
    } catch {
      rc = -22; // EINVAL: the addon refused the arguments
    }
    if (rc === 0) {
      this.sent++;
      if (this.failing !== 0) {
        this.failing = 0;
        this.options.log.info({ socket: this.socketPath }, 'journald takes decision lines again');
      }
      return;
    }
    this.fellBack++;
    if (this.failing !== rc) {
      this.failing = rc;
      this.options.log.warn({ socket: this.socketPath, errno: -rc }, 'journald did not take a decision line: decision lines go to stdout');
    }
    try {
      this.fallback(entry.message);
    } catch {
      // stdout closed: nothing more to do for a log line
    }
  }
}
