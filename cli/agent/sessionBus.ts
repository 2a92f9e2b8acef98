// The session D-Bus, through @homebridge/dbus-native: a pure-JavaScript D-Bus client kept by the
// Homebridge project (the maintained fork of dbus-native, releases through 2025; dbus-next has had
// none since 2021). Pure JavaScript matters: the agent runs on Debian's Node 18 with no second
// native addon to build. This module gives the rest of the agent typed promises instead of its
// callbacks.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** A D-Bus message as the library hands it over. */
export interface BusMessage {
  type: number;
  path?: string;
  interface?: string;
  member?: string;
  sender?: string;
  signature?: string;
  body?: unknown[];
}

interface RawBus {
  connection: { on(event: string, fn: (arg: never) => void): void; end(): void };
  invoke(message: Record<string, unknown>, callback: (err: { name: string; message: string } | null | undefined, ...values: unknown[]) => void): void;
  addMatch(rule: string, callback: (err: unknown) => void): void;
  requestName(name: string, flags: number, callback: (err: unknown, code: number) => void): void;
  sendSignal(path: string, iface: string, name: string, signature: string, args: unknown[]): void;
  setMethodCallHandler(path: string, iface: string, member: string, handler: [(...args: unknown[]) => unknown, string]): void;
}

interface DbusNative {
  sessionBus(options: { busAddress: string }): RawBus;
  messageType: { signal: number };
}

export const SIGNAL = 4;

export class DbusError extends Error {
  constructor(
    readonly dbusName: string,
    message: string,
  ) {
    super(`${dbusName}: ${message}`);
  }
}

export interface Call {
  destination: string;
  path: string;
  iface: string;
  member: string;
  signature?: string;
  body?: unknown[];
}

export class SessionBus {
  private closed = false;

  private constructor(private readonly raw: RawBus) {}

  /** Connects to the bus at `address` (default: $DBUS_SESSION_BUS_ADDRESS). */
  static async connect(address = process.env['DBUS_SESSION_BUS_ADDRESS']): Promise<SessionBus> {
    if (!address) throw new Error('no session bus: DBUS_SESSION_BUS_ADDRESS is not set');
    const dbus = require('@homebridge/dbus-native') as DbusNative;
    const raw = dbus.sessionBus({ busAddress: address });
    const bus = new SessionBus(raw);
    await new Promise<void>((resolve, reject) => {
      raw.connection.on('connect', () => resolve());
      raw.connection.on('error', (err: Error) => reject(new Error(`cannot connect to the session bus: ${err.message}`)));
    });
    return bus;
  }

  call(c: Call): Promise<unknown[]> {
    return new Promise((resolve, reject) => {
      const message: Record<string, unknown> = { destination: c.destination, path: c.path, interface: c.iface, member: c.member };
      if (c.signature !== undefined) message['signature'] = c.signature;
      if (c.body !== undefined) message['body'] = c.body;
      this.raw.invoke(message, (err, ...values) => (err ? reject(new DbusError(err.name, err.message)) : resolve(values)));
    });
  }

  /** Calls `onSignal` for every signal of `iface` that reaches this connection. */
  async onSignals(iface: string, onSignal: (member: string, body: unknown[]) => void): Promise<void> {
    this.raw.connection.on('message', (m: BusMessage) => {
      if (m.type === SIGNAL && m.interface === iface && m.member) onSignal(m.member, m.body ?? []);
    });
    await new Promise<void>((resolve, reject) =>
      this.raw.addMatch(`type='signal',interface='${iface}'`, (err) => (err ? reject(new Error(String(err))) : resolve())),
    );
  }

  /** Owns a well-known name (tests: a notification server). */
  requestName(name: string): Promise<void> {
    return new Promise((resolve, reject) =>
      this.raw.requestName(name, 4 /* DBUS_NAME_FLAG_DO_NOT_QUEUE */, (err, code) =>
        err || code !== 1 ? reject(new Error(`cannot own ${name}: ${String(err ?? code)}`)) : resolve(),
      ),
    );
  }

  /** Serves one method; `outSignature` is its reply's signature. */
  serve(path: string, iface: string, member: string, outSignature: string, handler: (...args: unknown[]) => unknown): void {
    this.raw.setMethodCallHandler(path, iface, member, [handler, outSignature]);
  }

  signal(path: string, iface: string, name: string, signature: string, args: unknown[]): void {
    this.raw.sendSignal(path, iface, name, signature, args);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.raw.connection.end();
  }
}
