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

/** How long a change waits for its reply: the service asks polkit first, which may show a password dialog (up to 2 minutes). */
export const AUTHORIZED_REPLY_MS = 130_000;

/** One message on a connection of its own and its reply; an `error`, or no reply in time, ends the command. */
export async function requestOrExit(socket: string, message: Record<string, unknown>, replyType: string, timeoutMs = 5000): Promise<Record<string, unknown>> {
  const reply = await withConnection(socket, (c) => c.request(message, replyType, timeoutMs).catch((err: Error) => ({ type: 'error', error: err.message })));
  return failOnError(reply);
}
