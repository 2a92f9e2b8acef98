// `bastion log | head`: once the reader has what it wants it closes the pipe, and the next write
// fails with EPIPE. Node ignores SIGPIPE, so without a handler that write would end the command
// with an "Error: write EPIPE" stack trace. A closed stdout (or stderr) ends the command quietly
// with exit code 0, as a reader that stops early expects.
//
// Not for `bastion helper`, `daemon` or `run`: their stdout is their log, and a service must not
// stop because whoever read its log went away.
import type { Command } from 'commander';

/** The commands that run a service; every other command exits quietly on a closed stdout. */
export const SERVICE_COMMANDS: ReadonlySet<string> = new Set(['helper', 'daemon', 'run']);

export function exitQuietlyOnClosedOutput(
  streams: readonly NodeJS.EventEmitter[] = [process.stdout, process.stderr],
  exit: (code: number) => void = (code) => process.exit(code),
): void {
  for (const stream of streams) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') return exit(0);
      throw err;
    });
  }
}

/** Installs the handler before any client command runs (the top-level command's name decides). */
export function handleClosedOutput(program: Command): void {
  program.hook('preAction', (_root, action) => {
    let top = action;
    while (top.parent && top.parent !== program) top = top.parent;
    if (!SERVICE_COMMANDS.has(top.name())) exitQuietlyOnClosedOutput();
  });
}
