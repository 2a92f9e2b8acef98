// `bastion agent` (the per-user desktop session service: notifications and the panel) and
// `bastion ui` (opens the panel). The agent listens for `bastion ui` on a socket in the user's
// runtime directory ($XDG_RUNTIME_DIR, mode 0700, owned by the user): whoever can connect there is
// the user, and gets a one-time login URL for the panel (panelAuth.ts).
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, unlinkSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { DEFAULT_HISTORY_PATH } from '../../common/history.js';
import { createLogger, type Logger } from '../../common/log.js';
import { visible } from '../../common/visibleText.js';
import { DEFAULTS } from '../defaults.js';
import { parsePasswd } from '../userNames.js';
import { DesktopAgent } from './desktopAgent.js';
import { DesktopEntries } from './desktopEntries.js';
import { DesktopNotifier } from './notifier.js';
import { PanelServer } from './panelServer.js';
import { SessionBus } from './sessionBus.js';

/** Where `bastion ui` finds the agent. */
export function controlSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  const runtime = env['XDG_RUNTIME_DIR'];
  if (!runtime) throw new Error('XDG_RUNTIME_DIR is not set: run the agent in a desktop session (systemctl --user start bastion-agent)');
  return join(runtime, 'bastion-agent.sock');
}

/** The bundled panel: dist/ui beside the compiled CLI, or in a source checkout after `npm run build:ui`. */
export function defaultAssetsDir(): string {
  const candidates = [fileURLToPath(new URL('../../ui', import.meta.url)), fileURLToPath(new URL('../../dist/ui', import.meta.url))];
  return candidates.find((d) => existsSync(join(d, 'panel.js'))) ?? candidates[0]!;
}

interface AgentOptions {
  socket: string;
  history: string;
  port: string;
  assets?: string;
  control?: string;
  openWith: string;
  notifications: boolean;
}

export function registerAgentCommands(program: Command): void {
  program
    .command('agent')
    .description('the desktop agent: shows prompts as desktop notifications and serves the control panel (bastion ui) on 127.0.0.1')
    .option('--socket <path>', 'GUI socket path', DEFAULTS.guiSocketPath)
    .option('--history <path>', 'the decision history the panel searches', DEFAULT_HISTORY_PATH)
    .option('--port <port>', 'the panel port on 127.0.0.1 (0: any free port)', '0')
    .option('--assets <dir>', 'the bundled panel (default: beside the program)')
    .option('--control <path>', 'the socket bastion ui asks (default: $XDG_RUNTIME_DIR/bastion-agent.sock)')
    .option('--open-with <command>', 'the program that opens the panel in a browser ("" = never open it)', 'xdg-open')
    .option('--no-notifications', 'no desktop notifications: prompts only in the panel')
    .action(async (opts: AgentOptions) => {
      const log = createLogger({ name: 'bastion-agent' });
      try {
        await runAgent(opts, log);
      } catch (err) {
        process.stderr.write(`bastion agent: ${visible((err as Error).message)}\n`);
        process.exit(1);
      }
    });

  program
    .command('ui')
    .description('open the control panel of the running desktop agent in a browser')
    .option('--control <path>', 'the agent socket (default: $XDG_RUNTIME_DIR/bastion-agent.sock)')
    .option('--print', 'print the one-time login URL instead of opening it')
    .action(async (opts: { control?: string; print?: boolean }) => {
      try {
        const url = await askLoginUrl(opts.control ?? controlSocketPath());
        if (opts.print) process.stdout.write(`${url}\n`);
        else openUrl('xdg-open', url);
      } catch (err) {
        process.stderr.write(`bastion ui: ${visible((err as Error).message)}\nbastion ui: is the agent running? systemctl --user status bastion-agent\n`);
        process.exit(1);
      }
    });
}

async function runAgent(opts: AgentOptions, log: Logger): Promise<void> {
  const controlPath = opts.control ?? controlSocketPath();
  // The autostart entry and the user unit may both start an agent: the second one leaves.
  if (
    await askLoginUrl(controlPath).then(
      () => true,
      () => false,
    )
  ) {
    log.info({ control: controlPath }, 'an agent already runs in this session');
    process.exit(0);
  }
  const port = Number(opts.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error('--port must be 0..65535');
  const names = new Map<number, string | null>();
  const userName = (uid: number): string | null => {
    if (!names.has(uid)) names.set(uid, parsePasswd(readPasswd(), new Set([uid])).get(uid) ?? null);
    return names.get(uid)!;
  };
  let panel: PanelServer | null = null;
  let lastOpened = 0;
  const openPanel = (asked: boolean): void => {
    // Unasked, at most every 30 s and never while a page is open: it would take the focus from the user.
    if (!panel || opts.openWith === '') return;
    if (!asked && (panel.pages > 0 || Date.now() - lastOpened < 30_000)) return;
    lastOpened = Date.now();
    openUrl(opts.openWith, panel.auth.loginUrl());
  };

  let notifier: DesktopNotifier | null = null;
  let bus: SessionBus | null = null;
  const agent: DesktopAgent = new DesktopAgent({
    socketPath: opts.socket,
    get notifier() {
      return notifier;
    },
    entries: new DesktopEntries(),
    userName,
    openPanel,
    log,
    now: Date.now,
    onNoAccess: (message) => {
      process.stderr.write(`bastion agent: ${visible(message)}\n`);
      process.exit(0);
    },
  });
  if (opts.notifications) {
    try {
      bus = await SessionBus.connect();
      notifier = await DesktopNotifier.start(bus, {
        onAction: (id, key) => agent.onNotificationAction(id, key),
        onClosed: (id) => agent.onNotificationClosed(id),
      });
    } catch (err) {
      log.warn({ reason: (err as Error).message }, 'no session bus');
    }
    if (!notifier) log.warn('no notification server on the session bus: prompts are shown in the panel (bastion ui)');
  }

  panel = new PanelServer({ agent, assetsDir: opts.assets ?? defaultAssetsDir(), historyPath: opts.history, port, log });
  const listening = await panel.listen();
  const control = await serveControl(controlPath, panel);
  await agent.start();
  log.info({ port: listening, notifications: notifier ? notifier.capabilities : 'none' }, 'agent started');

  const stop = (): void => {
    agent.stop();
    bus?.close();
    control.close();
    void panel.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

function readPasswd(): string {
  try {
    return readFileSync('/etc/passwd', 'utf8');
  } catch {
    return '';
  }
}

/** The control socket: POST /login-url answers a one-time login URL for the panel. */
async function serveControl(path: string, panel: PanelServer): Promise<http.Server> {
  // A socket left by an agent that was killed; never anything else (no symlink is followed).
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // none there
  }
  mkdirSync(join(path, '..'), { recursive: true, mode: 0o700 });
  const server = http.createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/login-url') {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end(panel.auth.loginUrl());
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return server;
}

export function askLoginUrl(controlPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: controlPath, path: '/login-url', method: 'POST', timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () =>
        res.statusCode === 200 && body.startsWith('http://127.0.0.1:') ? resolve(body) : reject(new Error(`the agent answered ${res.statusCode}`)),
      );
    });
    req.on('error', (err) => reject(new Error(`cannot reach the agent at ${controlPath}: ${err.message}`)));
    req.end();
  });
}

function openUrl(command: string, url: string): void {
  const child = spawn(command, [url], { stdio: 'ignore', detached: true });
  child.on('error', () => undefined);
  child.unref();
}
