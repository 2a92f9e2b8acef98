// Fakes for prompt tests: a clock whose time moves only when told, GUI clients that record what
// they were sent, and connections as the helper would report them.
import pino from 'pino';
import type { Logger } from '../../common/log.js';
import type { ServiceMessage } from '../../common/guiProtocol.js';
import type { ExeIdentity, PacketRecord } from '../../common/types.js';
import type { AuthorizationResult, Authorizer } from '../../service/authorizer.js';
import { DEFAULT_CONFIG, type BastionConfig } from '../../service/config.js';
import { toConnection, type Connection } from '../../service/connection.js';
import type { GuiClient, PeerCredentials } from '../../service/gui/guiServer.js';
import type { PromptClock } from '../../service/prompts/promptBroker.js';

export const silentLog: Logger = pino({ level: 'silent' });

export class FakeClock implements PromptClock {
  t = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  private nextId = 1;

  now(): number {
    return this.t;
  }

  wallMs(): number {
    return 1_700_000_000_000 + this.t;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  get pendingTimers(): number {
    return this.timers.size;
  }

  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const target = this.t + ms;
    for (;;) {
      let due: [number, { at: number; fn: () => void }] | null = null;
      for (const entry of this.timers) if (entry[1].at <= target && (!due || entry[1].at < due[1].at)) due = entry;
      if (!due) break;
      this.timers.delete(due[0]);
      this.t = due[1].at;
      due[1].fn();
    }
    this.t = target;
  }
}

let clientIds = 1;

export class RecordingClient implements GuiClient {
  readonly id = clientIds++;
  readonly sent: Record<string, unknown>[] = [];
  backlogBytes = 0;
  closed = false;

  constructor(readonly peer: PeerCredentials | null = { pid: 4242, uid: 0, gid: 0, startTime: 1 }) {}

  send(message: ServiceMessage): void {
    // Tests read the fields by name, whatever the type.
    this.sent.push(message as unknown as Record<string, unknown>);
  }

  close(): void {
    this.closed = true;
  }

  ofType(type: string): Record<string, unknown>[] {
    return this.sent.filter((m) => m['type'] === type);
  }
}

export class FixedAuthorizer implements Authorizer {
  calls = 0;
  constructor(private readonly result: AuthorizationResult) {}
  async authorize(): Promise<AuthorizationResult> {
    this.calls++;
    return this.result;
  }
}

export function config(overrides: Partial<BastionConfig> = {}): BastionConfig {
  return { ...DEFAULT_CONFIG, mode: 'enforcement', ...overrides };
}

export interface ConnSpec {
  /** The socket's (and process's) uid; default 1000. */
  uid?: number;
  exe?: string | null;
  comm?: string | null;
  port?: number;
  srcPort?: number;
  dst?: [number, number, number, number];
  protocol?: 6 | 17 | 1;
  pid?: number;
  /** What the helper proved about exe; default 'host'. */
  identity?: ExeIdentity;
  otherMountNs?: boolean;
}

let packetIds = 1;

/** A new outbound IPv4 connection from a process (exe null = no process found). */
export function connection(spec: ConnSpec = {}): Connection {
  const exe = spec.exe === undefined ? '/usr/bin/curl' : spec.exe;
  const comm = spec.comm === undefined ? (exe ? exe.slice(exe.lastIndexOf('/') + 1) : null) : spec.comm;
  const record: PacketRecord = {
    packetId: packetIds++,
    family: 4,
    protocol: spec.protocol ?? 6,
    srcAddr: Uint8Array.of(192, 0, 2, 10),
    dstAddr: Uint8Array.from(spec.dst ?? [198, 51, 100, 7]),
    srcPort: spec.srcPort ?? 40000 + (packetIds % 20000),
    dstPort: spec.port ?? 443,
    icmpType: 0,
    icmpCode: 0,
    inIfindex: 0,
    outIfindex: 2,
    uid: spec.uid ?? 1000,
    gid: 1000,
    malformed: false,
    process:
      exe || comm
        ? {
            pid: spec.pid ?? 3131,
            uid: spec.uid ?? 1000,
            exe: exe ?? '',
            exeDeleted: false,
            comm: comm ?? '',
            cmdline: [],
            ppid: 1,
            parentExe: '',
            startTime: 1,
            identity: spec.identity ?? 'host',
            otherMountNs: spec.otherMountNs ?? false,
          }
        : null,
    socketInode: 77,
    attribution: exe || comm ? 'sock_diag' : 'not_found',
    lookupMicros: 60,
    payloadLength: 60,
  };
  return toConnection(record);
}
