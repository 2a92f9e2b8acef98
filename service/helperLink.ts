// The service's end of the bus: connects to the helper's ipc socket (ZeroMQ reconnects by
// itself when either side restarts), says hello on every (re)connection, and answers batches.
import { Pair } from 'zeromq';
import { BusChannel } from '../common/busChannel.js';
import type { Logger } from '../common/log.js';
import type { PacketRecord, Verdict } from '../common/types.js';
import { PROTOCOL_VERSION, type Hello, type HelperCounters } from '../common/wire.js';

export interface HelperLinkOptions {
  endpoint: string;
  version: string;
  heartbeatMs: number;
}

export interface HelperState {
  connected: boolean;
  hello: Hello | null;
  counters: HelperCounters | null;
  badFrames: number;
}

export class HelperLink {
  private readonly socket: Pair;
  private readonly channel: BusChannel;
  private timer: NodeJS.Timeout | null = null;
  private readonly state: HelperState = { connected: false, hello: null, counters: null, badFrames: 0 };
  /**
   * Bumped at each helper hello. NFQUEUE packet ids restart with a new helper, so a verdict
   * decided for an earlier helper's packet (a late prompt answer) must never reach a new one.
   */
  private epoch = 0;

  constructor(
    private readonly options: HelperLinkOptions,
    private readonly onRecords: (records: PacketRecord[], epoch: number) => Verdict[],
    private readonly log: Logger,
  ) {
    // sendTimeout 0: a verdict that cannot go now is useless later (the helper has fallen back).
    // immediate: queue nothing for a helper that is not connected yet.
    this.socket = new Pair({ linger: 0, sendTimeout: 0, immediate: true, reconnectInterval: 100, reconnectMaxInterval: 1000 });
    this.channel = new BusChannel(this.socket, {
      onMessage: (m) => {
        switch (m.kind) {
          case 'packets': {
            const verdicts = this.onRecords(m.records, this.epoch);
            if (verdicts.length > 0) this.channel.sendVerdicts(verdicts);
            return;
          }
          case 'hello':
            if (m.hello.role !== 'helper') return;
            if (m.hello.protocolVersion !== PROTOCOL_VERSION) {
              this.log.error({ theirs: m.hello.protocolVersion, ours: PROTOCOL_VERSION }, 'helper speaks another protocol version');
            }
            this.epoch++;
            this.state.connected = true;
            this.state.hello = m.hello;
            this.log.info({ pid: m.hello.pid, queue: m.hello.queueNum, capabilities: m.hello.capabilities }, 'helper connected');
            return;
          case 'heartbeat':
            this.state.counters = m.helper;
            return;
          case 'cache_reset':
            this.log.warn('the helper sent a cache reset: ignored');
            return;
          case 'verdicts':
            this.log.warn('the helper sent verdicts: ignored');
            return;
        }
      },
      onBadFrame: (error) => {
        this.state.badFrames = this.channel.badFrames;
        this.log.warn({ error, badFrames: this.channel.badFrames }, 'dropped a malformed frame from the helper');
      },
      onSendFailed: (lost, error) => {
        if (lost.verdicts.length > 0) this.log.warn({ verdicts: lost.verdicts.length, error }, 'verdicts not delivered (helper gone)');
      },
    });
  }

  start(): void {
    this.socket.events.on('handshake', () => this.sayHello());
    this.socket.events.on('disconnect', () => {
      if (this.state.connected) this.log.warn('helper disconnected');
      this.state.connected = false;
    });
    this.socket.connect(this.options.endpoint);
    void this.channel.receiveLoop().catch((err: Error) => this.log.error({ err }, 'bus receive loop failed'));
    // Until the helper answers our hello, say it again each tick: a hello sent right at the
    // 'connect' event can be lost (with `immediate`, no pipe exists before the handshake).
    this.timer = setInterval(() => {
      if (this.state.connected) this.channel.sendControl({ kind: 'heartbeat', sentAtMs: Date.now(), helper: null });
      else this.sayHello();
    }, this.options.heartbeatMs);
  }

  /** Sends verdicts decided for records of helper `epoch`; dropped if that helper is gone. */
  sendVerdicts(verdicts: Verdict[], epoch: number): void {
    if (epoch !== this.epoch || !this.state.connected) {
      this.log.info({ verdicts: verdicts.length }, 'late verdicts for a helper that restarted: dropped');
      return;
    }
    this.channel.sendVerdicts(verdicts);
  }

  /** Tells the helper to forget every cached verdict: the policy changed. */
  resetHelperCache(reason: string): void {
    if (this.state.connected) this.channel.sendControl({ kind: 'cache_reset', reason });
  }

  helperState(): HelperState {
    return { ...this.state, badFrames: this.channel.badFrames };
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.channel.close();
  }

  private sayHello(): void {
    this.channel.sendControl({
      kind: 'hello',
      hello: {
        role: 'service',
        softwareVersion: this.options.version,
        protocolVersion: PROTOCOL_VERSION,
        pid: process.pid,
        capabilities: [],
        queueNum: 0,
        ackDeadlineMs: 0,
        maxHoldMs: 0,
      },
    });
  }
}
