// The live connection feed behind `bastion monitor` (an extension of gui-protocol.md): a client
// sends {"type":"subscribe","feed":"decisions"} and then receives one `decision` message per
// decided connection. A subscriber that cannot keep up misses events (and is told how many in
// the next one) instead of being dropped as a client that stopped reading.
import type { DecisionEvent } from '../decider.js';
import type { DecisionMessage } from '../../common/decisionMessage.js';
import type { GuiClient } from './guiServer.js';

export type { DecisionMessage };

/** Output a subscriber may have unread before events are skipped for it. */
export const FEED_BACKLOG_LIMIT = 256 * 1024;

export class DecisionFeed {
  private readonly subscribers = new Map<GuiClient, { missed: number }>();

  constructor(private readonly backlogLimit = FEED_BACKLOG_LIMIT) {}

  get size(): number {
    return this.subscribers.size;
  }

  subscribe(client: GuiClient): void {
    if (!this.subscribers.has(client)) this.subscribers.set(client, { missed: 0 });
  }

  unsubscribe(client: GuiClient): void {
    this.subscribers.delete(client);
  }

  publish(event: DecisionEvent): void {
    if (this.subscribers.size === 0) return; // costs nothing per packet while nobody watches
    let message: DecisionMessage | null = null;
    for (const [client, state] of this.subscribers) {
      if (client.backlogBytes > this.backlogLimit) {
        state.missed++;
        continue;
      }
      message ??= toMessage(event);
      client.send({ ...message, missed: state.missed });
      state.missed = 0;
    }
  }
}

function toMessage(e: DecisionEvent): DecisionMessage {
  const message: DecisionMessage = {
    type: 'decision',
    time: new Date(e.at).toISOString(),
    pid: e.pid,
    app_name: e.comm ?? 'unknown',
    app_path: e.exe ?? 'unknown',
    dest_ip: e.destIp,
    dest_port: e.port,
    protocol: e.protocol,
    allow: e.allow,
    reason: e.reason,
    rule_key: e.ruleKey,
    connections: e.connections,
    missed: 0,
  };
  if (e.host !== undefined) message.host = e.host;
  else if (e.unverifiedHost !== undefined) message.unverified_host = e.unverifiedHost;
  return message;
}
