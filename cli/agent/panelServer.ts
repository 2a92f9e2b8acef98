// The control panel's HTTP server, on 127.0.0.1 for the agent's user only (panelAuth.ts says how).
// It serves the bundled page (ui/panel, built by scripts/build-ui.mjs; nothing is fetched from the
// network), a JSON API over the agent, and one event stream per page that batches what happened:
// a page never gets more than one message per BATCH_MS, however many decisions the firewall makes.
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { parseClientMessage, type ClientMessageType } from '../../common/guiProtocol.js';
import type { Logger } from '../../common/log.js';
import type { PanelBatch, PanelPrompt, PanelState } from '../../common/panelApi.js';
import type { Duration } from '../promptKeys.js';
import type { AgentEvent, DesktopAgent, PendingPrompt } from './desktopAgent.js';
import { iconFile } from './desktopEntries.js';
import { searchFromParams, searchHistoryFile } from './historyView.js';
import { PanelAuth, SECURITY_HEADERS } from './panelAuth.js';

const BATCH_MS = 250;
/** Decisions one batch carries at most; the page is told how many more there were. */
const BATCH_DECISIONS = 200;
const MAX_BODY_BYTES = 64 * 1024;
const DURATION = /^(once|session|always|[0-9]{1,6}[smhd])$/;

/** What the panel may ask the service, and the reply each waits for. */
const FORWARDED: Partial<Record<ClientMessageType, string>> = {
  add_rule: 'rules_list',
  delete_rule: 'rule_deleted',
  list_rules: 'rules_list',
  set_mode: 'mode_changed',
  set_config: 'config_changed',
  get_config: 'config',
  status: 'status',
};

const ASSETS: Readonly<Record<string, string>> = {
  '/': 'index.html',
  '/index.html': 'index.html',
  '/panel.js': 'panel.js',
  '/panel.css': 'panel.css',
  '/icon.svg': 'icon.svg',
};

const TYPES: Readonly<Record<string, string>> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
};

export interface PanelServerOptions {
  agent: DesktopAgent;
  assetsDir: string;
  historyPath: string;
  /** 0: any free port. */
  port: number;
  log: Logger;
}

export function promptJson(p: PendingPrompt): PanelPrompt {
  return { request_id: p.request.request_id, learning_mode: p.request.learning_mode, received_at: p.receivedAt, dest_port: p.request.dest_port, ...p.facts };
}

export class PanelServer {
  readonly auth: PanelAuth;
  private readonly server: http.Server;
  private readonly streams = new Set<ServerResponse>();
  private batch: PanelBatch = emptyBatch();
  private timer: NodeJS.Timeout | null = null;
  private readonly assets = new Map<string, Buffer>();

