// The helper's pipeline, top to bottom: queue -> packet (parse) -> per-uid queues -> identify
// -> bus -> verdict. It holds no policy: whatever the service does not answer in time gets the
// fallback verdict. Identification runs in bounded steps, uids in turn (uidQueues.ts), each
// packet within a time budget and each uid within its share (identifyBudget.ts), so that no
// one's packets can stall the helper or make it answer anyone else's by the fallback.
import { formatAddress } from '../common/address.js';
import type { Logger } from '../common/log.js';
import type { PacketRecord, Verdict } from '../common/types.js';
import { FAST_REPORT_DELAY_MS } from '../common/busChannel.js';
import { PROTOCOL_VERSION, type Hello, type HelperCounters } from '../common/wire.js';
import { FirewallRules, type FirewallRulesOptions } from './firewallRules.js';
import { DnsSnoop, type DnsSnoopOptions } from './dns/dnsSnoop.js';
import { detectOtherFirewall } from './inbound/inboundDetect.js';
import { InboundProtection } from './inbound/inboundProtection.js';
import { InboundRules } from './inbound/inboundRules.js';
import { FastPath } from './fastPath.js';
import { KernelVerdicts, pinUdpAllow, type KernelDecision } from './kernelVerdicts.js';
import { unpinFilter } from './pinnedFilter.js';
import { LiveConnections } from './liveConnections.js';
import { tcpConnectionsTo } from './identify/procNet.js';
import { loadNative } from '../common/native.js';
import { IdentifyBudget } from './identifyBudget.js';
import { ProcessResolver, type Resolution } from './identify/processResolver.js';
import { ProcessEvents } from './identify/procEvents.js';
import { SockDiag } from './identify/sockDiag.js';
import { attachCallerMap, detachCallerMap, pinFlowNote } from './identify/callerMap.js';
import { newParsedPacket, parsePacket } from './packet.js';
import { PendingVerdicts, type FallbackReason } from './pendingVerdicts.js';
import { PacketQueue, type QueueOptions, type QueuedPacket } from './queue.js';
import { ServiceLink } from './serviceLink.js';
import { UidQueues } from './uidQueues.js';
import { VerdictCache, type CachedVerdict } from './verdictCache.js';

const ETH_P_IP = 0x0800;
const IPPROTO_TCP = 6;
const ETH_P_IPV6 = 0x86dd;
/** Longest one packet's lookup may search (a first lookup takes ~0.2 ms, p99 ~1 ms, at most ~2 ms). */
const PACKET_LOOKUP_BUDGET_MS = 5;
/** Lookups one packet gets at most (each within PACKET_LOOKUP_BUDGET_MS) before it is credited to no one. */
const MAX_LOOKUPS_PER_PACKET = 20;
/** Each uid's share of lookup time: this many ms per second, saving up to the burst. */
const UID_LOOKUP_MS_PER_SECOND = 250;
const UID_LOOKUP_BURST_MS = 500;
/** Packets of one uid waiting to be identified or held for the service, at most; more are dropped. */
const MAX_IN_FLIGHT_PER_UID = 512;
/** Identification runs this long before the event loop gets a turn (verdicts, new batches). */
const IDENTIFY_SLICE_MS = 2;
/** A uid with this much of its share left is served before uids that spent more. */
const CHEAP_UID_MS = UID_LOOKUP_BURST_MS / 2;

/** A parsed packet waiting for its turn to be identified. */
interface Unidentified {
  record: PacketRecord;
  /** ICMP echo identifier (ICMP sockets are found by it). */
  icmpEchoId: number;
  /** Fragments after the first carry no ports: nothing to look up. */
  fragment: boolean;
  /** Lookups of its process so far, each cut short by the packet's time (the next goes on where it stopped). */
  lookups: number;
  /** Their time in all, in µs. */
  lookupMicros: number;
}
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
  /** Without that, believe a process found holding a socket connected it (ProcessResolverOptions.weakIdentity). */
  weakIdentity?: boolean;
  /** Let the kernel apply the service's path rules (helper/kernelVerdicts.ts); default true. Needs callerBpf. */
  kernelVerdicts?: boolean;
  /** Apply the service's inbound policy with chains of our own (helper/inbound); null: never touch inbound. Needs manageRules. */
  inbound?: { chain: string; nft: string; recheckMs: number } | null;
  /** A bpf file system where our chain's filters are pinned (default /sys/fs/bpf); without one, UDP allows go to the queue and the fast path asks sock_diag for every SYN's caller. */
  bpfFs?: string;
}

