// One end of the helper <-> service ZeroMQ PAIR socket. Sends are serialized (ZeroMQ allows
// one in flight), which batches naturally: records or verdicts that pile up while a send is
// in flight leave together in the next message. A round trip costs ~120 µs naively (docs/design.md).
// Reports (records the helper already decided from its cache) are not waited for by anyone:
// they wait a few ms (longer if a send is in flight) and leave in bulk, so an allowed
// connection costs no send of its own, and reports of the same process (pid), destination,
// port and verdict in that window become one record with a count: a long-running client
// connecting to one server in a loop costs the service one record per window.
import type { Pair } from 'zeromq';
import { formatAddress } from './address.js';
import type { PacketRecord, Verdict } from './types.js';
import { decodeBusMessage, encodeBusMessage, type BusMessage } from './wire.js';

export interface ChannelEvents {
  onMessage(message: BusMessage): void;
  /** A frame that could not be decoded: dropped and counted, never fatal. */
  onBadFrame(error: string): void;
  /** Records or verdicts that could not be sent (no peer): the caller decides what happens. */
  onSendFailed(lost: { records: PacketRecord[]; verdicts: Verdict[] }, error: string): void;
}

/** How long a report may wait for company, and how many distinct ones make a send worth it at once. */
export const REPORT_DELAY_MS = 10;
/**
 * How long packets the helper's fast path answered wait to be collected for reporting (then
 * REPORT_DELAY_MS more). Each collection costs both processes some CPU, which on a small
 * machine the queue's reader thread and the programs it serves compete for: every 100 ms.
 */
export const FAST_REPORT_DELAY_MS = 100;
export const REPORT_BATCH = 32;

export class BusChannel {
  private control: BusMessage[] = [];
  private records: PacketRecord[] = [];
  private readonly reports = new Map<string, PacketRecord>();
  private reportTimer: NodeJS.Timeout | null = null;
  private verdicts: Verdict[] = [];
  private sending = false;
  private closed = false;
  badFrames = 0;
  framesSent = 0;
  framesReceived = 0;

  constructor(
    private readonly socket: Pair,
    private readonly events: ChannelEvents,
  ) {}

  /** Starts the receive loop; resolves when the socket closes. */
  async receiveLoop(): Promise<void> {
    try {
      for await (const [frame] of this.socket) {
        if (!frame) continue;
        this.framesReceived++;
        const decoded = decodeBusMessage(frame);
        if (!decoded.ok) {
          this.badFrames++;
          this.events.onBadFrame(decoded.error);
          continue;
        }
        this.events.onMessage(decoded.message);
      }
    } catch (err) {
      if (!this.closed) throw err;
    }
  }

  sendControl(message: BusMessage): void {
    this.control.push(message);
    this.flush();
  }

  sendRecords(records: PacketRecord[]): void {
    for (const r of records) this.records.push(r);
    this.flush();
  }

  /** Records that need no answer: they leave with the next send, within REPORT_DELAY_MS. */
  sendReports(reports: PacketRecord[]): void {
    for (const r of reports) {
      const key = reportKey(r);
      const same = this.reports.get(key);
      if (same) same.repeats = (same.repeats ?? 1) + (r.repeats ?? 1);
      else this.reports.set(key, r);
    }
    if (this.reports.size >= REPORT_BATCH) {
      this.flushReports();
    } else if (!this.reportTimer) {
      this.reportTimer = setTimeout(() => this.flushReports(), REPORT_DELAY_MS);
    }
  }

  sendVerdicts(verdicts: Verdict[]): void {
    for (const v of verdicts) this.verdicts.push(v);
    this.flush();
  }

  /** A method, not the field: TypeScript would keep a check made before an await narrowed. */
  private isClosed(): boolean {
    return this.closed;
  }

  /** Reports still waiting are dropped: the helper is stopping, and they only counted connections. */
  close(): void {
    this.closed = true;
    if (this.reportTimer) clearTimeout(this.reportTimer);
    this.socket.close();
  }

  private flushReports(): void {
    this.takeReports();
    this.flush();
  }

  private takeReports(): void {
    if (this.reportTimer) clearTimeout(this.reportTimer);
    this.reportTimer = null;
    for (const r of this.reports.values()) this.records.push(r);
    this.reports.clear();
  }

  private flush(): void {
    if (this.sending || this.closed) return;
    this.sending = true;
    void this.drain().finally(() => {
      this.sending = false;
    });
  }

  private async drain(): Promise<void> {
    while (!this.closed) {
      let message: BusMessage;
      let lost = { records: [] as PacketRecord[], verdicts: [] as Verdict[] };
      const control = this.control.shift();
      if (control) {
        message = control;
      } else if (this.verdicts.length > 0) {
        lost = { records: [], verdicts: this.verdicts };
        this.verdicts = [];
        message = { kind: 'verdicts', verdicts: lost.verdicts };
      } else if (this.records.length > 0) {
        // Waiting reports ride along with records that need an answer.
        if (this.reports.size > 0) this.takeReports();
        lost = { records: this.records, verdicts: [] };
        this.records = [];
        message = { kind: 'packets', records: lost.records };
      } else {
        return;
      }
      try {
        await this.socket.send(encodeBusMessage(message));
        this.framesSent++;
      } catch (err) {
        if (this.isClosed()) return; // closed while the send was in flight
        this.events.onSendFailed(lost, (err as Error).message);
      }
    }
  }
}

/** Reports with the same key count as one record: what the service counts and shows is the same. */
function reportKey(r: PacketRecord): string {
  return `${r.process?.exe ?? ''}\0${r.process?.pid ?? 0}\0${r.uid}\0${r.protocol}\0${formatAddress(r.dstAddr)}\0${r.dstPort}\0${r.helperVerdict ?? ''}`;
}
