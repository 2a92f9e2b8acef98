// A notification server for tests (org.freedesktop.Notifications, Desktop Notifications
// Specification 1.2) on a private session bus: it records every Notify call and emits
// ActionInvoked when the test clicks a button, as a desktop's server would.
import { SessionBus } from '../../cli/agent/sessionBus.js';

const PATH = '/org/freedesktop/Notifications';
const IFACE = 'org.freedesktop.Notifications';

export interface Notified {
  id: number;
  appName: string;
  icon: string;
  summary: string;
  body: string;
  /** [key, label] pairs. */
  actions: [string, string][];
  hints: unknown;
  expireMs: number;
}

export class TestNotificationServer {
  readonly notified: Notified[] = [];
  readonly closed: number[] = [];
  private nextId = 1;
  private readonly waiters: { match: (n: Notified) => boolean; resolve: (n: Notified) => void }[] = [];

  private constructor(
    private readonly bus: SessionBus,
    readonly capabilities: string[],
  ) {}

  static async start(address: string, capabilities = ['actions', 'body', 'body-markup', 'icon-static']): Promise<TestNotificationServer> {
    const bus = await SessionBus.connect(address);
    const server = new TestNotificationServer(bus, capabilities);
    bus.serve(PATH, IFACE, 'GetCapabilities', 'as', () => server.capabilities);
    bus.serve(PATH, IFACE, 'GetServerInformation', 'ssss', () => ['bastion-test', 'bastion', '1', '1.2']);
    bus.serve(PATH, IFACE, 'Notify', 'u', (appName, _replaces, icon, summary, body, actions, hints, expire) =>
      server.notify({ appName, icon, summary, body, actions, hints, expire }),
    );
    bus.serve(PATH, IFACE, 'CloseNotification', '', (id) => {
      server.closed.push(Number(id));
      bus.signal(PATH, IFACE, 'NotificationClosed', 'uu', [Number(id), 3]);
    });
    await bus.requestName(IFACE);
    return server;
  }

  private notify(a: Record<string, unknown>): number {
    const id = this.nextId++;
    const flat = (a['actions'] as string[]) ?? [];
    const actions: [string, string][] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) actions.push([flat[i]!, flat[i + 1]!]);
    const n: Notified = {
      id,
      appName: String(a['appName']),
      icon: String(a['icon']),
      summary: String(a['summary']),
      body: String(a['body']),
      actions,
      hints: a['hints'],
      expireMs: Number(a['expire']),
    };
    this.notified.push(n);
    for (let i = this.waiters.length - 1; i >= 0; i--) if (this.waiters[i]!.match(n)) this.waiters.splice(i, 1)[0]!.resolve(n);
    return id;
  }

  /** The first notification (recorded or still to come) that matches. */
  waitFor(match: (n: Notified) => boolean, timeoutMs = 20_000): Promise<Notified> {
    const seen = this.notified.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no such notification within ${timeoutMs} ms; got ${JSON.stringify(this.notified.map((n) => n.summary))}`)),
        timeoutMs,
      );
      this.waiters.push({ match, resolve: (n) => (clearTimeout(timer), resolve(n)) });
    });
  }

  /** The user clicked a button. */
  invoke(id: number, key: string): void {
    this.bus.signal(PATH, IFACE, 'ActionInvoked', 'us', [id, key]);
  }

  stop(): void {
    this.bus.close();
  }
}
