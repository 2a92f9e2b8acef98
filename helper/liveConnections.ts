// Ends open connections when the service asks (EndConnections: the rule that allowed them was
// deleted or narrowed, a timed answer ran out). The service decides which; the helper checks
// each one: only TCP flows it queued or reported itself (so outbound ones, that went through
// our chain) are ended, never a socket the service merely names (an inbound SSH session, the
// helper's own bus). Ended through sock_diag's SOCK_DESTROY: the program's socket fails with
// ECONNABORTED at once and the peer gets a reset, whether or not the program sends again.
import { formatAddress } from '../common/address.js';
import type { Logger } from '../common/log.js';
import { IPPROTO } from '../common/types.js';
import type { Flow } from '../common/wire.js';

/** TCP flows remembered at most; the oldest are forgotten first (then never ended by a request). */
const MAX_SEEN = 65536;
const ENOENT = 2;

export interface SocketDestroyer {
  destroy(family: 4 | 6, protocol: number, src: Uint8Array, srcPort: number, dst: Uint8Array, dstPort: number): number;
}

export interface EndCounters {
  ended: number;
  /** Asked for, but not a flow this helper saw (refused). */
  unknown: number;
  /** Seen, but its socket was already gone. */
  gone: number;
  failed: number;
}

export class LiveConnections {
  /** Flow key -> the flow, in the order first seen. */
  private readonly seen = new Map<string, Flow>();
  readonly counters: EndCounters = { ended: 0, unknown: 0, gone: 0, failed: 0 };

  constructor(
    private readonly sockets: SocketDestroyer | null,
    private readonly log: Logger,
  ) {}

  /** A new TCP connection's first packet, as sent to the service: it may be ended later. */
  saw(flow: Flow): void {
    if (flow.protocol !== IPPROTO.TCP) return;
    const key = flowKey(flow);
    if (this.seen.has(key)) return;
    this.seen.set(key, { ...flow, srcAddr: flow.srcAddr.slice(), dstAddr: flow.dstAddr.slice() });
    if (this.seen.size > MAX_SEEN) this.seen.delete(this.seen.keys().next().value!);
  }

  /** Ends each flow asked for that this helper saw; the rest are refused and counted. */
  end(flows: readonly Flow[]): void {
    const before = { ...this.counters };
    for (const asked of flows) {
      const key = flowKey(asked);
      const flow = this.seen.get(key);
      if (flow === undefined) {
        this.counters.unknown++;
        continue;
      }
      this.seen.delete(key);
      if (this.sockets === null) {
        this.counters.failed++;
        continue;
      }
      const rc = this.sockets.destroy(flow.family, flow.protocol, flow.srcAddr, flow.srcPort, flow.dstAddr, flow.dstPort);
      if (rc === 0) this.counters.ended++;
      else if (rc === -ENOENT) this.counters.gone++;
      else {
        this.counters.failed++;
        this.log.warn({ rc, dst: `${formatAddress(flow.dstAddr)}:${flow.dstPort}` }, 'an open connection could not be ended');
      }
    }
    const delta = (k: keyof EndCounters): number => this.counters[k] - before[k];
    this.log.info(
      { asked: flows.length, ended: delta('ended'), gone: delta('gone'), refused: delta('unknown'), failed: delta('failed') },
      "open connections ended at the service's request",
    );
  }
}

function flowKey(f: Flow): string {
  return `${f.family}|${f.protocol}|${formatAddress(f.srcAddr)}|${f.srcPort}|${formatAddress(f.dstAddr)}|${f.dstPort}`;
}
