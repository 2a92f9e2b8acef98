// The ExtendedFacts the service gives extended rules: scripts from argv, hashes of executables,
// and the host/IP lists. Each is computed only when a rule needs it for a connection.
import type { Connection } from '../connection.js';
import type { ExtendedFacts } from './extendedRuleSet.js';
import { ExeHasher, type HashResult } from './exeHasher.js';
import { scriptOf } from './scriptOf.js';

export interface ListLookup {
  contains(name: string, destAddr: Uint8Array, host: string | undefined): boolean;
}

export class ProcessFacts implements ExtendedFacts {
  readonly hasher = new ExeHasher();

  constructor(private readonly lists: () => ListLookup | null = () => null) {}

  script(conn: Connection): string | null {
    const p = conn.record.process;
    // Only a believed executable is a known interpreter; its argv is as the process left it.
    if (conn.exe === null || p === null) return null;
    return scriptOf(conn.exe, p.cmdline, p.cwd);
  }

  sha256(conn: Connection): HashResult {
    if (conn.exe === null) return { ok: false, why: 'the program has no believed path' };
    return this.hasher.hash(conn.exe, conn.record.process?.exeFile);
  }

  inList(name: string, conn: Connection): boolean {
    return this.lists()?.contains(name, conn.record.dstAddr, conn.host) ?? false;
  }
}