  constructor(private readonly o: PanelServerOptions) {
    this.auth = new PanelAuth(o.port);
    for (const file of new Set(Object.values(ASSETS))) this.assets.set(file, readFileSync(join(o.assetsDir, file)));
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: Error) => {
        o.log.error({ err }, 'panel request failed');
        if (!res.headersSent) this.send(res, 500, { error: 'internal error' });
        else res.end();
      });
    });
    o.agent.subscribe((e) => this.onEvent(e));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host: '127.0.0.1', port: this.o.port }, () => resolve());
    });
    const port = (this.server.address() as { port: number }).port;
    this.auth.setPort(port);
    return port;
  }

  get pages(): number {
    return this.streams.size;
  }

  async close(): Promise<void> {
    for (const s of this.streams) s.end();
    if (this.timer) clearTimeout(this.timer);
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const origin = this.auth.checkOrigin(req);
    if (!origin.ok) return this.refuse(req, res, origin.why);
    if (url.pathname === '/login' && req.method === 'GET') {
      if (!this.auth.redeem(url.searchParams.get('t') ?? '')) return this.refuse(req, res, 'login link used or expired');
      res.writeHead(303, { ...SECURITY_HEADERS, 'Set-Cookie': this.auth.setCookie(), Location: '/' });
      res.end();
      return;
    }
    const session = this.auth.checkCookie(req);
    if (!session.ok) return this.refuse(req, res, session.why);

    const asset = ASSETS[url.pathname];
    if (asset && req.method === 'GET') {
      res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': TYPES[asset.slice(asset.lastIndexOf('.') + 1)]! });
      res.end(this.assets.get(asset));
      return;
    }
    switch (`${req.method} ${url.pathname}`) {
      case 'GET /api/state':
        return this.send(res, 200, this.state());
      case 'GET /api/events':
        return this.openStream(res);
      case 'GET /api/history': {
        const search = searchFromParams(url.searchParams);
        if (typeof search === 'string') return this.send(res, 400, { error: search });
        try {
          const found = await searchHistoryFile(this.o.historyPath, search, Date.now());
          return typeof found === 'string' ? this.send(res, 400, { error: found }) : this.send(res, 200, found);
        } catch (err) {
          return this.send(res, 503, { error: `cannot read the history: ${(err as Error).message}` });
        }
      }
      case 'GET /api/icon':
        return this.icon(url.searchParams.get('r') ?? '', res);
      case 'POST /api/answer':
        return this.answer(req, res);
      case 'POST /api/send':
        return this.forward(req, res);
      default:
        return this.send(res, 404, { error: 'not found' });
    }
  }

  private refuse(req: IncomingMessage, res: ServerResponse, why: string): void {
    this.o.log.warn({ why, method: req.method, path: (req.url ?? '').slice(0, 200) }, 'panel request refused');
    this.send(res, 403, { error: 'forbidden' });
  }

  private send(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  private state(): PanelState {
    const a = this.o.agent;
    return {
      connected: a.connected,
      notifications: a.notifications,
      timeout_seconds: a.timeoutSeconds,
      stats: a.stats,
      prompts: [...a.prompts.values()].map(promptJson),
    };
  }

  /** A prompt's program icon (from its desktop entry), for the page's <img>. */
  private icon(requestId: string, res: ServerResponse): void {
    const icon = this.o.agent.prompts.get(requestId)?.facts.icon ?? null;
    const file = icon === null ? null : iconFile(icon);
    if (file === null) return this.send(res, 404, { error: 'no icon' });
    let data: Buffer;
    try {
      data = readFileSync(file);
    } catch {
      return this.send(res, 404, { error: 'no icon' });
    }
    // An SVG under this page's policy runs no script even when opened by itself.
    res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': file.endsWith('.svg') ? 'image/svg+xml' : 'image/png' });
    res.end(data);
  }

  private async answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJson(req);
    const b = body as Record<string, unknown> | null;
    if (
      !b ||
      typeof b['request_id'] !== 'string' ||
      typeof b['allow'] !== 'boolean' ||
      typeof b['duration'] !== 'string' ||
      !DURATION.test(b['duration']) ||
      typeof b['all_ports'] !== 'boolean'
    ) {
      return this.send(res, 400, { error: 'an answer needs request_id, allow, duration (once, session, always or 30s/5m/1h/1d) and all_ports' });
    }
    const open = this.o.agent.prompts.has(b['request_id']);
    this.o.agent.answer({ requestId: b['request_id'], allow: b['allow'], duration: b['duration'] as Duration, allPorts: b['all_ports'] });
    this.send(res, open ? 200 : 409, open ? { ok: true } : { error: 'that prompt is no longer open' });
  }

  private async forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const parsed = parseClientMessage(await readJson(req));
    if (!parsed.ok) return this.send(res, 400, { error: parsed.error });
    const replyType = FORWARDED[parsed.message.type];
    if (replyType === undefined) return this.send(res, 400, { error: `the panel does not send ${parsed.message.type}` });
    // add_rule has no reply of its own: the rule list after it shows it saved, or an error comes first.
    const then = parsed.message.type === 'add_rule' ? ({ type: 'list_rules' } as const) : undefined;
    const reply = await this.o.agent.request(parsed.message, replyType, then).catch((err: Error) => ({ type: 'error', error: err.message }));
    this.send(res, reply['type'] === 'error' ? 409 : 200, reply);
  }

  private openStream(res: ServerResponse): void {
    res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'text/event-stream', Connection: 'keep-alive' });
    res.write(': hello\n\n');
    this.streams.add(res);
    this.o.agent.setFeed(true);
    res.on('close', () => {
      this.streams.delete(res);
      if (this.streams.size === 0) this.o.agent.setFeed(false);
    });
  }

  private onEvent(e: AgentEvent): void {
    if (this.streams.size === 0) return;
    const b = this.batch;
    switch (e.kind) {
      case 'prompt':
        b.opened.push(promptJson(e.prompt));
        break;
      case 'prompt-closed':
        b.closed.push(e.requestId);
        break;
      case 'stats':
        b.stats = e.stats;
        break;
      case 'decision':
        if (b.decisions.length >= BATCH_DECISIONS) b.skipped += e.decision.connections;
        else b.decisions.push(e.decision);
        break;
      case 'notice':
        if (b.notices.length < 20) b.notices.push({ title: e.title, message: e.message, level: e.level });
        break;
      case 'link':
        b.connected = e.connected;
        break;
    }
    // Prompts go out at once; everything else waits for the batch.
    const urgent = e.kind === 'prompt' || e.kind === 'prompt-closed';
    if (urgent) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), BATCH_MS);
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const text = `data: ${JSON.stringify(this.batch)}\n\n`;
    this.batch = emptyBatch();
    for (const s of this.streams) s.write(text);
  }
}

function emptyBatch(): PanelBatch {
  return { opened: [], closed: [], decisions: [], skipped: 0, notices: [] };
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return null;
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    return null;
  }
}
