// The C tools of the harness, compiled once per run into a temporary directory.
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', 'c');

export interface Tools {
  /** connect tcp|udp|tcp-eperm HOST PORT COUNT [PARALLEL]: latencies on stdout, summary JSON on stderr. */
  connect: string;
  /** servers PORT: TCP accept-and-close plus UDP echo. */
  servers: string;
  /** nfq_accept QUEUE: the accept-all C queue reader. */
  nfqAccept: string;
}

export function buildTools(dir: string): Tools {
  const cc = (out: string, src: string, ...libs: string[]): string => {
    const path = join(dir, out);
    execFileSync('cc', ['-O2', '-Wall', '-o', path, join(SRC, src), ...libs], { stdio: 'inherit' });
    return path;
  };
  return {
    connect: cc('bench-client', 'connect.c', '-lpthread'),
    servers: cc('bench-servers', 'servers.c'),
    nfqAccept: cc('nfq-accept', 'nfq_accept.c', '-lnetfilter_queue'),
  };
}