/** Where systemd mounts the bpf file system. */
const DEFAULT_BPF_FS = '/sys/fs/bpf';

/** Record ids map to (queue, kernel packet id) as kernelId + QUEUE_ID_SPAN * queue index. */
const QUEUE_ID_SPAN = 2 ** 32;
/** Indexes into Helper.queues (and fastPaths): the main queue, and the system accounts' one. */
const MAIN = 0;
const SYSTEM = 1;

export class Helper {
  /**
   * The main queue and, with rules.systemQueue, the system accounts' queue (MAIN, SYSTEM),
   * read side by side: a user's flood fills only the main one.
   */
  private readonly queues: (PacketQueue | null)[] = [null, null];
  /**
   * Record id -> where its packet waits. Each queue numbers its packets on its own, so the ids
   * the service sees are the helper's: one per packet, mapped back when the verdict is applied.
   */
  private readonly kernelIds = new Map<number, number>();
  /** The mark that sends a final denial to our chain's REJECT rule; null when we installed none. */
  private readonly rejectMark: number | null;
  private lastRecordId = 0;
  private link: ServiceLink | null = null;
  private rules: FirewallRules;
  /** The path rules the kernel applies; null when it decides nothing (queue only). */
  private kernel: KernelVerdicts | null = null;
  private kernelReportTimer: NodeJS.Timeout | null = null;
  /** Where the UDP allow filter is pinned for our chain's match; null: UDP allows go to the queue. */
  private udpAllowPin: string | null = null;
  /** Where the flow note filter is pinned for our chain's rule; null: the fast path asks sock_diag. */
  private flowNotePin: string | null = null;
  private readonly resolver: ProcessResolver;
  private readonly processEvents: ProcessEvents | null;
  private readonly pending: PendingVerdicts;
  /** Verdicts the service allowed us to reuse; bounded, expiring, cleared on any policy change. */
  private readonly verdictCache = new VerdictCache(4096, undefined, () => this.fastPaths.forEach((f) => f?.clear()));
  /** Answers cached verdicts in the addon, before JS runs; null without process events. */
  private readonly fastPaths: (FastPath | null)[] = [null, null];
  private readonly dns: DnsSnoop | null;
  /** TCP flows this helper passed on, which the service may ask to end (EndConnections). */
  private readonly live: LiveConnections;
  private readonly parsed = newParsedPacket();
  private readonly capabilities: string[];
  private packets = 0;
  private malformed = 0;
  /** Fallback verdicts since the last summary line, by reason: logged once a second, not per packet. */
  private readonly fallbacksByReason = new Map<FallbackReason, number>();
  /** Parsed packets waiting to be identified, per uid. */
  private readonly waiting = new UidQueues<Unidentified>(MAX_IN_FLIGHT_PER_UID);
  private readonly lookupBudget = new IdentifyBudget(UID_LOOKUP_MS_PER_SECOND, UID_LOOKUP_BURST_MS);
  private pumpScheduled = false;
  /** Packets dropped because their uid had too many in flight, since the last summary / in all. */
  private floodDropsSinceSummary = 0;
  private floodDrops = 0;
  /** Packets whose lookup ran out of time and went on at a later turn. */
  private lookupRetries = 0;
  private summaryTimer: NodeJS.Timeout | null = null;
  private readonly inbound: InboundProtection | null;

