// Who may become the helper's peer on the bus: only processes of the service's user. The
// socket's directory and group already keep others out; this check holds even if someone
// joins that group by mistake. ZeroMQ asks a ZAP handler (rfc.zeromq.org/spec/27) about every
// new connection of a socket that has a ZAP domain, before that connection may carry a message;
// for an ipc:// connection libzmq puts the peer's SO_PEERCRED in the request's address,
// "<host>:<uid>:<gid>:<pid>" (stream_engine_base.cpp), read from the kernel, not the peer.
import { Router } from 'zeromq';
import type { Logger } from '../common/log.js';

/** The fixed address of the ZAP handler in a ZeroMQ context (ZAP spec). */
const ZAP_ENDPOINT = 'inproc://zeromq.zap.01';
export const BUS_ZAP_DOMAIN = 'bastion-bus';
/** A refused peer retrying in a loop is logged at most this often (the count is kept). */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

export interface PeerIdentity {
  uid: number;
  gid: number;
  pid: number;
}

/** The credentials libzmq appends to an ipc peer's address; null if they are not there. */
export function parseZapPeerAddress(address: string): PeerIdentity | null {
  const m = /:(\d+):(\d+):(\d+)$/.exec(address);
  if (!m) return null;
  return { uid: Number(m[1]), gid: Number(m[2]), pid: Number(m[3]) };
}

export class BusGatekeeper {
  private readonly router = new Router({ linger: 0 });
  private closed = false;
  private lastRefusalLog = -Infinity;
  refused = 0;

  private constructor(
    private readonly serviceUid: number,
    private readonly log: Logger,
  ) {}

  /** Starts answering ZAP requests; must run before the bus socket binds. */
  static async start(serviceUid: number, log: Logger): Promise<BusGatekeeper> {
    const gate = new BusGatekeeper(serviceUid, log);
    await gate.router.bind(ZAP_ENDPOINT);
    void gate.serve().catch((err: Error) => log.error({ err }, 'bus peer check failed: no new service can connect'));
    return gate;
  }

  close(): void {
    this.closed = true;
    this.router.close();
  }

  private async serve(): Promise<void> {
    try {
      for await (const frames of this.router) {
        // [routing id, empty, version, request id, domain, address, identity, mechanism, ...]
        const [routingId, empty, version, requestId, , address] = frames;
        if (!routingId || !empty || !requestId || String(version) !== '1.0') continue;
        const peer = parseZapPeerAddress(String(address ?? ''));
        const ok = peer !== null && peer.uid === this.serviceUid;
        if (ok) this.log.info({ peer }, 'bus peer accepted (the service user)');
        else this.noteRefusal(peer);
        await this.router.send([routingId, empty, '1.0', requestId, ok ? '200' : '400', ok ? 'OK' : 'not the service user', '', '']);
      }
    } catch (err) {
      if (!this.closed) throw err;
    }
  }

  private noteRefusal(peer: PeerIdentity | null): void {
    this.refused++;
    const now = performance.now();
    if (now - this.lastRefusalLog < REFUSAL_LOG_INTERVAL_MS) return;
    this.lastRefusalLog = now;
    this.log.warn(
      { peer, serviceUid: this.serviceUid, refused: this.refused },
      "refused a bus peer that is not the service user: something else tried to take the service's place",
    );
  }
}
