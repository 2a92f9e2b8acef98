// The control panel: pending prompts, live connections, rules, history, status and settings.
// Preact (3 kB) renders; all text is set as text nodes, never as HTML, so a program's name can
// hold no markup. The live feed arrives in batches (the agent sends at most one per 250 ms) and
// the table is redrawn at most once per animation frame.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { getState, type Batch, type Decision, type Prompt, type State } from './api';
import { HistoryPage } from './history';
import { LivePage } from './live';
import { PromptsPage } from './prompts';
import { RulesPage } from './rules';
import { StatusPage } from './status';

const PAGES = ['Prompts', 'Live', 'Rules', 'History', 'Status'] as const;
type Page = (typeof PAGES)[number];

/** Decisions kept for the live page. */
const LIVE_ROWS = 100;

/** A decision with the number it arrived as: a stable key, so a redraw only adds and drops rows. */
export type LiveRow = Decision & { seq: number };

export interface Live {
  rows: LiveRow[];
  perSecond: number;
  skipped: number;
}

function App(): preact.JSX.Element {
  const [page, setPage] = useState<Page>('Prompts');
  const [state, setState] = useState<State | null>(null);
  const [prompts, setPrompts] = useState<Prompt[]>([]);
  const [live, setLive] = useState<Live>({ rows: [], perSecond: 0, skipped: 0 });
  const [notice, setNotice] = useState<string>('');

  useEffect(() => {
    void getState().then((s) => {
      setState(s);
      setPrompts(s.prompts);
    });
    let rows: LiveRow[] = [];
    let seq = 0;
    let skipped = 0;
    let frame = 0;
    let count = 0;
    let since = performance.now();
    let perSecond = 0;
    const events = new EventSource('/api/events');
    events.onmessage = (e: MessageEvent<string>) => {
      const b = JSON.parse(e.data) as Batch;
      if (b.opened.length > 0 || b.closed.length > 0) {
        setPrompts((p) => [...p.filter((x) => !b.closed.includes(x.request_id) && !b.opened.some((o) => o.request_id === x.request_id)), ...b.opened]);
      }
      if (b.stats || b.connected !== undefined) setState((s) => (s ? { ...s, stats: b.stats ?? s.stats, connected: b.connected ?? s.connected } : s));
      if (b.notices.length > 0) setNotice(b.notices.map((n) => `${n.title}: ${n.message}`).join(' · '));
      if (b.decisions.length > 0 || b.skipped > 0) {
        for (const d of b.decisions) count += d.connections;
        count += b.skipped;
        skipped += b.skipped;
        const fresh = b.decisions.slice(-LIVE_ROWS).map((d) => ({ ...d, seq: seq++ }));
        rows = fresh.length >= LIVE_ROWS ? fresh : rows.concat(fresh).slice(-LIVE_ROWS);
        const now = performance.now();
        if (now - since >= 1000) {
          perSecond = Math.round((count * 1000) / (now - since));
          count = 0;
          since = now;
        }
        frame ||= requestAnimationFrame(() => {
          frame = 0;
          setLive({ rows, perSecond, skipped });
        });
      }
    };
    return () => events.close();
  }, []);

  return (
    <div class="app">
      <header>
        <img src="/icon.svg" alt="" width={28} height={28} />
        <h1>Bastion</h1>
        <nav role="tablist">
          {PAGES.map((p) => (
            <button role="tab" aria-selected={p === page} class={p === page ? 'tab on' : 'tab'} onClick={() => setPage(p)} key={p} id={`tab-${p}`}>
              {p}
              {p === 'Prompts' && prompts.length > 0 ? <span class="badge">{prompts.length}</span> : null}
            </button>
          ))}
        </nav>
        <span class={state?.connected ? 'link ok' : 'link down'}>{state?.connected ? 'connected' : 'service not reachable'}</span>
      </header>
      {notice ? (
        <p class="notice" role="status">
          {notice}
        </p>
      ) : null}
      <main>
        {page === 'Prompts' ? <PromptsPage prompts={prompts} timeout={state?.timeout_seconds ?? 60} notifications={state?.notifications ?? ''} /> : null}
        {page === 'Live' ? <LivePage live={live} /> : null}
        {page === 'Rules' ? <RulesPage /> : null}
        {page === 'History' ? <HistoryPage /> : null}
        {page === 'Status' ? <StatusPage stats={state?.stats ?? null} /> : null}
      </main>
    </div>
  );
}

render(<App />, document.getElementById('app')!);
