// GUI socket peers that behave like the Python GUI, byte for byte: the tray (reads lines,
// dispatches on req['type'], answers popups with json.dumps spacing, sends add_rule for "Always"
// in learning mode) and the control panel (connects, writes one line, closes at once).
import net from 'node:net';

/**
 * Python's `json.dumps(obj)` with default arguments: separators ", " and ": ", ensure_ascii
 * (every non-ASCII character as \uXXXX), dict order kept.
 */
export function pyDumps(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `[${value.map(pyDumps).join(', ')}]`;
  if (typeof value === 'object') {
    return `{${Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => `${pyString(k)}: ${pyDumps(v)}`)
      .join(', ')}}`;
  }
  if (typeof value === 'string') return pyString(value);
  return JSON.stringify(value);
}

function pyString(s: string): string {
  return JSON.stringify(s).replace(/[\u007f-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export type Message = Record<string, unknown>;

export interface TrayAnswer {
  allow: boolean;
  /** The popup's choice: once, session or always. */
  duration: 'once' | 'session' | 'always' | string;
  allPorts?: boolean;
}

/** The tray: one connection, reading JSON lines as bastion-gui does. */
export class TrayClient {
  readonly received: Message[] = [];
  /** Messages the real tray would choke on (no "type": KeyError, then it disconnects). */
  readonly violations: string[] = [];
  private buffer = '';
  private readonly waiters: { test: (m: Message) => boolean; resolve: (m: Message) => void }[] = [];
  /** Request ids nextRequest() already handed out. */
  private readonly taken = new Set<string>();
  readonly closed: Promise<void>;

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      const lines = this.buffer.split('\n');
      this.buffer = lines.pop()!;
      for (const line of lines) {
        if (line.trim() === '') continue;
        const req = JSON.parse(line) as Message;
        if (!('type' in req)) {
          this.violations.push(line);
          continue;
        }
        this.received.push(req);
        for (let i = this.waiters.length - 1; i >= 0; i--) {
          if (this.waiters[i]!.test(req)) this.waiters.splice(i, 1)[0]!.resolve(req);
        }
      }
    });
  }

  static connect(path: string): Promise<TrayClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(path);
      socket.once('connect', () => resolve(new TrayClient(socket)));
      socket.once('error', reject);
    });
  }

  ofType(type: string): Message[] {
    return this.received.filter((m) => m['type'] === type);
  }

  /** The first message (already received or coming) that passes `test`. */
  waitFor(test: (m: Message) => boolean, what: string, timeoutMs = 10_000): Promise<Message> {
    const seen = this.received.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`tray: no ${what} within ${timeoutMs} ms; got ${JSON.stringify(this.received.slice(-5))}`)), timeoutMs);
      this.waiters.push({
        test,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      });
    });
  }

  /** The next connection_request (optionally for one program) not yet taken. */
  async nextRequest(appName?: string, timeoutMs = 10_000): Promise<Message> {
    const taken = new Set(this.taken);
    const m = await this.waitFor(
      (x) => x['type'] === 'connection_request' && !taken.has(x['request_id'] as string) && (appName === undefined || x['app_name'] === appName),
      `connection_request${appName ? ` for ${appName}` : ''}`,
      timeoutMs,
    );
    this.taken.add(m['request_id'] as string);
    return m;
  }

  cancelled(requestId: string, timeoutMs = 10_000): Promise<Message> {
    return this.waitFor((m) => m['type'] === 'cancel_popup' && m['request_id'] === requestId, `cancel_popup ${requestId}`, timeoutMs);
  }

  /** What the tray writes when a popup is answered (learning mode: add_rule for "Always", else nothing). */
  answer(req: Message, a: TrayAnswer): void {
    if (req['learning_mode']) {
      if (a.duration !== 'always') return;
      this.writeLine({
        type: 'add_rule',
        app_name: req['app_name'],
        app_path: req['app_path'],
        port: req['dest_port'],
        dest_ip: req['dest_ip'],
        allow: a.allow,
        all_ports: a.allPorts ?? false,
      });
      return;
    }
    this.writeLine({
      type: 'gui_response',
      request_id: req['request_id'],
      allow: a.allow,
      permanent: a.duration === 'always',
      all_ports: a.allPorts ?? false,
      duration: a.duration,
    });
  }

  writeLine(message: Message): void {
    this.socket.write(pyDumps(message) + '\n');
  }

  writeRaw(text: string): void {
    this.socket.write(text);
  }

  close(): Promise<void> {
    this.socket.destroy();
    return this.closed;
  }
}

/** The control panel: `sock.sendall(json.dumps(msg) + '\n'); sock.close()` for every edit. */
export function controlPanelSend(path: string, message: Message): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(path);
    socket.on('error', reject);
    socket.once('connect', () => {
      socket.write(pyDumps(message) + '\n', () => {
        socket.destroy(); // close() with unread data in its buffer: no half-close, no reading
        resolve();
      });
    });
  });
}
