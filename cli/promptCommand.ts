// `bastion prompt`: answers connection requests in a terminal. Raw mode on a terminal, so one
// key answers; with stdin from a pipe every character is a key (scripts and tests).
import type { Command } from 'commander';
import { colorsFor } from './colors.js';
import { failOnError, replyOrError } from './commandRequests.js';
import { DEFAULTS } from './defaults.js';
import { connectOrExit } from './guiClient.js';
import { PromptSession } from './promptSession.js';

export function registerPromptCommand(program: Command): void {
  program
    .command('prompt')
    .description(
      'answer connection requests in this terminal (single keys: o/s/t/a allow once/session/for a time/always, O/S/T/A deny, w other time, p all ports)',
    )
    .option('--socket <path>', 'GUI socket path', DEFAULTS.guiSocketPath)
    .action(async (opts: { socket: string }) => {
      const conn = await connectOrExit(opts.socket, { answersPrompts: true, client: 'bastion prompt' });
      const status = failOnError(await replyOrError(conn, { type: 'status' }, 'status'));
      const timeoutSeconds = typeof status['timeout_seconds'] === 'number' ? status['timeout_seconds'] : 60;
      const stdin = process.stdin;
      const tty = Boolean(stdin.isTTY && process.stdout.isTTY);
      const session = new PromptSession({
        send: (m) => conn.send(m),
        write: (text) => process.stdout.write(text),
        tty,
        colors: colorsFor(process.stdout),
        timeoutSeconds,
        now: () => Date.now(),
      });
      const ticker = setInterval(() => session.tick(), 1000);
      const done = (code: number): void => {
        clearInterval(ticker);
        if (stdin.isTTY) stdin.setRawMode(false);
        conn.close();
        process.exit(code);
      };
      conn.onServiceMessage((m) => session.onMessage(m));
      void conn.closed.then(() => {
        process.stderr.write('bastion: the service closed the connection\n');
        done(1);
      });
      session.start();
      if (stdin.isTTY) stdin.setRawMode(true);
      stdin.setEncoding('utf8');
      stdin.on('data', (chunk: string) => {
        for (const key of chunk) if (session.onKey(key) === 'quit') done(0);
      });
      // Piped input that ends leaves the prompt showing requests until the service goes or SIGINT.
    });
}
