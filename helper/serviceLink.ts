// The helper's end of the bus: binds the ipc socket, learns when a service is there (its
// hello) and when it is gone (disconnect event or silence), and carries records and verdicts.
import { Pair } from 'zeromq';
import { BusChannel } from '../common/busChannel.js';
import { ipcPathOf, prepareSocketPath, removeSocketPath, restrictSocket } from '../common/ipcPath.js';
import type { Logger } from '../common/log.js';
import type { PacketRecord, Verdict } from '../common/types.js';
import type { BusMessage, Flow, Hello, HelperCounters, InboundState, PathRule } from '../common/wire.js';
import { BUS_ZAP_DOMAIN, BusGatekeeper } from './busGatekeeper.js';

export interface ServiceLinkOptions {
  endpoint: string;
  /** Group allowed to reach the socket (bastion-bus: the service's user alone); null keeps the process's own group. */
  socketGid: number | null;
  /** The only uid that may become our peer (SO_PEERCRED, checked through ZAP). */
  serviceUid: number;
  heartbeatMs: number;
  /** No message from the service for this long means it is gone. */
  silenceMs: number;
  hello: Hello;
}

export interface ServiceLinkEvents {
  onVerdicts(verdicts: Verdict[]): void;
  onCacheReset(reason: string): void;
  /** The rules the kernel may apply (they replace the last set); sent after each hello and cache reset. */
  onPathRules(rules: PathRule[]): void;
  /** Whether inbound protection is wanted (config.json inbound_protection); sent after each hello and change. */
  onInboundPolicy(enabled: boolean): void;
  /** The service asks to end these open connections (the helper checks each one: helper/liveConnections.ts). */
  onEndConnections(flows: Flow[]): void;
  onServiceUp(hello: Hello): void;
  onServiceDown(reason: string): void;
  /** Records that never reached the service: their packets need the fallback now. */
  onRecordsLost(records: PacketRecord[], error: string): void;
  counters(): HelperCounters;
}

/** Longer than the service's heartbeat interval (service/daemon.ts: 1000 ms). */
const DISCONNECT_GRACE_MS = 1500;

export class ServiceLink {
  private connected = false;
  private lastHeard = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly channel: BusChannel;
  private createdDir = false;
  private gatekeeper: BusGatekeeper | null = null;

  private constructor(
    private readonly socket: Pair,
    private readonly options: ServiceLinkOptions,
    private readonly events: ServiceLinkEvents,
    private readonly log: Logger,
  ) {
    this.channel = new BusChannel(socket, {
      onMessage: (m) => this.onMessage(m),
      onBadFrame: (error) => this.log.warn({ error, badFrames: this.channel.badFrames }, 'dropped a malformed frame from the service'),
      onSendFailed: (lost) => {
        if (lost.records.length > 0) this.events.onRecordsLost(lost.records, 'service unreachable');
      },
    });
  }

  static async bind(options: ServiceLinkOptions, events: ServiceLinkEvents, log: Logger): Promise<ServiceLink> {
    const path = ipcPathOf(options.endpoint);
    const createdDir = prepareSocketPath(path, options.socketGid);
    // The peer check answers before the socket exists; zapEnforceDomain: were it ever missing,
    // connections are refused, not let in unchecked.
    const gatekeeper = await BusGatekeeper.start(options.serviceUid, log);
    // sendTimeout 0: when the service cannot take a message now, fail at once so the packet
    // gets the fallback verdict instead of waiting in a queue for a peer that may never come.
    const socket = new Pair({
      linger: 0,
      sendTimeout: 0,
      sendHighWaterMark: 10000,
      receiveHighWaterMark: 10000,
      zapDomain: BUS_ZAP_DOMAIN,
      zapEnforceDomain: true,
    });
    await socket.bind(options.endpoint);
    restrictSocket(path, options.socketGid);
    const link = new ServiceLink(socket, options, events, log);
    link.createdDir = createdDir;
    link.gatekeeper = gatekeeper;
    socket.events.on('disconnect', () => link.onDisconnect());
    void link.channel.receiveLoop().catch((err: Error) => log.error({ err }, 'bus receive loop failed'));
    link.timer = setInterval(() => link.tick(), options.heartbeatMs);
    return link;
  }

  get serviceConnected(): boolean {
    return this.connected;
  }

  get badFrames(): number {
    return this.channel.badFrames;
  }

  /** Connections refused because their process was not the service user's. */
  get refusedPeers(): number {
    return this.gatekeeper?.refused ?? 0;
  }

  sendRecords(records: PacketRecord[]): void {
    this.channel.sendRecords(records);
  }

  /** Records the helper already decided (from its cache): sent in bulk, a few ms later. */
  sendReports(reports: PacketRecord[]): void {
    this.channel.sendReports(reports);
  }

  /** What the inbound policy came to (helper/inbound/inboundProtection.ts). */
  sendInboundState(inbound: InboundState): void {
    if (this.connected) this.channel.sendControl({ kind: 'inbound_state', inbound });
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.channel.close();
    this.gatekeeper?.close();
    removeSocketPath(ipcPathOf(this.options.endpoint), this.createdDir);
  }

  private onMessage(m: BusMessage): void {
    this.lastHeard = performance.now();
    switch (m.kind) {
      case 'hello':
        if (m.hello.role !== 'service') return;
        this.channel.sendControl({ kind: 'hello', hello: this.options.hello });
        if (!this.connected) {
          this.connected = true;
          this.events.onServiceUp(m.hello);
        }
        return;
      case 'verdicts':
        if (this.connected) this.events.onVerdicts(m.verdicts);
        return;
      case 'cache_reset':
        if (this.connected) this.events.onCacheReset(m.reason);
        return;
      case 'path_rules':
        if (this.connected) this.events.onPathRules(m.rules);
        return;
      case 'inbound_policy':
        if (this.connected) this.events.onInboundPolicy(m.enabled);
        return;
      case 'end_connections':
        if (this.connected) this.events.onEndConnections(m.flows);
        return;
      case 'heartbeat':
        return;
      case 'inbound_state':
        this.log.warn('the service sent an inbound state: ignored');
        return;
      case 'packets':
        this.log.warn('the service sent packet records: ignored');
        return;
    }
  }

  private tick(): void {
    if (!this.connected) return;
    if (performance.now() - this.lastHeard > this.options.silenceMs) {
      this.markDown(`service silent for over ${this.options.silenceMs} ms`);
      return;
    }
    this.channel.sendControl({ kind: 'heartbeat', sentAtMs: Date.now(), helper: this.events.counters() });
  }

  /**
   * A pipe closed: the service's, or one the gatekeeper refused (libzmq reports both alike).
   * The service is taken as gone only if it then stays silent past its heartbeat: a refused
   * peer knocking in a loop must not make the helper drop its real peer (and fall back).
   */
  private onDisconnect(): void {
    if (!this.connected) return;
    const at = performance.now();
    setTimeout(() => {
      if (this.lastHeard <= at) this.markDown('service disconnected');
    }, DISCONNECT_GRACE_MS).unref();
  }

  private markDown(reason: string): void {
    if (!this.connected) return;
    this.connected = false;
    this.events.onServiceDown(reason);
  }
}
