// `bastion monitor`: a live feed of decisions, one coloured line each (or JSON lines).
import type { Command } from 'commander';
import { visibleJson } from '../common/visibleText.js';
import { colorsFor } from './colors.js';
import { failOnError, replyOrError } from './commandRequests.js';
import { formatDecision, type DecisionMessage } from './decisionLine.js';
import { DEFAULTS } from './defaults.js';
import { connectOrExit } from './guiClient.js';

export function registerMonitorCommand(program: Command): void {
  program
    .command('monitor')
    .description('show decisions live: program, destination, port, protocol, verdict and what decided')
    .option('--socket <path>', 'GUI socket path', DEFAULTS.guiSocketPath)
    .option('--json', "print the service's decision messages as JSON lines")
    .action(async (opts: { socket: string; json?: boolean }) => {
      const conn = await connectOrExit(opts.socket, { client: 'bastion monitor' });
      const colors = colorsFor(process.stdout);
      conn.onMessage((m) => {
        if (m['type'] !== 'decision') return;
        if (opts.json) process.stdout.write(visibleJson(m) + '\n');
        else process.stdout.write(formatDecision(m as unknown as DecisionMessage, colors).join('\n') + '\n');
      });
      failOnError(await replyOrError(conn, { type: 'subscribe', feed: 'decisions' }, 'subscribed'));
      if (!opts.json) process.stderr.write(colors.dim('watching decisions (Ctrl-C stops)') + '\n');
      process.on('SIGINT', () => {
        conn.close();
        process.exit(0);
      });
      await conn.closed;
      process.stderr.write('bastion: the service closed the connection\n');
      process.exit(1);
    });
}
