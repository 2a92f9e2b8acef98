// Live connections: the newest decisions (a bounded table, redrawn at most once per frame).
import type { Live } from './main';

export function LivePage(props: { live: Live }): preact.JSX.Element {
  const rows = props.live.rows;
  return (
    <section>
      <h2>Live connections</h2>
      <p class="hint">
        {props.live.perSecond} decisions/s{props.live.skipped > 0 ? ` · ${props.live.skipped} not listed (too many at once)` : ''}
      </p>
      <table class="live">
        <thead>
          <tr>
            <th>time</th>
            <th>verdict</th>
            <th>program</th>
            <th>destination</th>
            <th>protocol</th>
            <th>why</th>
          </tr>
        </thead>
        <tbody>
          {rows
            .slice()
            .reverse()
            .map((d) => (
              <tr key={d.seq} class={d.allow ? 'allow' : 'deny'}>
                <td>{d.time.slice(11, 19)}</td>
                <td>{d.allow ? 'allow' : 'deny'}</td>
                <td title={d.app_path}>{d.app_name}</td>
                <td>
                  {d.host ?? d.dest_ip}
                  {d.protocol === 'ICMP' ? '' : `:${d.dest_port}`}
                </td>
                <td>{d.protocol}</td>
                <td>{d.reason}</td>
              </tr>
            ))}
        </tbody>
      </table>
    </section>
  );
}
