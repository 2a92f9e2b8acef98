// The desktop agent's panel API: what cli/agent/panelServer.ts serves and ui/panel/api.ts reads.
// One definition for both ends, so the compiler holds each to the other. Types only: the panel's
// bundle takes nothing from here at run time.
import type { DecisionMessage } from './decisionMessage.js';
import type { HistoryRow } from './historyRow.js';

/** What a prompt says about its connection, ready to show (the agent's notification text too). */
export interface PromptFacts {
  /** Shown as the program: the desktop entry's name, else the comm. Made visible, not markup-escaped. */
  program: string;
  icon: string | null;
  path: string;
  script: string | null;
  user: string | null;
  /** host:port (or the address) and protocol. */
  destination: string;
  protocol: string;
  /** The host name came from a resolver other than the system's: anyone may have forged it. */
  unverified: boolean;
}

/** A prompt waiting for an answer. */
export interface PanelPrompt extends PromptFacts {
  request_id: string;
  learning_mode: boolean;
  received_at: number;
  dest_port: number;
}

export interface PanelStats {
  total_connections: number;
  allowed_connections: number;
  blocked_connections: number;
  learning_mode: boolean;
}

export interface PanelNotice {
  title: string;
  message: string;
  level: string;
}

/** GET /api/events: one server-sent event, what happened since the last. */
export interface PanelBatch {
  opened: PanelPrompt[];
  /** request_ids of prompts answered or gone. */
  closed: string[];
  stats?: PanelStats;
  decisions: DecisionMessage[];
  /** Decisions left out of this batch (too many), by connections. */
  skipped: number;
  notices: PanelNotice[];
  connected?: boolean;
}

/** GET /api/state. */
export interface PanelState {
  connected: boolean;
  notifications: 'on' | 'unavailable';
  timeout_seconds: number;
  stats: PanelStats | null;
  prompts: PanelPrompt[];
}

export interface ChartSeries {
  label: string;
  allow: boolean;
  values: number[];
}

/** GET /api/history. */
export interface PanelHistoryAnswer {
  rows: HistoryRow[];
  more: boolean;
  chart: { times: number[]; series: ChartSeries[] };
}
