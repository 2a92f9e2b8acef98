// History: a search of the decision history and a chart (uPlot) of allowed and denied connections
// per program over time.
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { history, type HistoryAnswer } from './api';

const ALLOW_COLORS = ['#2e7d32', '#43a047', '#66bb6a', '#1b5e20', '#81c784', '#388e3c'];
const DENY_COLORS = ['#c62828', '#e53935', '#ef5350', '#b71c1c', '#e57373', '#d32f2f'];

export function HistoryPage(): preact.JSX.Element {
  const [q, setQ] = useState({ since: '24h', program: '', host: '', verdict: '' });
  const [found, setFound] = useState<HistoryAnswer | null>(null);
  const [error, setError] = useState('');
  const chart = useRef<HTMLDivElement>(null);
  const search = (e?: Event): void => {
    e?.preventDefault();
    setError('');
    history(q).then(setFound, (err: Error) => setError(err.message));
  };
  useEffect(() => search(), []);
  useEffect(() => {
    const el = chart.current;
    if (!el || !found) return;
    el.textContent = '';
    let a = 0;
    let d = 0;
    const plot = new uPlot(
      {
        width: Math.max(400, el.clientWidth),
        height: 260,
        series: [
          {},
          ...found.chart.series.map((s) => ({
            label: s.label,
            stroke: (s.allow ? ALLOW_COLORS[a++ % ALLOW_COLORS.length] : DENY_COLORS[d++ % DENY_COLORS.length]) ?? '#555',
            width: 2,
            ...(s.allow ? {} : { dash: [6, 4] }),
          })),
        ],
        axes: [{}, { label: 'connections' }],
      },
      [found.chart.times, ...found.chart.series.map((s) => s.values)],
      el,
    );
    return () => plot.destroy();
  }, [found]);
  const field = (name: keyof typeof q, label: string): preact.JSX.Element => (
    <input aria-label={label} placeholder={label} value={q[name]} onInput={(e) => setQ({ ...q, [name]: (e.target as HTMLInputElement).value })} />
  );
  return (
    <section>
      <h2>History</h2>
      <form class="search" onSubmit={search}>
        {field('since', 'since (30m, 2h, 7d)')}
        {field('program', 'program (path or name)')}
        {field('host', 'host or address')}
        <select aria-label="verdict" value={q.verdict} onChange={(e) => setQ({ ...q, verdict: (e.target as HTMLSelectElement).value })}>
          <option value="">allowed and denied</option>
          <option value="allow">allowed</option>
          <option value="deny">denied</option>
        </select>
        <button type="submit">Search</button>
      </form>
      {error ? <p class="error">{error}</p> : null}
      <div class="chart" ref={chart} />
      {found ? (
        <table class="history">
          <thead>
            <tr>
              <th>time</th>
              <th>verdict</th>
              <th>program</th>
              <th>destination</th>
              <th>why</th>
              <th>n</th>
            </tr>
          </thead>
          <tbody>
            {found.rows
              .slice()
              .reverse()
              .map((r, i) => (
                <tr key={i} class={r.allow ? 'allow' : 'deny'}>
                  <td>{new Date(r.at).toLocaleString()}</td>
                  <td>{r.allow ? 'allow' : 'deny'}</td>
                  <td class="path">{r.program}</td>
                  <td>
                    {r.host ?? r.dest}:{r.port} {r.protocol}
                  </td>
                  <td>{r.reason}</td>
                  <td>{r.connections}</td>
                </tr>
              ))}
          </tbody>
        </table>
      ) : null}
      {found?.more ? <p class="hint">Older matches not listed: narrow the search.</p> : null}
    </section>
  );
}
