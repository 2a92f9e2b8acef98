// The service's end of the bus: connects to the helper's ipc socket (ZeroMQ reconnects by
// itself when either side restarts), says hello on every (re)connection, and answers batches.
// A pairing that does not come about is an alarm, logged as an error until it does: the
// helper refusing us (we are not its service user), or a connection the helper never answers
// (its one peer slot taken), in which case we connect afresh.
import { Pair } from 'zeromq';
import { BusChannel } from '../common/busChannel.js';
import type { Logger } from '../common/log.js';
import type { PacketRecord, Verdict } from '../common/types.js';
import { MAX_END_FLOWS, PROTOCOL_VERSION, type Flow, type Hello, type HelperCounters, type InboundState, type PathRule } from '../common/wire.js';

export interface HelperLinkOptions {
  endpoint: string;
  version: string;
  heartbeatMs: number;
  /** Unpaired for this long (no helper hello): logged as an error, and a silent connection is renewed. Default 5 s. */
  pairingTimeoutMs?: number;
  /** The rules the helper may have the kernel apply (kernelRules.ts), sent when it decides in the kernel. */
  pathRules?: () => PathRule[];
  /** Whether inbound protection is wanted (config.json inbound_protection), sent to a helper that can apply it. */
  inboundWanted?: () => boolean;
  /** The helper's report of what the inbound policy came to. */
  onInboundState?: (state: InboundState) => void;
}

/** Why the service is not paired with a helper, as last seen. */
type Unpaired = 'no connection' | 'refused by the helper' | 'connected, but no helper answers';

export interface HelperState {
  connected: boolean;
  hello: Hello | null;
  counters: HelperCounters | null;
  /** When the counters arrived (ms since the epoch), with the helper's heartbeat. */
  countersAtMs: number | null;
  badFrames: number;
}

