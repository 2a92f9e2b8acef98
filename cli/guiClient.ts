// A minimal client of the GUI socket for the CLI: send JSON lines, wait for typed replies.
import net from 'node:net';
import { parseServiceMessage, type ClientMessage, type ServiceMessage } from '../common/guiProtocol.js';
import { visible } from '../common/visibleText.js';

/**
 * Why connecting failed, and the one step that fixes it: a desktop user outside group bastion
 * gets EACCES (the socket is 0660 root:bastion, its directory 0750); no socket, or one nobody
 * listens on, means the service is not running.
 */
export function connectFailure(path: string, err: NodeJS.ErrnoException): string {
  const where = `cannot connect to ${visible(path)}`;
  switch (err.code) {
    case 'EACCES':
      return (
        `${where}: permission denied (only root and group bastion may use it)\n` +
        'to fix: sudo adduser $USER bastion, then log out and in again (or run newgrp bastion in this shell)'
      );
    case 'ENOENT':
    case 'ECONNREFUSED':
      return (
        `${where}: the service is not running (${err.code === 'ENOENT' ? 'no socket there' : 'nothing listens there'})\n` +
        'systemctl status bastion-firewall says why'
      );
    default:
      return `${where}: ${visible(err.message)}`;
  }
}

/** How long a change waits for its reply: the service asks polkit first, which may show a password dialog (up to 2 minutes). */
export const AUTHORIZED_REPLY_MS = 130_000;

export interface ConnectOptions {
  timeoutMs?: number;
  /**
   * False (the default) tells the service this connection answers no prompts, so it is sent none
   * and never counted as someone to wait for (`bastion status` must not hold a connection).
   */
  answersPrompts?: boolean;
  /** Shown in the service's log. */
  client?: string;
  /** Prompts carry pid, uid, argv and host (docs/gui-extensions.md, hello). */
  details?: boolean;
}

export class GuiConnection {
  private buffer = '';
  private readonly waiters: { type: string; resolve: (m: Record<string, unknown>) => void }[] = [];
  private readonly listeners: ((m: Record<string, unknown>) => void)[] = [];
  private readonly typedListeners: ((m: ServiceMessage) => void)[] = [];
  readonly closed: Promise<void>;

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => undefined); // EPIPE/ECONNRESET: `closed` reports it
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        let msg: Record<string, unknown>;
        try {
          msg = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        for (const l of this.listeners) l(msg);
        if (this.typedListeners.length > 0) {
          // Checked by the protocol module; a type it does not know (a newer service) is skipped.
          const typed = parseServiceMessage(msg);
          if (typed.ok) for (const l of this.typedListeners) l(typed.message);
        }
        const i = this.waiters.findIndex((w) => w.type === msg['type'] || msg['type'] === 'error');
        if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(msg);
      }
    });
  }

  static async connect(path: string, options: ConnectOptions = {}): Promise<GuiConnection> {
    const conn = await GuiConnection.open(path, options.timeoutMs ?? 5000);
    const hello: ClientMessage = { type: 'hello', client: options.client ?? 'bastion', answers_prompts: options.answersPrompts ?? false };
    if (options.details) hello.details = true;
    conn.send(hello);
    return conn;
  }

  private static open(path: string, timeoutMs: number): Promise<GuiConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(path);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no answer from ${path} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(new GuiConnection(socket));
      });
      socket.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new Error(connectFailure(path, err)));
      });
    });
  }

  onMessage(listener: (m: Record<string, unknown>) => void): void {
    this.listeners.push(listener);
  }

  /** Every message the service sends, checked by common/guiProtocol.ts. */
  onServiceMessage(listener: (m: ServiceMessage) => void): void {
    this.typedListeners.push(listener);
  }

  send(message: Record<string, unknown> | ClientMessage): void {
    if (this.socket.destroyed) return;
    this.socket.write(JSON.stringify(message) + '\n');
  }

  /** Waits for the next message of `type` (or an `error`). */
  next(type: string, timeoutMs = 5000): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${type} reply within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        type,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      });
    });
  }

  /** Sends message and waits for its reply of replyType (or an `error`). */
  async request(message: Record<string, unknown>, replyType: string, timeoutMs = 5000): Promise<Record<string, unknown>> {
    const reply = this.next(replyType, timeoutMs);
    this.send(message);
    return reply;
  }

  close(): void {
    this.socket.end();
  }
}

/** For commands: connects, or says why not on stderr (no stack trace) and exits 1. */
export async function connectOrExit(path: string, options: ConnectOptions = {}): Promise<GuiConnection> {
  try {
    return await GuiConnection.connect(path, options);
  } catch (err) {
    // One "bastion: " per line: the cause, then what to do about it.
    process.stderr.write(
      (err as Error).message
        .split('\n')
        .map((line) => `bastion: ${line}\n`)
        .join(''),
    );
    process.exit(1);
  }
}
