// Rules (rules.json keys): add, edit (a verdict or port change saves the new key and deletes the
// old one), delete; every change goes through the service, which asks polkit.
import { useEffect, useState } from 'preact/hooks';
import { send } from './api';

interface Rule {
  key: string;
  subject: string;
  port: string;
  allow: boolean;
}

function rulesOf(reply: { rules: Record<string, unknown> }): Rule[] {
  return Object.entries(reply.rules)
    .filter((e): e is [string, boolean] => typeof e[1] === 'boolean')
    .map(([key, allow]) => {
      const i = key.lastIndexOf(':');
      return { key, subject: key.slice(0, i), port: key.slice(i + 1), allow };
    });
}

export function RulesPage(): preact.JSX.Element {
  const [rules, setRules] = useState<Rule[]>([]);
  const [error, setError] = useState('');
  const [subject, setSubject] = useState('');
  const [port, setPort] = useState('*');
  const [allow, setAllow] = useState(true);
  const [editing, setEditing] = useState<string | null>(null);
  const load = (): void =>
    void send<{ rules: Record<string, unknown> }>({ type: 'list_rules' }).then(
      (r) => setRules(rulesOf(r)),
      (e: Error) => setError(e.message),
    );
  useEffect(load, []);

  const save = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError('');
    const all = port === '*' || port === '0' || port === '';
    const n = Number(port);
    if (!all && !(Number.isInteger(n) && n > 0 && n < 65536)) return setError('the port is 1..65535, or * for all ports');
    try {
      const reply = await send<{ rules: Record<string, unknown> }>({
        type: 'add_rule',
        app_path: subject,
        app_name: '',
        port: all ? 0 : n,
        allow,
        all_ports: all,
      });
      const newKey = `${subject}:${all ? '*' : n}`;
      if (editing !== null && editing !== newKey) await send({ type: 'delete_rule', key: editing });
      setRules(rulesOf(editing !== null && editing !== newKey ? await send({ type: 'list_rules' }) : reply));
      setEditing(null);
      setSubject('');
      setPort('*');
    } catch (err) {
      setError((err as Error).message);
    }
  };
  const remove = async (key: string): Promise<void> => {
    try {
      await send({ type: 'delete_rule', key });
      load();
    } catch (err) {
      setError((err as Error).message);
    }
  };
  const edit = (r: Rule): void => {
    setEditing(r.key);
    setSubject(r.subject);
    setPort(r.port);
    setAllow(r.allow);
  };

  return (
    <section>
      <h2>Rules</h2>
      <form class="rule-form" onSubmit={(e) => void save(e)}>
        <input
          aria-label="subject"
          placeholder="/usr/bin/program, @host:example.org, @host:*.example.org, @dest:192.0.2.7:443, @name:comm"
          value={subject}
          onInput={(e) => setSubject((e.target as HTMLInputElement).value)}
          required
        />
        <input aria-label="port" class="port" value={port} onInput={(e) => setPort((e.target as HTMLInputElement).value)} />
        <select aria-label="verdict" value={allow ? 'allow' : 'deny'} onChange={(e) => setAllow((e.target as HTMLSelectElement).value === 'allow')}>
          <option value="allow">allow</option>
          <option value="deny">deny</option>
        </select>
        <button type="submit">{editing !== null ? 'Save' : 'Add rule'}</button>
        {editing !== null ? (
          <button type="button" onClick={() => setEditing(null)}>
            Cancel
          </button>
        ) : null}
      </form>
      {error ? <p class="error">{error}</p> : null}
      <table class="rules">
        <thead>
          <tr>
            <th>verdict</th>
            <th>subject</th>
            <th>port</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          {rules.map((r) => (
            <tr key={r.key} data-key={r.key} class={r.allow ? 'allow' : 'deny'}>
              <td>{r.allow ? 'allow' : 'deny'}</td>
              <td class="path">{r.subject}</td>
              <td>{r.port}</td>
              <td>
                <button class="small" onClick={() => edit(r)}>
                  Edit
                </button>
                <button class="small danger" onClick={() => void remove(r.key)} aria-label={`delete ${r.key}`}>
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
