// The panel's history page: a search of the decision history (common/history.ts, the same query
// as `bastion log`) and a chart of allowed and denied connections per program over time, counted
// from the rows found. The history file is opened read-only for each search.
import { closeDatabase, findDecisions, openDatabase, type HistoryQuery, type HistoryRow } from '../../common/history.js';
import type { ChartSeries, PanelHistoryAnswer } from '../../common/panelApi.js';
import { parseSince } from '../logCommand.js';

/** Programs with a series of their own in the chart; the rest are summed as "other". */
const CHART_PROGRAMS = 5;
const CHART_BUCKETS = 60;
/** Rows the chart is counted from at most. */
const CHART_ROWS = 20_000;
const LIST_ROWS = 200;

export interface HistorySearch {
  since: string;
  program?: string;
  host?: string;
  verdict?: 'allow' | 'deny';
}

export function searchFromParams(params: URLSearchParams): HistorySearch | string {
  const since = params.get('since') || '24h';
  const search: HistorySearch = { since };
  const program = params.get('program');
  const host = params.get('host');
  const verdict = params.get('verdict');
  if (program) search.program = program;
  if (host) search.host = host;
  if (verdict) {
    if (verdict !== 'allow' && verdict !== 'deny') return 'verdict must be allow or deny';
    search.verdict = verdict;
  }
  return search;
}

export async function searchHistoryFile(path: string, search: HistorySearch, now: number): Promise<PanelHistoryAnswer | string> {
  const since = parseSince(search.since, now);
  if (since === null) return `since must be a time such as 30m, 2h, 7d or a date, not "${search.since}"`;
  const q: HistoryQuery = { since, limit: CHART_ROWS };
  if (search.program !== undefined) q.program = search.program;
  if (search.host !== undefined) q.host = search.host;
  if (search.verdict !== undefined) q.verdict = search.verdict;
  const db = await openDatabase(path, 'read');
  try {
    const found = await findDecisions(db, q);
    return { rows: found.rows.slice(-LIST_ROWS), more: found.more || found.rows.length > LIST_ROWS, chart: chartOf(found.rows, since, now) };
  } finally {
    await closeDatabase(db);
  }
}

/** Connections per time bucket, allowed and denied, for the busiest programs. */
export function chartOf(rows: readonly HistoryRow[], since: number, now: number): PanelHistoryAnswer['chart'] {
  const step = Math.max(1000, Math.ceil((now - since) / CHART_BUCKETS));
  const times = Array.from({ length: CHART_BUCKETS }, (_, i) => Math.floor((since + i * step) / 1000));
  const totals = new Map<string, number>();
  for (const r of rows) totals.set(r.program, (totals.get(r.program) ?? 0) + r.connections);
  const top = [...totals.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, CHART_PROGRAMS)
    .map(([p]) => p);
  const series = new Map<string, ChartSeries>();
  const seriesFor = (program: string, allow: boolean): ChartSeries => {
    const name = top.includes(program) ? program : 'other';
    const key = `${allow ? 'A' : 'D'}${name}`;
    let s = series.get(key);
    if (!s) {
      s = { label: `${name.slice(name.lastIndexOf('/') + 1)} ${allow ? 'allowed' : 'denied'}`, allow, values: new Array<number>(CHART_BUCKETS).fill(0) };
      series.set(key, s);
    }
    return s;
  };
  for (const r of rows) {
    const i = Math.min(CHART_BUCKETS - 1, Math.max(0, Math.floor((r.at - since) / step)));
    seriesFor(r.program, r.allow).values[i]! += r.connections;
  }
  return { times, series: [...series.values()].sort((a, b) => a.label.localeCompare(b.label)) };
}