  constructor(
    private readonly options: HelperOptions,
    private readonly log: Logger,
  ) {
    this.rejectMark = options.manageRules ? (options.rules.rejectMark ?? null) : null;
    this.rules = new FirewallRules(options.rules);
    this.dns = options.dnsSnoop ? new DnsSnoop(options.dnsSnoop, log) : null;
    const sockDiag = SockDiag.open();
    this.live = new LiveConnections(
      sockDiag,
      log,
      sockDiag && {
        connectionsTo: (family, dst, dstPort) => tcpConnectionsTo(family, dst, dstPort),
        callerOf: (family, src, srcPort, dst, dstPort) => {
          const owner = sockDiag.lookup(family, IPPROTO_TCP, src, srcPort, dst, dstPort);
          const caller = owner === null || owner === 'unavailable' ? null : owner.caller;
          return caller?.process ? { pid: caller.pid, startTime: caller.process.startTime } : null;
        },
      },
    );
    this.capabilities = ['uid_gid', 'fail_open', 'ipv6', ...(sockDiag ? ['sock_diag'] : ['proc_net'])];
    this.inbound = options.manageRules && options.inbound ? this.inboundProtection(options.inbound) : null;
    if (this.inbound) this.capabilities.push('inbound');
    if (!sockDiag) log.warn('NETLINK_SOCK_DIAG unavailable: identifying processes through /proc/net (slower)');
    const callers = sockDiag && options.callerBpf !== false ? this.attachCallerMap(options.kernelVerdicts !== false) : false;
    if (this.kernel === null) {
      this.log.info(
        { requested: options.kernelVerdicts !== false },
        'every new connection goes to the queue: no decisions in the kernel' +
          (options.kernelVerdicts === false ? ' (--no-kernel-verdicts)' : ' (needs eBPF caller records with the executable: CAP_PERFMON, kernel BTF, 5.15)'),
      );
    }
    if (!callers) this.capabilities.push(options.weakIdentity === true ? 'weak_identity' : 'caller_unproven');
    if (!callers && options.weakIdentity !== true) {
      log.warn(
        'no eBPF caller records: nothing proves which program connected a socket, so none matches a path rule (connections get the default or a prompt); --weak-identity credits the process found holding it instead',
      );
    }
    const events = ProcessEvents.open();
    this.processEvents = events.events;
    if (!events.events) log.info({ reason: events.reason }, 'process connector unavailable: new processes found by listing /proc');
    this.resolver = new ProcessResolver({
      events: this.processEvents,
      lookupSocket: sockDiag
        ? (family, protocol, src, srcPort, dst, dstPort) => sockDiag.lookup(family, protocol, src, srcPort, dst, dstPort)
        : () => 'unavailable',
      weakIdentity: options.weakIdentity === true,
    });
    this.pending = new PendingVerdicts(
      {
        ackDeadlineMs: options.ackDeadlineMs,
        maxHoldMs: options.maxHoldMs,
        sweepIntervalMs: Math.max(5, Math.min(50, Math.floor(options.ackDeadlineMs / 4))),
        fallbackAccept: options.fallbackAccept,
      },
      {
        apply: (id, accept, mark, final) => this.applyVerdict(id, accept, mark, final),
        onFallback: (id, reason) => this.onFallback(id, reason),
        onDecided: (key, accept, mark, cacheMs) => this.verdictCache.store(key, accept, mark, cacheMs),
        onReleased: (uid) => this.waiting.release(uid),
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
          this.log.debug({ reason, entries: this.verdictCache.size, kernelEntries: this.kernel?.size }, 'verdict cache reset by the service');
          this.verdictCache.clear();
          // The old rules leave the kernel here; the service's new ones follow this message.
          this.kernel?.clear();
        },
        onPathRules: (rules) => {
          if (this.kernel === null) return;
          this.kernel.replace(rules);
          // Once per rule change: rare, and what a reader of the journal wants to see.
          this.log.info({ rules: rules.length, entries: this.kernel.size }, 'path rules for the kernel');
        },
        onInboundPolicy: (enabled) => void this.inbound?.apply(enabled),
        onEndConnections: (flows) => this.live.end(flows),
        onServiceUp: (hello) => this.log.info({ pid: hello.pid, version: hello.softwareVersion }, 'policy service connected'),
        onServiceDown: (reason) => {
          this.log.warn({ reason, held: this.pending.size }, 'policy service gone: held packets get the fallback verdict');
          this.pending.fallbackAll('service_lost');
          this.verdictCache.clear(); // its entries were the service's word; the service is gone
          this.kernel?.clear(); // so were these: new connections get the fallback, as in the queue
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
    if (this.kernel !== null) {
      this.kernel.start();
      // Collected in bulk, like the fast path's reports: JS is not woken per decision.
      this.kernelReportTimer = setInterval(() => this.reportKernelDecisions(), FAST_REPORT_DELAY_MS);
    }
    // Every process's sockets known before the first packet waits on a search (~30 ms per 200 processes).
    const warmed = this.resolver.index.warm();
    this.log.info({ processes: warmed, processEvents: this.processEvents !== null }, 'socket owners indexed');
    this.summaryTimer = setInterval(() => this.logFallbackSummary(), 1000);
    const systemQueueNum = this.options.rules.systemQueue?.queueNum ?? null;
    this.openQueue(MAIN, this.options.queue.queueNum);
    if (systemQueueNum !== null) this.openQueue(SYSTEM, systemQueueNum);
    this.log.info(
      { queue: this.options.queue.queueNum, systemQueue: systemQueueNum, endpoint: this.options.endpoint, failOpen: this.options.fallbackAccept },
      'helper started',
    );
  }

  private openQueue(index: number, queueNum: number): void {
    const queue = PacketQueue.open(
      { ...this.options.queue, queueNum },
      (packets, count) => this.onBatch(index, packets, count),
      (err) => this.log.error({ err, queueNum }, 'queue error'),
    );
    this.queues[index] = queue;
    this.fastPaths[index] = this.enableFastPath(queue);
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

  /**
   * Sockets' connect()/sendmsg() callers from the kernel: a shared socket goes to the one that
   * acted. Capabilities say which identity is live (`bastion status`): caller_bpf, with
   * caller_exe when records carry the executable.
   */
  private attachCallerMap(verdicts: boolean): boolean {
    const state = attachCallerMap(verdicts);
    if (state.attached) {
      this.capabilities.push('caller_bpf');
      if (state.exe) this.capabilities.push('caller_exe');
      const native = loadNative();
      const bpfFs = this.options.bpfFs ?? DEFAULT_BPF_FS;
      // Only into a chain of ours, which removes it again.
      if (state.byFlow && this.options.manageRules) {
        const note = pinFlowNote(bpfFs, this.options.rules.chain);
        if (note.ok) this.flowNotePin = note.path;
        else this.log.warn({ reason: note.reason }, "the fast path asks sock_diag for every SYN's caller: no flow note filter");
      }
      if (state.verdicts) {
        this.kernel = new KernelVerdicts(native, this.log);
        this.capabilities.push('kernel_verdicts');
        const udp = pinUdpAllow(native, bpfFs, this.options.rules.chain);
        if (udp.ok) {
          this.udpAllowPin = udp.path;
          this.capabilities.push('kernel_udp_allow');
        } else {
          // When the kernel refused the filter, the first refused load (the one with it) says why.
          const libbpf = udp.refused ? state.refused : '';
          this.log.warn(
            { reason: udp.reason, ...(libbpf !== '' && { libbpf }) },
            'UDP datagrams allowed by path rules go to the queue: no in-kernel UDP allow filter',
          );
        }
        this.log.info(
          { acceptMark: `0x${native.verdictEvent.acceptMark.toString(16)}`, udpAllowFilter: this.udpAllowPin },
          "path rules decided in the kernel: the service's rules for known programs apply at connect(), and to each UDP datagram",
        );
      } else if (verdicts && state.refused !== '') {
        this.log.warn({ libbpf: state.refused }, 'the kernel refused in-kernel verdicts: every new connection goes to the queue');
      }
      this.rules = new FirewallRules({
        ...this.options.rules,
        flowNoteFilter: this.flowNotePin,
        ...(this.kernel && { kernelAcceptMark: native.verdictEvent.acceptMark, kernelUdpAllowFilter: this.udpAllowPin }),
      });
      this.log.info({ cgroup: state.cgroup, executable: state.exe, flowNoteFilter: this.flowNotePin }, 'connect()/sendmsg() callers recorded by eBPF');
      if (!state.exe) {
        this.log.warn(
          { libbpf: state.refused },
          "eBPF caller records without the caller's executable (CAP_PERFMON or kernel BTF missing): a caller that exec'd another program after its connect() is still credited",
        );
      }
      return true;
    }
    this.log.warn({ reason: state.reason, libbpf: state.log }, 'eBPF caller records unavailable');
    return false;
  }

  /** Only with process events: they are what tells the addon that a pid still runs the same program. */
  private enableFastPath(queue: PacketQueue): FastPath | null {
    const events = this.processEvents?.nativeHandle;
    if (!this.options.fastPath || !events) return null;
    try {
      queue.enableFastPath(events);
    } catch (err) {
      this.log.warn({ err }, 'fast path unavailable: every packet is answered from JS');
      return null;
    }
    const fastPath = new FastPath(queue, this.processEvents);
    this.processEvents.subscribe(fastPath);
    queue.onFastAnswered = () => {
      // Collected in bulk, like the cache's reports: JS is not woken per answered packet.
      setTimeout(() => this.reportFastAnswered(fastPath), FAST_REPORT_DELAY_MS);
    };
    return fastPath;
  }

  private reportFastAnswered(fastPath: FastPath): void {
    const reports: PacketRecord[] = [];
    const drained = fastPath.takeAnswered((packet, process) => {
      this.packets += packet.fastRepeats;
      let record: PacketRecord | null;
      try {
        record = this.toRecord(packet, this.nextRecordId(), { attribution: 'cache', process, socketInode: packet.fastInode, socketUid: -1, lookupMicros: 0 });
      } catch (err) {
        this.log.error({ err, packetId: packet.packetId }, 'failed to build the report of a packet the fast path answered');
        return;
      }
      if (record === null) return;
      record.helperVerdict = packet.fastVerdict ?? 'accept';
      if (packet.fastRepeats > 1) record.repeats = packet.fastRepeats;
      reports.push(record);
    });
    if (reports.length > 0) this.sendReports(reports);
    if (!drained) setTimeout(() => this.reportFastAnswered(fastPath), FAST_REPORT_DELAY_MS);
  }

  /** Reports what the kernel decided since the last call, as records the service counts and logs. */
  private reportKernelDecisions(): void {
    const kernel = this.kernel;
    if (kernel === null) return;
    const reports: PacketRecord[] = [];
    for (let more = true, takes = 0; more && takes < 8; takes++) {
      more = !kernel.take((d) => {
        if (d.allow) this.live.sawKernel(d);
        reports.push(this.kernelRecord(d));
      });
    }
    // Straight to the bus, not sendReports(): sawKernel() above remembers these by program.
    if (reports.length > 0) this.link?.sendReports(reports);
  }

  private kernelRecord(d: KernelDecision): PacketRecord {
    const zeros = new Uint8Array(d.family === 4 ? 4 : 16);
    const record: PacketRecord = {
      packetId: this.nextRecordId(),
      family: d.family,
      protocol: d.protocol,
      srcAddr: zeros,
      dstAddr: d.dstAddr,
      srcPort: 0,
      dstPort: d.dstPort,
      icmpType: -1,
      icmpCode: -1,
      inIfindex: 0,
      outIfindex: 0,
      uid: d.uid,
      gid: -1,
      malformed: false,
      // The kernel proved the executable: its inode is the file at the rule's path.
      process: {
        pid: d.tgid,
        uid: d.uid,
        exe: d.exe,
        exeDeleted: false,
        comm: d.comm,
        cmdline: [],
        ppid: 0,
        parentExe: '',
        startTime: d.startTime,
        identity: d.exe === '' ? 'unverified' : 'host',
        otherMountNs: false,
      },
      socketInode: 0,
      attribution: 'kernel',
      lookupMicros: 0,
      payloadLength: 0,
      helperVerdict: d.allow ? 'accept' : 'drop',
    };
    if (d.repeats > 1) record.repeats = d.repeats;
    const host = this.dns?.names.lookup(d.dstAddr);
    if (host !== undefined) record.host = host;
    return record;
  }

  /** Answers every held packet, closes the queue and the bus, removes our rules. */
  async stop(): Promise<void> {
    this.waiting.drain((_uid, p) => this.pending.fallbackNow(p.record.packetId, 'shutdown'));
    this.pending.fallbackAll('shutdown');
    this.pending.stop();
    if (this.summaryTimer) clearInterval(this.summaryTimer);
    this.logFallbackSummary();
    for (const fastPath of this.fastPaths) if (fastPath) this.reportFastAnswered(fastPath); // counted before the bus closes
    if (this.kernelReportTimer) clearInterval(this.kernelReportTimer);
    this.kernel?.stop();
    this.reportKernelDecisions();
    await this.dns?.stop().catch((err: unknown) => this.log.warn({ err }, 'removing the DNS rules failed'));
    await this.inbound?.stop();
    const [queueCounters, systemQueueCounters] = this.queues.map((q) => q?.counters());
    for (const queue of this.queues) queue?.close();
    this.queues.fill(null);
    this.kernelIds.clear();
    this.processEvents?.close();
    detachCallerMap();
    this.link?.close();
    this.link = null;
    if (this.options.manageRules && this.options.rules.queueBypass) {
      await this.rules.remove();
      // Kept while our chain names them: an iptables-save/restore of the remaining rules reads them.
      for (const pin of [this.udpAllowPin, this.flowNotePin]) if (pin !== null) unpinFilter(pin);
    } else if (this.options.manageRules) {
      // Without --queue-bypass the chain holds new connections while no helper reads the
      // queue: left in place, a restart or an upgrade lets nothing out. The next start
      // replaces it; removing the package removes it.
      this.log.info({ chain: this.options.rules.chain }, 'fail-closed: the queue rules stay, new connections wait for the next helper');
    }
    const events = this.processEvents && { ...this.processEvents.counters, listenerErrors: this.processEvents.listenerErrors };
    this.log.info(
      {
        counters: this.counters(),
        floodDrops: this.floodDrops,
        stalledMs: Math.round(this.pending.stalledMs),
        queue: queueCounters,
        systemQueue: systemQueueCounters,
        dns: this.dns?.counters,
        identify: this.resolver.index.counters,
        processEvents: events,
      },
      'helper stopped',
    );
  }

  private inboundProtection(options: NonNullable<HelperOptions['inbound']>): InboundProtection {
    const { iptables, ip6tables, families } = this.options.rules;
    return new InboundProtection({
      rules: new InboundRules({ chain: options.chain, families, iptables, ip6tables }),
      detect: () => detectOtherFirewall({ iptables, ip6tables, nft: options.nft, ownChain: options.chain, families }),
      report: (state) => this.link?.sendInboundState(state),
      log: this.log,
      recheckMs: options.recheckMs,
    });
  }

  counters(): HelperCounters {
    let fastDecided = 0;
    let fastByFlow = 0;
    let overruns = 0;
    for (const q of this.queues) {
      const c = q?.counters();
      fastDecided += c?.fastDecided ?? 0;
      fastByFlow += c?.fastByFlow ?? 0;
      overruns += c?.overruns ?? 0;
    }
    return {
      packets: this.packets,
      malformed: this.malformed,
      overruns,
      fallbackVerdicts: this.pending.fallbackCount,
      pending: this.pending.size,
      badFrames: this.link?.badFrames ?? 0,
      cacheHits: this.verdictCache.hits + fastDecided,
      fastAnswered: fastDecided,
      kernelDecided: this.kernel?.decided ?? 0,
      kernelReportsLost: this.kernel?.lost ?? 0,
      floodDrops: this.floodDrops,
      lookupRetries: this.lookupRetries,
      fastByFlow,
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

  /**
   * Parses each packet of a batch (the batch's buffer is reused: nothing is kept from it) and
   * queues it under its uid; a uid with too many packets in flight gets its new ones dropped,
   * never accepted. Then identifies what is waiting, in turn.
   */
  private onBatch(queueIndex: number, packets: readonly QueuedPacket[], count: number): void {
    const connected = this.link?.serviceConnected ?? false;
    for (let i = 0; i < count; i++) {
      const packet = packets[i]!;
      this.packets++;
      const id = this.nextRecordId();
      this.kernelIds.set(id, packet.packetId + QUEUE_ID_SPAN * queueIndex);
      let parsed: Unidentified | null;
      try {
        parsed = this.parse(packet, id);
      } catch (err) {
        // A bug in a stage must not strand the packet: treat it as malformed.
        this.log.error({ err, packetId: packet.packetId }, 'failed to parse a packet');
        parsed = null;
      }
      if (parsed === null) {
        this.malformed++;
        this.applyVerdict(id, this.options.malformedAccept, undefined, false);
      } else if (!connected) {
        this.pending.fallbackNow(id, 'no_service');
      } else if (!this.waiting.push(packet.uid, parsed)) {
        this.floodDrops++;
        this.floodDropsSinceSummary++;
        this.applyVerdict(id, false, undefined, false);
      }
    }
    this.identifyWaiting();
  }

  /**
   * Identifies waiting packets, one uid's oldest after another's, and sends them to the
   * service (or answers them from the verdict cache); after IDENTIFY_SLICE_MS it lets the
   * event loop run (verdicts, new batches) and goes on at its next turn.
   */
  private identifyWaiting(): void {
    const sliceEnd = performance.now() + IDENTIFY_SLICE_MS;
    const records: PacketRecord[] = [];
    const reports: PacketRecord[] = [];
    const connected = this.link?.serviceConnected ?? false;
    const cheap = (uid: number): boolean => this.lookupBudget.available(uid) >= CHEAP_UID_MS;
    for (let next = this.waiting.next(cheap); next !== null; next = this.waiting.next(cheap)) {
      try {
        this.dispatch(next.uid, next.item, connected, records, reports);
      } catch (err) {
        const id = next.item.record.packetId;
        this.log.error({ err, packetId: id }, 'failed to identify a packet');
        if (!this.pending.has(id)) this.waiting.release(next.uid); // else the fallback releases it
        this.pending.fallbackNow(id, 'no_service');
      }
      if (this.waiting.size > 0 && performance.now() >= sliceEnd) {
        this.continueLater();
        break;
      }
    }
    if (records.length > 0) this.sendRecords(records);
    if (reports.length > 0) this.sendReports(reports);
  }

  private continueLater(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.identifyWaiting();
    });
  }

  /** One packet: identified within its budget, then answered from the cache or held for the service. */
  private dispatch(uid: number, waiting: Unidentified, connected: boolean, records: PacketRecord[], reports: PacketRecord[]): void {
    const record = waiting.record;
    if (!connected) {
      this.waiting.release(uid);
      this.pending.fallbackNow(record.packetId, 'no_service');
      return;
    }
    if (!waiting.fragment) {
      const budgetMs = Math.min(PACKET_LOOKUP_BUDGET_MS, this.lookupBudget.available(uid));
      const found = this.identify(record, waiting.icmpEchoId, budgetMs);
      this.lookupBudget.spend(uid, found.lookupMicros / 1000);
      waiting.lookupMicros += found.lookupMicros;
      // Out of time is not "no one": the helper may have been preempted on a busy machine, or
      // the process has a large fd table. The search goes on after everything else waiting,
      // while the uid has a whole lookup's time left (its own share: a flood only waits longer).
      if (found.attribution === 'lookup_timeout' && ++waiting.lookups < MAX_LOOKUPS_PER_PACKET && this.lookupBudget.available(uid) >= PACKET_LOOKUP_BUDGET_MS) {
        this.lookupRetries++;
        this.waiting.retry(uid, waiting);
        return;
      }
      found.lookupMicros = waiting.lookupMicros;
      this.fill(record, found);
    }
    // Only TCP and UDP packets are credited to a process (ProcessResolver), so only they get a
    // key; and only a process whose exe path was proven (identity 'host'): a path another
    // user namespace or file borrowed must neither use nor fill the cache (nor so the fast path).
    const owner = record.process;
    const cacheKey = owner?.exe && owner.identity === 'host' ? VerdictCache.key(owner.exe, record.protocol, record.dstPort) : null;
    const cached = cacheKey === null ? null : this.verdictCache.lookup(cacheKey);
    if (cached) {
      // The service's earlier answer for this program and port: apply it now, report it after.
      const fastPath = this.fastPaths[queueIndexOf(this.kernelIds.get(record.packetId) ?? 0)] ?? null;
      this.applyVerdict(record.packetId, cached.accept, cached.mark, true);
      record.helperVerdict = cached.accept ? 'accept' : 'drop';
      reports.push(record);
      if (fastPath !== null) this.armFastPath(fastPath, record, cached);
      this.waiting.release(uid); // last: if anything above threw, the caller releases it instead
    } else {
      this.pending.hold(record.packetId, cacheKey, uid, owner?.identity === 'host');
      records.push(record);
    }
  }

  /**
   * The process of a packet answered from the cache gets the same answer in the addon next
   * time. Armed with the packet's uid (NFQA_UID): the addon answers only when the socket's
   * owner, as sock_diag reports it, is that uid too.
   */
  private armFastPath(fastPath: FastPath, record: PacketRecord, cached: CachedVerdict): void {
    const process = record.process;
    if (process === null || record.uid < 0) return;
    if (record.attribution !== 'sock_diag' && record.attribution !== 'cache') return;
    if (!fastPath.wantsArming(process.pid, record.protocol, record.dstPort)) return;
    fastPath.arm(process, {
      uid: record.uid,
      fds: this.resolver.index.likelySocketFds(process.pid, record.socketInode, fastPath.fdsPerProcess),
      protocol: record.protocol,
      port: record.dstPort,
      accept: cached.accept,
      mark: cached.mark,
      ttlMs: this.verdictCache.remainingMs(cached),
    });
  }

  /** Parses one packet (fast path reports: with what the addon found); null when it cannot be parsed. */
  private toRecord(packet: QueuedPacket, id: number, known: Resolution): PacketRecord | null {
    const parsed = this.parse(packet, id);
    if (parsed === null) return null;
    this.fill(parsed.record, known);
    return parsed.record;
  }

  /** The packet as a record with no owner yet; null when it cannot be parsed. */
  private parse(packet: QueuedPacket, id: number): Unidentified | null {
    const p = this.parsed;
    const error = parsePacket(packet.payload, p);
    const familyMatches = (packet.hwProtocol === ETH_P_IP && p.family === 4) || (packet.hwProtocol === ETH_P_IPV6 && p.family === 6);
    if (error !== null || !familyMatches) {
      this.log.debug({ packetId: packet.packetId, error: error ?? 'family mismatch' }, 'malformed packet');
      return null;
    }
    const dst = p.dstAddr.slice();
    const record: PacketRecord = {
      packetId: id,
      family: p.family,
      protocol: p.protocol,
      srcAddr: p.srcAddr.slice(),
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
      process: null,
      socketInode: 0,
      attribution: 'unsupported',
      lookupMicros: 0,
      payloadLength: packet.origLen,
    };
    if (this.dns !== null) {
      // A name from the system's resolver, else one from any other (shown, never matched).
      const host = this.dns.names.lookup(dst);
      if (host !== undefined) record.host = host;
      else {
        const unverified = this.dns.unverified.lookup(dst);
        if (unverified !== undefined) record.unverifiedHost = unverified;
      }
    }
    return { record, icmpEchoId: p.icmpEchoId, fragment: p.isFragment, lookups: 0, lookupMicros: 0 };
  }

  private fill(record: PacketRecord, found: Resolution): void {
    record.process = found.process;
    record.socketInode = found.socketInode;
    record.attribution = found.attribution;
    record.lookupMicros = Math.round(found.lookupMicros);
    if (this.log.isLevelEnabled('debug')) {
      this.log.debug(
        {
          packetId: record.packetId,
          dst: `${formatAddress(record.dstAddr)}:${record.dstPort}`,
          proto: record.protocol,
          exe: record.process?.exe,
          how: record.attribution,
        },
        'packet',
      );
    }
  }

  /** Socket -> process for TCP/UDP by 5-tuple, for ICMP by echo id or the one raw socket. */
  private identify(r: PacketRecord, icmpEchoId: number, budgetMs: number): Resolution {
    if ((r.family === 4 && r.protocol === 1) || (r.family === 6 && r.protocol === 58)) {
      return this.resolver.resolveIcmp({ family: r.family, src: r.srcAddr, dst: r.dstAddr, echoId: icmpEchoId, uid: r.uid }, budgetMs);
    }
    return this.resolver.resolve(r.family, r.protocol, r.srcAddr, r.srcPort, r.dstAddr, r.dstPort, r.uid, budgetMs);
  }

  private onVerdicts(verdicts: Verdict[]): void {
    for (const v of verdicts) this.pending.resolve(v.packetId, v.action, v.mark, v.holdMs, v.cacheMs);
  }

  /** Records to the service; their TCP flows may be ended later at its request. */
  private sendRecords(records: PacketRecord[]): void {
    for (const r of records) this.sawFlow(r);
    this.link?.sendRecords(records);
  }

  private sendReports(reports: PacketRecord[]): void {
    for (const r of reports) if (r.helperVerdict === 'accept') this.sawFlow(r);
    this.link?.sendReports(reports);
  }

  private sawFlow(r: PacketRecord): void {
    if (r.protocol === 6 && !r.malformed) {
      this.live.saw(r);
    }
  }

  /** A record id of its own per packet, never 0 (uint32 on the wire, wrapping). */
  private nextRecordId(): number {
    this.lastRecordId = this.lastRecordId >= 0xffffffff ? 1 : this.lastRecordId + 1;
    return this.lastRecordId;
  }

  /** Applies the verdict to the packet a record id stands for; the id is used up. */
  private applyVerdict(packetId: number, accept: boolean, mark: number | undefined, final: boolean): void {
    const where = this.kernelIds.get(packetId);
    if (where === undefined) {
      this.log.warn({ packetId }, 'verdict for a packet not waiting');
      return;
    }
    this.kernelIds.delete(packetId);
    const queue = this.queues[queueIndexOf(where)];
    if (!queue) {
      this.log.warn({ packetId }, 'verdict not applied: its queue is closed');
      return;
    }
    // A final denial is rejected through our chain's rule, when we installed one.
    const rc =
      !accept && final && this.rejectMark !== null ? queue.reject(where % QUEUE_ID_SPAN, this.rejectMark) : queue.verdict(where % QUEUE_ID_SPAN, accept, mark);
    if (rc !== 0) this.log.warn({ packetId, rc }, 'verdict not applied');
  }

  private onFallback(packetId: number, reason: FallbackReason): void {
    this.fallbacksByReason.set(reason, (this.fallbacksByReason.get(reason) ?? 0) + 1);
    this.log.debug({ packetId, reason }, 'fallback verdict');
  }

  private logFallbackSummary(): void {
    if (this.floodDropsSinceSummary > 0) {
      this.log.warn({ dropped: this.floodDropsSinceSummary, perUid: MAX_IN_FLIGHT_PER_UID }, 'new connections dropped: their user had too many waiting');
      this.floodDropsSinceSummary = 0;
    }
    if (this.fallbacksByReason.size === 0) return;
    const byReason = Object.fromEntries(this.fallbacksByReason);
    this.fallbacksByReason.clear();
    this.log.info({ byReason, verdict: this.options.fallbackAccept ? 'accept' : 'drop' }, 'fallback verdicts applied');
  }
}

/** Which queue (MAIN, SYSTEM) a kernelIds value names. */
function queueIndexOf(where: number): number {
  return Math.floor(where / QUEUE_ID_SPAN);
}
