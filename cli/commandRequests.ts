// What the socket commands (status, mode, rules …) share: one connection per command, and an
// `error` reply or a usage mistake ends the command with its message, escaped, on stderr.
import { visible } from '../common/visibleText.js';
import { connectOrExit, type GuiConnection } from './guiClient.js';

export async function withConnection<T>(socket: string, fn: (c: GuiConnection) => Promise<T>): Promise<T> {
  const conn = await connectOrExit(socket);
  try {
    return await fn(conn);
  } finally {
    conn.close();
  }
}

/** Exits with the message (which the service or a user may have written: shown escaped). */
export function die(message: string, code = 1): never {
  process.stderr.write(`bastion: ${visible(message)}\n`);
  process.exit(code);
}

/** The reply, unless it is an `error`: then the command ends with it. */
export function failOnError(reply: Record<string, unknown>): Record<string, unknown> {
  if (reply['type'] === 'error') die(String(reply['error']));
  return reply;
}
