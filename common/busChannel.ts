// One end of the helper <-> service ZeroMQ PAIR socket. Sends are serialized (ZeroMQ allows
// one in flight), which batches naturally: records or verdicts that pile up while a send is
// in flight leave together in the next message. A round trip costs ~120 µs naively (design.md).
import type { Pair } from 'zeromq';
import type { PacketRecord, Verdict } from './types.js';
import { decodeBusMessage, encodeBusMessage, type BusMessage } from './wire.js';

export interface ChannelEvents {
  onMessage(message: BusMessage): void;
  /** A frame that could not be decoded: dropped and counted, never fatal. */
  onBadFrame(error: string): void;
  /** Records or verdicts that could not be sent (no peer): the caller decides what happens. */
  onSendFailed(lost: { records: PacketRecord[]; verdicts: Verdict[] }, error: string): void;
}

export class BusChannel {
  private control: BusMessage[] = [];
  private records: PacketRecord[] = [];
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

  sendVerdicts(verdicts: Verdict[]): void {
    for (const v of verdicts) this.verdicts.push(v);
    this.flush();
  }

  close(): void {
    this.closed = true;
    this.socket.close();
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
        if (this.closed) return;
        this.events.onSendFailed(lost, (err as Error).message);
      }
    }
  }
}
