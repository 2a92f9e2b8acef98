// The panel's calls to its agent (cli/agent/panelServer.ts). Same origin, the session cookie
// goes along by itself; every answer is JSON.
import type { DecisionMessage } from '../../common/decisionMessage';
export interface Prompt {
  request_id: string;
  learning_mode: boolean;
  received_at: number;
  dest_port: number;
  program: string;
  icon: string | null;
  path: string;
  script: string | null;
  user: string | null;
  destination: string;
  protocol: string;
  unverified: boolean;
}

/** A decision of the live feed, as the agent passes it on from the service. */
export type Decision = DecisionMessage;

export interface Batch {
  opened: Prompt[];
  closed: string[];
  stats?: { total_connections: number; allowed_connections: number; blocked_connections: number; learning_mode: boolean };
  decisions: Decision[];
  skipped: number;
  notices: { title: string; message: string; level: string }[];
  connected?: boolean;
}

export interface State {
  connected: boolean;
  notifications: string;
  timeout_seconds: number;
  stats: Batch['stats'] | null;
  prompts: Prompt[];
}

async function json<T>(res: Response): Promise<T> {
  const body = (await res.json()) as T & { error?: string };
  if (!res.ok || (body as { type?: string }).type === 'error') throw new Error(body.error ?? `HTTP ${res.status}`);
  return body;
}

export const getState = (): Promise<State> => fetch('/api/state').then((r) => json<State>(r));

export function post<T>(path: string, body: unknown): Promise<T> {
  return fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) }).then((r) => json<T>(r));
}

/** A message for the service, through the agent (gui-protocol.md). */
export const send = <T>(message: Record<string, unknown>): Promise<T> => post<T>('/api/send', message);

export const answer = (request_id: string, allow: boolean, duration: string, all_ports: boolean): Promise<unknown> =>
  post('/api/answer', { request_id, allow, duration, all_ports });

export interface HistoryAnswer {
  rows: {
    at: number;
    program: string;
    comm: string | null;
    host: string | null;
    dest: string;
    port: number;
    protocol: string;
    allow: boolean;
    reason: string;
    connections: number;
  }[];
  more: boolean;
  chart: { times: number[]; series: { label: string; allow: boolean; values: number[] }[] };
}

export const history = (q: Record<string, string>): Promise<HistoryAnswer> =>
  fetch(`/api/history?${new URLSearchParams(Object.entries(q).filter(([, v]) => v !== ''))}`).then((r) => json<HistoryAnswer>(r));
