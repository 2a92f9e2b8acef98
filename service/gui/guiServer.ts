// The GUI socket (gui-protocol.md): a Unix stream socket, mode 0660, JSON lines both ways,
// many clients. One slow or hostile client never holds up the others: its writes are bounded
// and it is dropped when it stops reading.
import { lstatSync } from 'node:fs';
import net from 'node:net';
import { claimedType, type ServiceMessage } from '../../common/guiProtocol.js';
import { prepareSocketPath, removeSocketPath, restrictSocket } from '../../common/ipcPath.js';
import type { Logger } from '../../common/log.js';
import { loadNative } from '../../common/native.js';
import { readProcessStartTime } from '../../common/procStat.js';
import { LineReader } from './lineReader.js';

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
  /** The pid's start time when we accepted the connection (null: already gone): polkit checks need the same process. */
  startTime: number | null;
}

export interface GuiClient {
  readonly id: number;
  readonly peer: PeerCredentials | null;
  /** Bytes written to this client that it has not read yet. */
  readonly backlogBytes: number;
  send(message: ServiceMessage): void;
  close(): void;
}

export interface GuiServerOptions {
  path: string;
  socketGid: number | null;
  maxLineBytes: number;
  /** A client whose unread output exceeds this is dropped (it stopped reading). */
  maxPendingWriteBytes: number;
  maxClients: number;
  /** Lines read from one client but not handled yet; beyond, its socket is paused. Default 64. */
  maxQueuedLines?: number;
}

export interface GuiServerHandlers {
  onConnect(client: GuiClient): void;
  onMessage(client: GuiClient, message: unknown, line: string): void | Promise<void>;
  onDisconnect(client: GuiClient): void;
}

/**
 * How long a new client's first write waits unless it speaks first. The control panel connects,
 * writes one line and closes at once: had we greeted it in the iteration that accepted it, the
 * write would meet EPIPE, Node would destroy the socket, and its line would never be read.
 */
const FIRST_WRITE_GRACE_MS = 20;

class Client implements GuiClient {
  private closed = false;
  /** Until then (or until it has sent something), writes wait: see FIRST_WRITE_GRACE_MS. */
  private quietUntil = performance.now() + FIRST_WRITE_GRACE_MS;
  /** Messages of this turn of the event loop, written together after it has read its sockets. */
  private queued: string[] = [];
  private queuedBytes = 0;
  private flushScheduled = false;
  private endAfterFlush = false;

  constructor(
    readonly id: number,
    readonly peer: PeerCredentials | null,
    private readonly socket: net.Socket,
    private readonly maxPending: number,
    private readonly log: Logger,
  ) {}

  get backlogBytes(): number {
    return this.socket.writableLength + this.queuedBytes;
  }

  send(message: ServiceMessage): void {
    if (this.closed || this.socket.destroyed) return;
    if (this.backlogBytes > this.maxPending) {
      this.log.warn({ client: this.id, pending: this.backlogBytes }, 'GUI client stopped reading: dropped');
      this.close();
      return;
    }
    const line = JSON.stringify(message) + '\n';
    this.queued.push(line);
    this.queuedBytes += line.length;
    this.scheduleFlush();
  }

  /** Sends what is queued, then closes our side (after an over-long line, or the client's EOF). */
  end(): void {
    this.endAfterFlush = true;
    this.scheduleFlush();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queued = [];
    this.queuedBytes = 0;
    this.socket.destroy();
  }

  /** The client sent data: everything it wrote before hanging up is read, so writing is safe. */
  heard(): void {
    this.quietUntil = 0;
  }

  // Writes happen only in setImmediate, i.e. right after a poll phase: a client that wrote one
  // line and hung up (the control panel) has that line read before a write of ours can fail with
  // EPIPE and destroy the socket. Even the grace timer hands over to setImmediate, because after
  // the loop was blocked (an fsync) timers run before the poll phase that would read the line.
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    const wait = this.quietUntil - performance.now();
    if (wait > 0) setTimeout(() => setImmediate(() => this.flush()), wait);
    else setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.closed || this.socket.destroyed) return;
    if (this.queued.length > 0) {
      const text = this.queued.length === 1 ? this.queued[0]! : this.queued.join('');
      this.queued = [];
      this.queuedBytes = 0;
      this.socket.write(text);
    }
    if (this.endAfterFlush) {
      this.socket.end();
      this.socket.destroySoon();
    }
  }
}

export class GuiServer {
  private server: net.Server | null = null;
  private readonly clients = new Set<Client>();
  private nextId = 1;
  private createdDir = false;

