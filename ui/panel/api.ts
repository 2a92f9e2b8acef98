// The panel's calls to its agent (cli/agent/panelServer.ts). Same origin, the session cookie
// goes along by itself; every answer is JSON.
import type { DecisionMessage } from '../../common/decisionMessage';
import type { PanelBatch, PanelHistoryAnswer, PanelPrompt, PanelState } from '../../common/panelApi';

export type Prompt = PanelPrompt;
/** A decision of the live feed, as the agent passes it on from the service. */
export type Decision = DecisionMessage;
export type Batch = PanelBatch;
export type State = PanelState;
export type HistoryAnswer = PanelHistoryAnswer;

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

export const history = (q: Record<string, string>): Promise<HistoryAnswer> =>
  fetch(`/api/history?${new URLSearchParams(Object.entries(q).filter(([, v]) => v !== ''))}`).then((r) => json<HistoryAnswer>(r));
