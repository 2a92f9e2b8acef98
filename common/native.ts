// Loads the project's N-API addon (native/): NFQUEUE, sock_diag and SO_PEERCRED.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface QueueOpenOptions {
  queueNum: number;
  copyRange: number;
  maxLen: number;
  rcvbufBytes: number;
  failOpen: boolean;
  batchMax: number;
  /** Verdict for packets of a batch whose JS handler threw: 1 accept, 0 drop. */
  exceptionVerdict: 0 | 1;
}

export interface QueueCountersRaw {
  packets: number;
  overruns: number;
  verdictErrors: number;
  badMessages: number;
}

export interface NativeAddon {
  slotHeaderSize: number;
  queueOpen(
    options: QueueOpenOptions,
    onBatch: (count: number) => void,
    onError: (err: Error) => void,
  ): { handle: object; slots: ArrayBuffer; slotSize: number; batchMax: number };
  queueVerdict(handle: object, packetId: number, accept: boolean, mark?: number): number;
  queueCounters(handle: object): QueueCountersRaw;
  queueClose(handle: object): void;
  sockDiagOpen(): object;
  sockDiagLookup(
    handle: object,
    family: number,
    protocol: number,
    src: Uint8Array,
    srcPort: number,
    dst: Uint8Array,
    dstPort: number,
    out: Uint32Array,
  ): number;
  peerCred(fd: number): { pid: number; uid: number; gid: number };
  /** sd_notify(3): one datagram to $NOTIFY_SOCKET ("/path" or "@abstract"); 0 or -errno. */
  sdNotify(socketPath: string, state: string): number;
}

const here = dirname(fileURLToPath(import.meta.url));

/** Where the built addon may be: the source tree, the compiled tree, or an installed path. */
function addonCandidates(): string[] {
  const fromEnv = process.env['BASTION_NATIVE_ADDON'];
  const rel = join('native', 'build', 'Release', 'bastion_native.node');
  return [
    ...(fromEnv ? [fromEnv] : []),
    join(here, '..', rel), // common/ in the source tree
    join(here, '..', '..', rel), // dist/common/ after tsc
  ];
}

let cached: NativeAddon | null = null;

export function loadNative(): NativeAddon {
  if (cached) return cached;
  const path = addonCandidates().find((p) => existsSync(p));
  if (!path) {
    throw new Error(
      `the native addon is not built (looked in ${addonCandidates().join(', ')}): run "npm run build:native"`,
    );
  }
  cached = createRequire(import.meta.url)(path) as NativeAddon;
  return cached;
}
