// The helper's pipeline, top to bottom: queue -> packet (parse) -> identify -> bus -> verdict.
// It holds no policy: whatever the service does not answer in time gets the fallback verdict.
import { formatAddress } from '../common/address.js';
import type { Logger } from '../common/log.js';
import type { PacketRecord, Verdict } from '../common/types.js';
import { FAST_REPORT_DELAY_MS } from '../common/busChannel.js';
import { PROTOCOL_VERSION, type Hello, type HelperCounters } from '../common/wire.js';
import { FirewallRules, type FirewallRulesOptions } from './firewallRules.js';
import { DnsSnoop, type DnsSnoopOptions } from './dns/dnsSnoop.js';
import { FastPath } from './fastPath.js';
import { ProcessResolver, type Resolution } from './identify/processResolver.js';
import { ProcessEvents } from './identify/procEvents.js';
import { SockDiag } from './identify/sockDiag.js';
import { attachCallerMap, detachCallerMap } from './identify/callerMap.js';
import { newParsedPacket, parsePacket, type ParsedPacket } from './packet.js';
import { PendingVerdicts, type FallbackReason } from './pendingVerdicts.js';
import { PacketQueue, type QueueOptions, type QueuedPacket } from './queue.js';
import { ServiceLink } from './serviceLink.js';
import { VerdictCache, type CachedVerdict } from './verdictCache.js';

const ETH_P_IP = 0x0800;
const ETH_P_IPV6 = 0x86dd;

export interface HelperOptions {
  version: string;
  queue: QueueOptions;
  rules: FirewallRulesOptions;
  /** Skip iptables (tests that install their own rules). */
  manageRules: boolean;
  endpoint: string;
  socketGid: number | null;
  /** Only processes of this uid may be the service (serviceLink.ts). */
  serviceUid: number;
  /** The service must answer (verdict or hold) within this; design goal p99 <= 1 ms. */
  ackDeadlineMs: number;
  /** Longest a prompt may hold a packet. */
  maxHoldMs: number;
  /** fail_open: the verdict when the service is absent or late. */
  fallbackAccept: boolean;
  /** Verdict for packets we cannot parse. */
  malformedAccept: boolean;
  heartbeatMs: number;
  silenceMs: number;
  /** Let the addon answer cached verdicts itself (native/src/fast_path.h); needs process events. */
  fastPath: boolean;
  /** Learn destination host names from DNS answers (helper/dns/dnsSnoop.ts); null: off. */
  dnsSnoop: DnsSnoopOptions | null;
  /** Learn from the kernel which process connected each socket (identify/callerMap.ts); default true. */
  callerBpf?: boolean;
}

