// Builds the `connection_request` message (common/connectionRequestMessage.ts) for a connection.
import type { ConnectionRequestMessage } from '../../common/connectionRequestMessage.js';
import type { PromptDetails } from '../../common/guiProtocol.js';
import { displayPath, type Connection } from '../connection.js';

export type { ConnectionRequestMessage };

export function connectionRequest(requestId: string, conn: Connection, learningMode: boolean): ConnectionRequestMessage {
  return {
    type: 'connection_request',
    request_id: requestId,
    // "unknown" when no process was found: the tray shows it and sends it back in add_rule.
    // With a known host name the old daemon's display form "<comm> (<host>)", which add_rule
    // strips again (gui-protocol.md); a name from a resolver that is not the system's says so:
    // "<comm> (<host>, unverified)".
    app_name: appName(conn),
    app_path: displayPath(conn) ?? 'unknown',
    app_category: 'unknown', // what the old daemon always sent
    dest_ip: conn.destIp,
    dest_port: conn.port,
    protocol: conn.protocol,
    learning_mode: learningMode,
  };
}

/** Words of argv a prompt shows (an interpreter's script is among the first), and their length. */
const DETAIL_ARGS = 4;
const DETAIL_ARG_CHARS = 512;

/**
 * Who asks, for clients that said hello with `details: true` (docs/gui-extensions.md): the Python
 * tray never does, so its `connection_request` keeps exactly the fields it reads.
 */
export function promptDetails(conn: Connection): PromptDetails {
  const p = conn.record.process;
  const details: PromptDetails = {
    pid: p?.pid ?? -1,
    uid: conn.uid,
    args: (p?.cmdline ?? []).slice(0, DETAIL_ARGS).map((a) => a.slice(0, DETAIL_ARG_CHARS)),
  };
  if (conn.host) details.host = conn.host;
  return details;
}

/** What the tray shows as the program: comm, and the destination's name when one is known. */
export function appName(conn: Connection): string {
  const comm = conn.comm || 'unknown';
  if (conn.host) return `${comm} (${conn.host})`;
  if (conn.unverifiedHost) return `${comm} (${conn.unverifiedHost}, ${UNVERIFIED})`;
  return comm;
}

/** The word prompts and `bastion monitor` put beside a name any user could have forged. */
export const UNVERIFIED = 'unverified';

/** Request ids `<comm>-<hex time in µs>`, strictly increasing so two prompts never share one. */
export class RequestIds {
  private last = 0;

  constructor(private readonly wallMs: () => number = Date.now) {}

  next(comm: string | null): string {
    const stamp = Math.max(Math.floor(this.wallMs() * 1000), this.last + 1);
    this.last = stamp;
    return `${comm || 'unknown'}-${stamp.toString(16)}`;
  }
}