export class HelperLink {
  private readonly socket: Pair;
  private readonly channel: BusChannel;
  private timer: NodeJS.Timeout | null = null;
  private readonly state: HelperState = { connected: false, hello: null, counters: null, countersAtMs: null, badFrames: 0 };
  /**
   * Bumped at each helper hello. NFQUEUE packet ids restart with a new helper, so a verdict
   * decided for an earlier helper's packet (a late prompt answer) must never reach a new one.
   */
  private epoch = 0;
  /** Since when we are without a helper, and the latest reason. */
  private unpairedSince = performance.now();
  private unpaired: Unpaired = 'no connection';
  private reasonSince = performance.now();
  private lastAlarm = -Infinity;

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
            this.setUnpaired('no connection');
            this.state.hello = m.hello;
            this.log.info({ pid: m.hello.pid, queue: m.hello.queueNum, capabilities: m.hello.capabilities }, 'helper connected');
            this.sendPathRules();
            this.sendInboundPolicy();
            if (!m.hello.capabilities.includes('caller_bpf')) {
              this.log.warn(
                { pid: m.hello.pid },
                'the helper runs without eBPF caller records: identity is weaker (a socket shared by several programs cannot be credited to the one that used it); its journal says why',
              );
            }
            return;
          case 'heartbeat':
            this.state.counters = m.helper;
            this.state.countersAtMs = Date.now();
            return;
          case 'cache_reset':
            this.log.warn('the helper sent a cache reset: ignored');
            return;
          case 'path_rules':
            this.log.warn('the helper sent path rules: ignored');
            return;
          case 'inbound_policy':
            this.log.warn('the helper sent an inbound policy: ignored');
            return;
          case 'inbound_state':
            this.options.onInboundState?.(m.inbound);
            return;
          case 'end_connections':
            this.log.warn('the helper sent connections to end: ignored');
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
    this.socket.events.on('handshake', () => {
      this.setUnpaired('connected, but no helper answers');
      this.sayHello();
    });
    // The helper's peer check said no (ZAP): we run as a user it does not take as its service.
    this.socket.events.on('handshake:error:auth', () => {
      this.setUnpaired('refused by the helper');
      this.alarm(true);
    });
    this.socket.events.on('disconnect', () => {
      if (this.state.connected) {
        this.log.warn('helper disconnected');
        this.unpairedSince = performance.now();
      }
      this.state.connected = false;
      if (this.unpaired !== 'refused by the helper') this.setUnpaired('no connection');
    });
    this.socket.connect(this.options.endpoint);
    void this.channel.receiveLoop().catch((err: Error) => this.log.error({ err }, 'bus receive loop failed'));
    // Until the helper answers our hello, say it again each tick: a hello sent right at the
    // 'connect' event can be lost (with `immediate`, no pipe exists before the handshake).
    this.timer = setInterval(() => {
      if (this.state.connected) this.channel.sendControl({ kind: 'heartbeat', sentAtMs: Date.now(), helper: null });
      else {
        this.sayHello();
        this.alarm(false);
      }
    }, this.options.heartbeatMs);
  }

  /**
   * Unpaired past the timeout: an error line (then every 30 s while it lasts). A connection the
   * helper refused (ZeroMQ gives up on it) or never answered (its one peer slot held by
   * someone else) is made again, so the service keeps trying rather than waiting forever.
   */
  private alarm(now: boolean): void {
    const timeoutMs = this.options.pairingTimeoutMs ?? 5000;
    const t = performance.now();
    if (this.state.connected || (!now && t - this.unpairedSince < timeoutMs)) return;
    if (t - this.lastAlarm >= 30_000) {
      this.lastAlarm = t;
      const help: Record<Unpaired, string> = {
        'no connection': 'is bastion-helper running, and is this service in the group of its socket (bastion-bus)?',
        'refused by the helper': `the helper accepts only its service user (bastion helper --service-user); this service runs as uid ${process.getuid?.() ?? '?'}`,
        'connected, but no helper answers': 'another process may hold the bus',
      };
      this.log.error(
        { endpoint: this.options.endpoint, reason: this.unpaired, forMs: Math.round(t - this.unpairedSince) },
        `NOT PAIRED WITH THE HELPER (${this.unpaired}): no connection is decided by this service; ${help[this.unpaired]}; retrying`,
      );
    }
    if (this.unpaired !== 'no connection' && t - this.reasonSince >= timeoutMs) this.reconnect();
  }

  private reconnect(): void {
    this.setUnpaired('no connection');
    try {
      this.socket.disconnect(this.options.endpoint);
    } catch {
      // ZeroMQ already dropped it (a refused handshake ends the connection for good)
    }
    this.socket.connect(this.options.endpoint);
  }

  private setUnpaired(reason: Unpaired): void {
    this.unpaired = reason;
    this.reasonSince = performance.now();
  }

  /** Sends verdicts decided for records of helper `epoch`; dropped if that helper is gone. */
  sendVerdicts(verdicts: Verdict[], epoch: number): void {
    if (epoch !== this.epoch || !this.state.connected) {
      this.log.info({ verdicts: verdicts.length }, 'late verdicts for a helper that restarted: dropped');
      return;
    }
    this.channel.sendVerdicts(verdicts);
  }

  /**
   * Tells the helper to forget every cached verdict: the policy changed. A helper deciding in
   * the kernel empties its kernel rules at the reset, and gets the new ones right after it.
   */
  resetHelperCache(reason: string): void {
    if (!this.state.connected) return;
    this.channel.sendControl({ kind: 'cache_reset', reason });
    this.sendPathRules();
  }

  /** The kernel's path rules, to a helper that decides in the kernel; they replace what it had. */
  private sendPathRules(): void {
    if (!this.state.connected || this.options.pathRules === undefined) return;
    if (!(this.state.hello?.capabilities.includes('kernel_verdicts') ?? false)) return;
    const rules = this.options.pathRules();
    this.channel.sendControl({ kind: 'path_rules', rules });
    this.log.debug({ rules: rules.length }, 'path rules sent to the kernel');
  }

  /** Whether the connected helper applies inbound policies ('inbound' among its capabilities). */
  get helperDoesInbound(): boolean {
    return this.state.connected && (this.state.hello?.capabilities.includes('inbound') ?? false);
  }

  /** The inbound policy in force, to a helper that applies it; after each hello and each change. */
  sendInboundPolicy(): void {
    if (!this.helperDoesInbound || this.options.inboundWanted === undefined) return;
    this.channel.sendControl({ kind: 'inbound_policy', enabled: this.options.inboundWanted() });
  }

  /** Asks the helper to end these open connections (the policy that allowed them changed). */
  endConnections(flows: Flow[]): void {
    if (!this.state.connected || flows.length === 0) return;
    for (let i = 0; i < flows.length; i += MAX_END_FLOWS) this.channel.sendControl({ kind: 'end_connections', flows: flows.slice(i, i + MAX_END_FLOWS) });
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