export class Helper {
  private queue: PacketQueue | null = null;
  private link: ServiceLink | null = null;
  private readonly rules: FirewallRules;
  private readonly resolver: ProcessResolver;
  private readonly processEvents: ProcessEvents | null;
  private readonly pending: PendingVerdicts;
  /** Verdicts the service allowed us to reuse; bounded, expiring, cleared on any policy change. */
  private readonly verdictCache = new VerdictCache(4096, undefined, () => this.fastPath?.clear());
  /** Answers cached verdicts in the addon, before JS runs; null without process events. */
  private fastPath: FastPath | null = null;
  private readonly dns: DnsSnoop | null;
  private readonly parsed = newParsedPacket();
  private readonly capabilities: string[];
  private packets = 0;
  private malformed = 0;
  /** Fallback verdicts since the last summary line, by reason: logged once a second, not per packet. */
  private readonly fallbacksByReason = new Map<FallbackReason, number>();
  private summaryTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly options: HelperOptions,
    private readonly log: Logger,
  ) {
    this.rules = new FirewallRules(options.rules);
    this.dns = options.dnsSnoop ? new DnsSnoop(options.dnsSnoop, log) : null;
    const sockDiag = SockDiag.open();
    this.capabilities = ['uid_gid', 'fail_open', 'ipv6', ...(sockDiag ? ['sock_diag'] : ['proc_net'])];
    if (!sockDiag) log.warn('NETLINK_SOCK_DIAG unavailable: identifying processes through /proc/net (slower)');
    if (sockDiag && options.callerBpf !== false) this.attachCallerMap();
    const events = ProcessEvents.open();
    this.processEvents = events.events;
    if (!events.events) log.info({ reason: events.reason }, 'process connector unavailable: new processes found by listing /proc');
    this.resolver = new ProcessResolver({
      events: this.processEvents,
      lookupSocket: sockDiag
        ? (family, protocol, src, srcPort, dst, dstPort) => sockDiag.lookup(family, protocol, src, srcPort, dst, dstPort)
        : () => 'unavailable',
    });
    this.pending = new PendingVerdicts(
      {
        ackDeadlineMs: options.ackDeadlineMs,
        maxHoldMs: options.maxHoldMs,
        sweepIntervalMs: Math.max(5, Math.min(50, Math.floor(options.ackDeadlineMs / 4))),
        fallbackAccept: options.fallbackAccept,
      },
      {
        apply: (id, accept, mark) => this.applyVerdict(id, accept, mark),
        onFallback: (id, reason) => this.onFallback(id, reason),
        onDecided: (key, accept, mark, cacheMs) => this.verdictCache.store(key, accept, mark, cacheMs),
      },
    );
  }

  async start(): Promise<void> {
    if (this.options.manageRules) await this.rules.install();
    await this.startDnsSnoop();
    this.link = await ServiceLink.bind(
      {
        endpoint: this.options.endpoint,
        socketGid: this.options.socketGid,
        serviceUid: this.options.serviceUid,
        heartbeatMs: this.options.heartbeatMs,
        silenceMs: this.options.silenceMs,
        hello: this.hello(),
      },
      {
        onVerdicts: (verdicts) => this.onVerdicts(verdicts),
        onCacheReset: (reason) => {
          this.log.debug({ reason, entries: this.verdictCache.size }, 'verdict cache reset by the service');
          this.verdictCache.clear();
        },
        onServiceUp: (hello) => this.log.info({ pid: hello.pid, version: hello.softwareVersion }, 'policy service connected'),
        onServiceDown: (reason) => {
          this.log.warn({ reason, held: this.pending.size }, 'policy service gone: held packets get the fallback verdict');
          this.pending.fallbackAll('service_lost');
          this.verdictCache.clear(); // its entries were the service's word; the service is gone
        },
        onRecordsLost: (records) => {
          // Reports already have their verdict; only packets still waiting need the fallback.
          for (const r of records) if (!r.helperVerdict) this.pending.fallbackNow(r.packetId, 'no_service');
        },
        counters: () => this.counters(),
      },
      this.log,
    );
    this.pending.start();
    // Every process's sockets known before the first packet waits on a search (~30 ms per 200 processes).
    const warmed = this.resolver.index.warm();
    this.log.info({ processes: warmed, processEvents: this.processEvents !== null }, 'socket owners indexed');
    this.summaryTimer = setInterval(() => this.logFallbackSummary(), 1000);
    this.queue = PacketQueue.open(
      this.options.queue,
      (packets, count) => this.onBatch(packets, count),
      (err) => this.log.error({ err }, 'queue error'),
    );
    this.enableFastPath(this.queue);
    this.log.info(
      { queue: this.options.queue.queueNum, endpoint: this.options.endpoint, failOpen: this.options.fallbackAccept },
      'helper started',
    );
  }

  /** Host names are a convenience: the firewall works on without them. */
  private async startDnsSnoop(): Promise<void> {
    if (this.dns === null) return;
    try {
      await this.dns.start();
      this.capabilities.push('host_names');
    } catch (err) {
      this.log.warn({ err }, 'DNS answers cannot be read: no host names');
    }
  }

  /** Sockets' connect()/sendmsg() callers from the kernel: a shared socket goes to the one that acted. */
  private attachCallerMap(): void {
    const state = attachCallerMap();
    if (state.attached) {
      this.capabilities.push('caller_bpf');
      this.log.info({ cgroup: state.cgroup }, 'connect()/sendmsg() callers recorded by eBPF');
    } else {
      this.log.warn({ reason: state.reason }, 'eBPF caller map unavailable: a socket shared by several programs is credited only when they are known not to differ');
    }
  }

  /** Only with process events: they are what tells the addon that a pid still runs the same program. */
  private enableFastPath(queue: PacketQueue): void {
    const events = this.processEvents?.nativeHandle;
    if (!this.options.fastPath || !events || !this.processEvents) return;
    try {
      queue.enableFastPath(events);
    } catch (err) {
      this.log.warn({ err }, 'fast path unavailable: every packet is answered from JS');
      return;
    }
    const fastPath = new FastPath(queue, this.processEvents);
    this.fastPath = fastPath;
    this.processEvents.subscribe(fastPath);
    queue.onFastAnswered = () => {
      fastPath.noteAnsweredWaiting();
      // Collected in bulk, like the cache's reports: JS is not woken per answered packet.
      setTimeout(() => this.reportFastAnswered(fastPath), FAST_REPORT_DELAY_MS);
    };
  }

  private reportFastAnswered(fastPath: FastPath): void {
    const reports: PacketRecord[] = [];
    fastPath.takeAnswered((packet, process) => {
      this.packets += packet.fastRepeats;
      let record: PacketRecord | null;
      try {
        record = this.toRecord(packet, { attribution: 'cache', process, socketInode: packet.fastInode, socketUid: -1, lookupMicros: 0 });
      } catch (err) {
        this.log.error({ err, packetId: packet.packetId }, 'failed to build the report of a packet the fast path answered');
        return;
      }
      if (record === null) return;
      record.helperVerdict = packet.fastVerdict ?? 'accept';
      if (packet.fastRepeats > 1) record.repeats = packet.fastRepeats;
      reports.push(record);
    });
    if (reports.length > 0) this.link?.sendReports(reports);
  }

  /** Answers every held packet, closes the queue and the bus, removes our rules. */
  async stop(): Promise<void> {
    this.pending.fallbackAll('shutdown');
    this.pending.stop();
    if (this.summaryTimer) clearInterval(this.summaryTimer);
    this.logFallbackSummary();
    if (this.fastPath) this.reportFastAnswered(this.fastPath); // counted before the bus closes
    await this.dns?.stop().catch((err: unknown) => this.log.warn({ err }, 'removing the DNS rules failed'));
    const queueCounters = this.queue?.counters();
    this.queue?.close();
    this.processEvents?.close();
    detachCallerMap();
    this.queue = null;
    this.link?.close();
    this.link = null;
    if (this.options.manageRules) await this.rules.remove();
    const events = this.processEvents && { ...this.processEvents.counters, listenerErrors: this.processEvents.listenerErrors };
    this.log.info({ counters: this.counters(), queue: queueCounters, dns: this.dns?.counters, identify: this.resolver.index.counters, processEvents: events }, 'helper stopped');
  }

  counters(): HelperCounters {
    const q = this.queue?.counters();
    return {
      packets: this.packets,
      malformed: this.malformed,
      overruns: q?.overruns ?? 0,
      fallbackVerdicts: this.pending.fallbackCount,
      pending: this.pending.size,
      badFrames: this.link?.badFrames ?? 0,
      cacheHits: this.verdictCache.hits + (q?.fastDecided ?? 0),
      fastAnswered: q?.fastDecided ?? 0,
    };
  }

  private hello(): Hello {
    return {
      role: 'helper',
      softwareVersion: this.options.version,
      protocolVersion: PROTOCOL_VERSION,
      pid: process.pid,
      capabilities: this.capabilities,
      queueNum: this.options.queue.queueNum,
      ackDeadlineMs: this.options.ackDeadlineMs,
      maxHoldMs: this.options.maxHoldMs,
    };
  }

  private onBatch(packets: readonly QueuedPacket[], count: number): void {
    const records: PacketRecord[] = [];
    const reports: PacketRecord[] = [];
    const connected = this.link?.serviceConnected ?? false;
    for (let i = 0; i < count; i++) {
      const packet = packets[i]!;
      this.packets++;
      let record: PacketRecord | null;
      try {
        record = this.toRecord(packet);
      } catch (err) {
        // A bug in a stage must not strand the packet: treat it as malformed.
        this.log.error({ err, packetId: packet.packetId }, 'failed to build a packet record');
        record = null;
      }
      if (!record) {
        this.malformed++;
        this.applyVerdict(packet.packetId, this.options.malformedAccept, undefined);
        continue;
      }
      if (connected) {
        // Only TCP and UDP packets are credited to a process (ProcessResolver), so only they get a
        // key; and only a process whose exe path was proven (identity 'host'): a path another
        // user namespace or file borrowed must neither use nor fill the cache (nor so the fast path).
        const owner = record.process;
        const cacheKey = owner?.exe && owner.identity === 'host' ? VerdictCache.key(owner.exe, record.protocol, record.dstPort) : null;
        const cached = cacheKey === null ? null : this.verdictCache.lookup(cacheKey);
        if (cached) {
          // The service's earlier answer for this program and port: apply it now, report it after.
          this.applyVerdict(record.packetId, cached.accept, cached.mark);
          record.helperVerdict = cached.accept ? 'accept' : 'drop';
          reports.push(record);
          this.armFastPath(record, cached);
        } else {
          this.pending.hold(record.packetId, cacheKey);
          records.push(record);
        }
      } else {
        this.pending.fallbackNow(record.packetId, 'no_service');
      }
    }
    if (records.length > 0) this.link?.sendRecords(records);
    if (reports.length > 0) this.link?.sendReports(reports);
  }

  /**
   * The process of a packet answered from the cache gets the same answer in the addon next
   * time. Armed with the packet's uid (NFQA_UID): the addon answers only when the socket's
   * owner, as sock_diag reports it, is that uid too.
   */
  private armFastPath(record: PacketRecord, cached: CachedVerdict): void {
    const process = record.process;
    if (this.fastPath === null || process === null || record.uid < 0) return;
    if (record.attribution !== 'sock_diag' && record.attribution !== 'cache') return;
    if (!this.fastPath.wantsArming(process.pid, record.protocol, record.dstPort)) return;
    this.fastPath.arm(process, {
      uid: record.uid,
      fds: this.resolver.index.likelySocketFds(process.pid, record.socketInode, this.fastPath.fdsPerProcess),
      protocol: record.protocol,
      port: record.dstPort,
      accept: cached.accept,
      mark: cached.mark,
      ttlMs: this.verdictCache.remainingMs(cached),
    });
  }

  /** Parses and identifies one packet (unless known already identifies it); null when it cannot be parsed. */
  private toRecord(packet: QueuedPacket, known?: Resolution): PacketRecord | null {
    const p = this.parsed;
    const error = parsePacket(packet.payload, p);
    const familyMatches = (packet.hwProtocol === ETH_P_IP && p.family === 4) || (packet.hwProtocol === ETH_P_IPV6 && p.family === 6);
    if (error !== null || !familyMatches) {
      this.log.debug({ packetId: packet.packetId, error: error ?? 'family mismatch' }, 'malformed packet');
      return null;
    }
    const src = p.srcAddr.slice();
    const dst = p.dstAddr.slice();
    const found = known ?? (p.isFragment ? null : this.identify(p, src, dst, packet.uid));
    const record: PacketRecord = {
      packetId: packet.packetId,
      family: p.family,
      protocol: p.protocol,
      srcAddr: src,
      dstAddr: dst,
      srcPort: p.srcPort,
      dstPort: p.dstPort,
      icmpType: p.icmpType,
      icmpCode: p.icmpCode,
      inIfindex: packet.inIfindex,
      outIfindex: packet.outIfindex,
      uid: packet.uid,
      gid: packet.gid,
      malformed: false,
      process: found?.process ?? null,
      socketInode: found?.socketInode ?? 0,
      attribution: found?.attribution ?? 'unsupported',
      lookupMicros: Math.round(found?.lookupMicros ?? 0),
      payloadLength: packet.origLen,
    };
    const host = this.dns?.names.lookup(dst);
    if (host !== undefined) record.host = host;
    if (this.log.isLevelEnabled('debug')) {
      this.log.debug(
        { packetId: record.packetId, dst: `${formatAddress(dst)}:${record.dstPort}`, proto: record.protocol, exe: record.process?.exe, how: record.attribution },
        'packet',
      );
    }
    return record;
  }

  /** Socket -> process for TCP/UDP by 5-tuple, for ICMP by echo id or the one raw socket. */
  private identify(p: ParsedPacket, src: Uint8Array, dst: Uint8Array, uid: number): Resolution {
    if ((p.family === 4 && p.protocol === 1) || (p.family === 6 && p.protocol === 58)) {
      return this.resolver.resolveIcmp({ family: p.family, src, dst, echoId: p.icmpEchoId, uid });
    }
    return this.resolver.resolve(p.family, p.protocol, src, p.srcPort, dst, p.dstPort, uid);
  }

  private onVerdicts(verdicts: Verdict[]): void {
    for (const v of verdicts) this.pending.resolve(v.packetId, v.action, v.mark, v.holdMs, v.cacheMs);
  }

  private applyVerdict(packetId: number, accept: boolean, mark: number | undefined): number {
    const rc = this.queue?.verdict(packetId, accept, mark) ?? -9;
    if (rc !== 0) this.log.warn({ packetId, rc }, 'verdict not applied');
    return rc;
  }

  private onFallback(packetId: number, reason: FallbackReason): void {
    this.fallbacksByReason.set(reason, (this.fallbacksByReason.get(reason) ?? 0) + 1);
    this.log.debug({ packetId, reason }, 'fallback verdict');
  }

  private logFallbackSummary(): void {
    if (this.fallbacksByReason.size === 0) return;
    const byReason = Object.fromEntries(this.fallbacksByReason);
    this.fallbacksByReason.clear();
    this.log.info({ byReason, verdict: this.options.fallbackAccept ? 'accept' : 'drop' }, 'fallback verdicts applied');
  }
}
