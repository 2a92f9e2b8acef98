// The `decision` message of the live feed (docs/gui-extensions.md): written by the service's
// DecisionFeed, read by `bastion monitor`. One definition for both ends.
export type DecisionMessage = {
  type: 'decision';
  time: string;
  pid: number;
  app_name: string;
  app_path: string;
  dest_ip: string;
  dest_port: number;
  protocol: string;
  allow: boolean;
  /** What decided: rule, session, prompt, timeout, default, learning, localhost, lan, system-service, dns. */
  reason: string;
  rule_key: string | null;
  /** The destination's host name from snooped DNS answers; absent when unknown (docs/host-names.md). */
  host?: string;
  /**
   * When host is absent: the name a DNS answer from a resolver that is not the system's gave the
   * destination. Anyone may have forged it; it matched no rule.
   */
  unverified_host?: string;
  /** Connections this decision stands for: the same program, destination and verdict a few ms apart. */
  connections: number;
  /** Events this subscriber missed just before this one because it read too slowly. */
  missed: number;
};
