// The real `bastion daemon` on its own (no helper): enough for everything on the GUI socket
// that needs no verdict. Files live in a temporary directory that stop() removes.
import { readFileSync, writeFileSync } from 'node:fs';
import { GuiConnection } from '../../cli/guiClient.js';
import { startBastion, tempDir, type BastionProcess } from './bastion.js';

export interface GuiDaemonSetup {
  rules?: Record<string, unknown> | string;
  config?: Record<string, unknown>;
  /** The daemon's log level (default info). */
  logLevel?: string;
  /** More `bastion daemon` options, e.g. --mode. */
  args?: string[];
}

export class GuiDaemon {
  readonly dir = tempDir('bastion-gui-');
  readonly socket = `${this.dir.path}/gui.sock`;
  readonly rulesPath = `${this.dir.path}/rules.json`;
  readonly configPath = `${this.dir.path}/config.json`;
  proc: BastionProcess | null = null;

  private constructor(setup: GuiDaemonSetup) {
    if (setup.rules !== undefined) {
      writeFileSync(this.rulesPath, typeof setup.rules === 'string' ? setup.rules : JSON.stringify(setup.rules, null, 2));
    }
    writeFileSync(this.configPath, JSON.stringify(setup.config ?? { mode: 'enforcement' }, null, 2));
  }

  static async start(setup: GuiDaemonSetup = {}): Promise<GuiDaemon> {
    const d = new GuiDaemon(setup);
    try {
      d.proc = startBastion(
        [
          'daemon',
          '--config',
          d.configPath,
          '--rules',
          d.rulesPath,
          '--endpoint',
          `ipc://${d.dir.path}/helper.sock`,
          '--socket',
          d.socket,
          '--socket-group',
          'root',
          '--no-polkit',
          '--state-dir',
          d.dir.path,
          ...(setup.args ?? []),
        ],
        undefined,
        setup.logLevel,
      );
      await d.proc.waitFor('GUI socket listening');
    } catch (err) {
      await d.stop();
      throw err;
    }
    return d;
  }

  get pid(): number {
    return this.proc!.child.pid!;
  }

  /** One request on a fresh connection, as the CLI makes it. */
  async request(message: Record<string, unknown>, replyType: string): Promise<Record<string, unknown>> {
    const conn = await GuiConnection.connect(this.socket);
    try {
      return await conn.request(message, replyType);
    } finally {
      conn.close();
    }
  }

  async rules(): Promise<Record<string, unknown>> {
    return (await this.request({ type: 'list_rules' }, 'rules_list'))['rules'] as Record<string, unknown>;
  }

  rulesFile(): string {
    return readFileSync(this.rulesPath, 'utf8');
  }

  async stop(): Promise<void> {
    await this.proc?.stop();
    this.dir.remove();
  }
}
