// Exact socket lookup by 5-tuple through the addon's NETLINK_SOCK_DIAG client.
// Measured: ~60 µs per lookup from JS; a full dump costs 8.5 ms (docs/design.md).
import type { SocketOwner } from '../../common/types.js';
import { loadNative, type NativeAddon } from '../../common/native.js';

const AF_INET = 2;
const AF_INET6 = 10;
const ENOENT = 2;

export type SocketLookupResult = SocketOwner | null | 'unavailable';

export class SockDiag {
  /** inode, uid, state, caller pid (0: not known) */
  private readonly out = new Uint32Array(4);
  private readonly mappedSrc = new Uint8Array(16);
  private readonly mappedDst = new Uint8Array(16);
  private failures = 0;

  private constructor(
    private readonly native: NativeAddon,
    private readonly handle: object,
  ) {
    // ::ffff:0:0/96 prefix, for IPv4 packets sent from dual-stack IPv6 sockets.
    this.mappedSrc[10] = this.mappedSrc[11] = 0xff;
    this.mappedDst[10] = this.mappedDst[11] = 0xff;
  }

  /** Returns null when the kernel has no sock_diag (then callers fall back to /proc/net). */
  static open(): SockDiag | null {
    try {
      const native = loadNative();
      return new SockDiag(native, native.sockDiagOpen());
    } catch {
      return null;
    }
  }

  /** Errors other than "no such socket" so far (timeouts, EPERM...). */
  get errorCount(): number {
    return this.failures;
  }

  lookup(family: 4 | 6, protocol: number, src: Uint8Array, srcPort: number, dst: Uint8Array, dstPort: number): SocketLookupResult {
    const rc = this.query(family === 4 ? AF_INET : AF_INET6, protocol, src, srcPort, dst, dstPort);
    if (rc === 0) return this.owner();
    if (rc !== -ENOENT) return this.failed();
    if (family === 4) {
      // An AF_INET6 socket talking to an IPv4 peer sends IPv4 packets: look for it as v4-mapped.
      this.mappedSrc.set(src.subarray(0, 4), 12);
      this.mappedDst.set(dst.subarray(0, 4), 12);
      const rc6 = this.query(AF_INET6, protocol, this.mappedSrc, srcPort, this.mappedDst, dstPort);
      if (rc6 === 0) return this.owner();
      if (rc6 !== -ENOENT) return this.failed();
    }
    return null;
  }

  private query(af: number, protocol: number, src: Uint8Array, srcPort: number, dst: Uint8Array, dstPort: number): number {
    return this.native.sockDiagLookup(this.handle, af, protocol, src, srcPort, dst, dstPort, this.out);
  }

  private owner(): SocketOwner {
    return { inode: this.out[0]!, uid: this.out[1]!, caller: this.out[3]! };
  }

  private failed(): 'unavailable' {
    this.failures++;
    return 'unavailable';
  }
}