  constructor(
    private readonly options: GuiServerOptions,
    private readonly handlers: GuiServerHandlers,
    private readonly log: Logger,
  ) {}

  get clientCount(): number {
    return this.clients.size;
  }

  allClients(): readonly GuiClient[] {
    return [...this.clients];
  }

  broadcast(message: ServiceMessage): void {
    for (const c of this.clients) c.send(message);
  }

  async listen(): Promise<void> {
    this.createdDir = prepareSocketPath(this.options.path, this.options.socketGid);
    const server = net.createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
    server.maxConnections = this.options.maxClients;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // A deep backlog: a Unix socket refuses (EAGAIN) rather than queues once it is full.
      server.listen({ path: this.options.path, backlog: 4096 }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error({ err }, 'GUI socket error'));
    // Node creates the socket with the umask; tighten before anyone can rely on it.
    restrictSocket(this.options.path, this.options.socketGid);
    if (lstatSync(this.options.path).mode & 0o007) throw new Error(`GUI socket ${this.options.path} is accessible to others`);
    this.server = server;
    this.log.info({ path: this.options.path }, 'GUI socket listening');
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.close();
    this.clients.clear();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    removeSocketPath(this.options.path, this.createdDir);
  }

  private accept(socket: net.Socket): void {
    const peer = peerOf(socket);
    const client = new Client(this.nextId++, peer, socket, this.options.maxPendingWriteBytes, this.log);
    this.clients.add(client);
    // Debug, as is the disconnect: every CLI call (`bastion status`) connects, and the journal
    // would fill with them. Refusals, with the peer, stay warnings (refusal.ts).
    this.log.debug({ client: client.id, peer }, 'GUI client connected');
    const reader = new LineReader(this.options.maxLineBytes);
    // Messages are handled one at a time per client, in order, even when a handler awaits.
    // A client that writes faster than it is served is paused, so its backlog stays bounded.
    let chain: Promise<void> = Promise.resolve();
    let queued = 0;
    const maxQueued = this.options.maxQueuedLines ?? 64;
    /** After an over-long line: nothing more is read from this client. */
    let hangingUp = false;
    const handle = (text: string): void => {
      if (++queued > maxQueued && !socket.isPaused()) socket.pause();
      chain = chain.then(async () => {
        await this.dispatch(client, text);
        if (--queued <= maxQueued / 2 && socket.isPaused() && !socket.destroyed && !hangingUp) socket.resume();
      });
    };

    socket.on('data', (chunk: Buffer) => {
      if (hangingUp) return;
      client.heard();
      for (const event of reader.push(chunk)) {
        if (event.kind === 'line') {
          handle(event.text);
          continue;
        }
        // The rest of the stream cannot be framed: stop reading it at once (a client pushing
        // 10 MB gets no further than the socket buffers), let the error go out, hang up.
        hangingUp = true;
        socket.pause();
        client.send({ type: 'error', error: `line longer than ${this.options.maxLineBytes} bytes`, request: null });
        client.end();
        return;
      }
    });
    socket.on('end', () => {
      for (const event of reader.finish()) if (event.kind === 'line') handle(event.text);
      void chain.then(() => client.end());
    });
    socket.on('error', (err) => this.log.debug({ client: client.id, err }, 'GUI client socket error')); // EPIPE etc.
    socket.on('close', () => {
      this.clients.delete(client);
      this.log.debug({ client: client.id }, 'GUI client disconnected');
      try {
        this.handlers.onDisconnect(client);
      } catch (err) {
        this.log.error({ err }, 'GUI disconnect handler failed');
      }
    });
    try {
      this.handlers.onConnect(client);
    } catch (err) {
      this.log.error({ err }, 'GUI connect handler failed');
    }
  }

  private async dispatch(client: Client, text: string): Promise<void> {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      client.send({ type: 'error', error: 'not valid JSON', request: null });
      return;
    }
    try {
      await this.handlers.onMessage(client, message, text);
    } catch (err) {
      this.log.error({ err, client: client.id }, 'GUI message handler failed');
      client.send({ type: 'error', error: 'internal error', request: claimedType(message) });
    }
  }
}

/** SO_PEERCRED of the client, and its start time now: who is asking, for logs and authorization. */
function peerOf(socket: net.Socket): PeerCredentials | null {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return null;
  try {
    const cred = loadNative().peerCred(fd);
    return { ...cred, startTime: readProcessStartTime(cred.pid) };
  } catch {
    return null;
  }
}
