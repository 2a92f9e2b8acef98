// Desktop notifications (org.freedesktop.Notifications on the session bus, Desktop Notifications
// Specification 1.2) with actions. A notification never takes the keyboard focus: it is the
// server's balloon, and the agent raises no window of its own; "More…" opens the panel only when
// the user clicks it.
import type { SessionBus } from './sessionBus.js';

const DEST = 'org.freedesktop.Notifications';
const PATH = '/org/freedesktop/Notifications';
const IFACE = 'org.freedesktop.Notifications';

export interface Notice {
  summary: string;
  /** Markup where the server reads markup (see `markup`), else plain text. */
  body: string;
  icon: string | null;
  /** [key, label] pairs, in the order the server should show them. */
  actions: readonly (readonly [string, string])[];
  /** Milliseconds; 0 = until closed. */
  expireMs: number;
}

export interface NotifierEvents {
  onAction(id: number, key: string): void;
  onClosed(id: number): void;
}

export class DesktopNotifier {
  private constructor(
    private readonly bus: SessionBus,
    readonly capabilities: readonly string[],
  ) {}

  /** The notification server's capabilities, or null when none runs on this bus. */
  static async start(bus: SessionBus, events: NotifierEvents): Promise<DesktopNotifier | null> {
    let capabilities: string[];
    try {
      const [caps] = await bus.call({ destination: DEST, path: PATH, iface: IFACE, member: 'GetCapabilities' });
      capabilities = Array.isArray(caps) ? caps.filter((c): c is string => typeof c === 'string') : [];
    } catch {
      return null;
    }
    await bus.onSignals(IFACE, (member, body) => {
      const id = Number(body[0]);
      if (member === 'ActionInvoked' && typeof body[1] === 'string') events.onAction(id, body[1]);
      else if (member === 'NotificationClosed') events.onClosed(id);
    });
    return new DesktopNotifier(bus, capabilities);
  }

  /** Whether bodies may carry markup (otherwise tags would show as text). */
  get markup(): boolean {
    return this.capabilities.includes('body-markup');
  }

  get actions(): boolean {
    return this.capabilities.includes('actions');
  }

  async show(n: Notice): Promise<number> {
    const [id] = await this.bus.call({
      destination: DEST,
      path: PATH,
      iface: IFACE,
      member: 'Notify',
      signature: 'susssasa{sv}i',
      body: [
        'Bastion',
        0,
        n.icon ?? 'bastion-firewall',
        n.summary,
        n.body,
        n.actions.flat(),
        [
          // Normal, not critical: critical notifications may stay on top and grab attention.
          ['urgency', ['y', 1]],
          ['category', ['s', 'network']],
          ['desktop-entry', ['s', 'bastion-agent']],
          ['resident', ['b', false]],
        ],
        n.expireMs,
      ],
    });
    return Number(id);
  }

  async close(id: number): Promise<void> {
    try {
      await this.bus.call({ destination: DEST, path: PATH, iface: IFACE, member: 'CloseNotification', signature: 'u', body: [id] });
    } catch {
      // already closed by the user or the server
    }
  }
}
