// The `connection_request` message (gui-protocol.md, "Service -> client messages"): field
// names, JSON types and order exactly as the Python tray reads them.
import type { Connection } from '../connection.js';

export type ConnectionRequestMessage = {
  type: 'connection_request';
  request_id: string;
  app_name: string;
  app_path: string;
  app_category: string;
  dest_ip: string;
  dest_port: number;
  protocol: string;
  learning_mode: boolean;
};

export function connectionRequest(requestId: string, conn: Connection, learningMode: boolean): ConnectionRequestMessage {
  return {
    type: 'connection_request',
    request_id: requestId,
    // "unknown" when no process was found: the tray shows it and sends it back in add_rule.
    app_name: conn.comm || 'unknown',
    app_path: conn.exe || 'unknown',
    app_category: 'unknown', // what the old daemon always sent
    dest_ip: conn.destIp,
    dest_port: conn.port,
    protocol: conn.protocol,
    learning_mode: learningMode,
  };
}

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
