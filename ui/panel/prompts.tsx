// Pending prompts, answered with the mouse or the keyboard alone: the first prompt has the focus,
// the same keys as `bastion prompt` (o/s/t/a allow once/session/for a time/always, Shift denies,
// w other time, p all ports), and every button is reachable with Tab.
import { useEffect, useRef, useState } from 'preact/hooks';
import { answer, type Prompt } from './api';

const TIMES = ['5m', '1h', '8h', '1d'] as const;
const SCOPES = [
  ['once', 'once', 'o'],
  ['session', 'this session', 's'],
  ['time', 'for a time', 't'],
  ['always', 'always', 'a'],
] as const;

export function PromptsPage(props: { prompts: Prompt[]; timeout: number; notifications: string }): preact.JSX.Element {
  const [error, setError] = useState('');
  if (props.prompts.length === 0) {
    return (
      <section>
        <h2>Pending prompts</h2>
        <p class="empty">No connection is waiting for an answer.</p>
        {props.notifications === 'unavailable' ? <p class="hint">No notification server on this desktop: prompts appear here.</p> : null}
      </section>
    );
  }
  return (
    <section>
      <h2>Pending prompts</h2>
      <p class="hint">
        Keys: <kbd>o</kbd> once · <kbd>s</kbd> session · <kbd>t</kbd> for a time · <kbd>a</kbd> always; with <kbd>Shift</kbd> deny · <kbd>w</kbd> other time ·{' '}
        <kbd>p</kbd> all ports
      </p>
      {error ? <p class="error">{error}</p> : null}
      {props.prompts.map((p, i) => (
        <PromptCard prompt={p} first={i === 0} timeout={props.timeout} onError={setError} key={p.request_id} />
      ))}
    </section>
  );
}

function PromptCard(props: { prompt: Prompt; first: boolean; timeout: number; onError: (e: string) => void }): preact.JSX.Element {
  const p = props.prompt;
  const [allPorts, setAllPorts] = useState(false);
  const [time, setTime] = useState(0);
  const [now, setNow] = useState(Date.now());
  const card = useRef<HTMLElement>(null);
  useEffect(() => {
    if (props.first) card.current?.focus();
  }, [props.first]);
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, []);
  const duration = (scope: string): string => (scope === 'time' ? TIMES[time]! : scope);
  const reply = (allow: boolean, scope: string): void => {
    answer(p.request_id, allow, duration(scope), allPorts).catch((e: Error) => props.onError(e.message));
  };
  const onKey = (e: KeyboardEvent): void => {
    if (e.ctrlKey || e.altKey || e.metaKey) return;
    const k = e.key;
    const scope = SCOPES.find((s) => s[2] === k.toLowerCase());
    if (scope) {
      reply(k === k.toLowerCase(), scope[0]);
      e.preventDefault();
    } else if (k === 'p') {
      setAllPorts((v) => !v);
      e.preventDefault();
    } else if (k === 'w') {
      setTime((t) => (t + 1) % TIMES.length);
      e.preventDefault();
    }
  };
  const left = p.learning_mode ? null : Math.max(0, Math.ceil(props.timeout - (now - p.received_at) / 1000));
  return (
    <article
      class="prompt"
      tabIndex={0}
      ref={card}
      onKeyDown={onKey}
      aria-label={`${p.program} wants to connect to ${p.destination}`}
      data-request={p.request_id}
    >
      <div class="prompt-head">
        {p.icon !== null ? <ProgramIcon requestId={p.request_id} /> : null}
        <strong class="program">{p.program}</strong>
        <span>{p.learning_mode ? 'connected (learning mode: allowed)' : 'wants to connect'}</span>
        {left !== null ? <span class="clock">{left} s</span> : null}
      </div>
      <dl>
        <dt>destination</dt>
        <dd>
          {p.destination} <span class="proto">{p.protocol}</span>
        </dd>
        <dt>path</dt>
        <dd class="path">{p.path}</dd>
        {p.script !== null ? (
          <>
            <dt>script</dt>
            <dd class="path">{p.script}</dd>
          </>
        ) : null}
        {p.user !== null ? (
          <>
            <dt>user</dt>
            <dd>{p.user}</dd>
          </>
        ) : null}
      </dl>
      {p.unverified ? <p class="warn">The host name is not from the system resolver: anyone may have forged it.</p> : null}
      <div class="answers">
        {[true, false].map((allow) => (
          <div class={allow ? 'row allow' : 'row deny'} key={String(allow)}>
            <span class="verb">{allow ? 'Allow' : 'Deny'}</span>
            {SCOPES.map(([scope, label, key]) => (
              <button onClick={() => reply(allow, scope)} key={scope} title={`key ${allow ? key : key.toUpperCase()}`}>
                {scope === 'time' ? `for ${TIMES[time]}` : label}
              </button>
            ))}
          </div>
        ))}
        <label>
          <input type="checkbox" checked={allPorts} onChange={(e) => setAllPorts((e.target as HTMLInputElement).checked)} /> all ports
        </label>
        <button class="small" onClick={() => setTime((t) => (t + 1) % TIMES.length)}>
          other time
        </button>
      </div>
    </article>
  );
}

/** The icon of the program's desktop entry; nothing when the agent has no file for it. */
function ProgramIcon(props: { requestId: string }): preact.JSX.Element | null {
  const [failed, setFailed] = useState(false);
  if (failed) return null;
  return <img class="program-icon" src={`/api/icon?r=${encodeURIComponent(props.requestId)}`} alt="" width={32} height={32} onError={() => setFailed(true)} />;
}
