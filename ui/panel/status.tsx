// Status and mode, and the settings of config.json (set_config: checked, authorized and saved by
// the service).
import { useEffect, useState } from 'preact/hooks';
import { send } from './api';

const SETTINGS: { key: string; label: string; kind: 'bool' | 'number' | 'action' }[] = [
  { key: 'timeout_seconds', label: 'Prompt timeout (seconds, 5..300)', kind: 'number' },
  { key: 'default_action', label: 'Without an answer', kind: 'action' },
  { key: 'allow_localhost', label: 'Allow connections to this machine', kind: 'bool' },
  { key: 'allow_lan', label: 'Allow the local network', kind: 'bool' },
  { key: 'popup_enabled', label: 'Ask about connections', kind: 'bool' },
  { key: 'notifications_enabled', label: 'Notifications from the service', kind: 'bool' },
];

interface Status {
  mode: string;
  default_action: string;
  uptime_seconds: number;
  rules: number;
  clients: number;
  prompts: { open: number };
  helper: { connected: boolean };
}

export function StatusPage(props: {
  stats: { total_connections: number; allowed_connections: number; blocked_connections: number } | null;
}): preact.JSX.Element {
  const [status, setStatus] = useState<Status | null>(null);
  const [config, setConfig] = useState<Record<string, unknown>>({});
  const [message, setMessage] = useState('');
  const load = (): void => {
    send<Status>({ type: 'status' }).then(setStatus, (e: Error) => setMessage(e.message));
    send<{ config: Record<string, unknown> }>({ type: 'get_config' }).then(
      (c) => setConfig(c.config),
      (e: Error) => setMessage(e.message),
    );
  };
  useEffect(load, []);
  const setMode = (mode: string): void => {
    send({ type: 'set_mode', mode }).then(load, (e: Error) => setMessage(e.message));
  };
  const set = (key: string, value: unknown): void => {
    send<{ warnings: string[] }>({ type: 'set_config', key, value }).then(
      (r) => {
        setMessage(r.warnings.length > 0 ? r.warnings.join('; ') : `${key} saved`);
        load();
      },
      (e: Error) => setMessage(e.message),
    );
  };
  const s = props.stats;
  return (
    <section>
      <h2>Status</h2>
      {status ? (
        <dl class="status">
          <dt>mode</dt>
          <dd>
            {status.mode}{' '}
            <button class="small" onClick={() => setMode(status.mode === 'learning' ? 'enforcement' : 'learning')}>
              switch to {status.mode === 'learning' ? 'enforcement' : 'learning'}
            </button>
          </dd>
          <dt>connections</dt>
          <dd>{s ? `${s.total_connections} (${s.allowed_connections} allowed, ${s.blocked_connections} denied)` : '…'}</dd>
          <dt>rules</dt>
          <dd>{status.rules}</dd>
          <dt>open prompts</dt>
          <dd>{status.prompts.open}</dd>
          <dt>helper</dt>
          <dd>{status.helper.connected ? 'connected' : 'not connected'}</dd>
          <dt>running for</dt>
          <dd>{Math.round(status.uptime_seconds / 60)} min</dd>
        </dl>
      ) : null}
      <h2>Settings</h2>
      {message ? <p class="hint">{message}</p> : null}
      <div class="settings">
        {SETTINGS.map((f) => (
          <label key={f.key}>
            <span>{f.label}</span>
            {f.kind === 'bool' ? (
              <input type="checkbox" checked={config[f.key] === true} onChange={(e) => set(f.key, (e.target as HTMLInputElement).checked)} />
            ) : f.kind === 'action' ? (
              <select value={String(config[f.key] ?? 'deny')} onChange={(e) => set(f.key, (e.target as HTMLSelectElement).value)}>
                <option value="deny">deny</option>
                <option value="allow">allow</option>
              </select>
            ) : (
              <input
                type="number"
                min={5}
                max={300}
                value={String(config[f.key] ?? '')}
                onChange={(e) => set(f.key, Number((e.target as HTMLInputElement).value))}
              />
            )}
          </label>
        ))}
      </div>
    </section>
  );
}
