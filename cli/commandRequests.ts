// What the socket commands (status, mode, rules …) share: one connection per command, and an
// `error` reply or a usage mistake ends the command with its message, escaped, on stderr.
import { visible } from '../common/visibleText.js';
import { connectOrExit, type GuiConnection } from './guiClient.js';

/** A connection for one command (`client`: how the service's log names it), closed after fn. */
export async function withConnection<T>(socket: string, fn: (c: GuiConnection) => Promise<T>, client = 'bastion'): Promise<T> {
  const conn = await connectOrExit(socket, { client });
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

/** message's reply of replyType on c, or an `error` (the service's, or no reply in time): never a rejection. */
export function replyOrError(c: GuiConnection, message: Record<string, unknown>, replyType: string, timeoutMs = 5000): Promise<Record<string, unknown>> {
  return c.request(message, replyType, timeoutMs).catch((err: Error) => ({ type: 'error', error: err.message }));
}

export interface RequestOptions {
  timeoutMs?: number;
  /** How the service's log names the connection. */
  client?: string;
}

/** One message on a connection of its own and its reply; an `error`, or no reply in time, ends the command. */
export async function requestOrExit(
  socket: string,
  message: Record<string, unknown>,
  replyType: string,
  options: RequestOptions = {},
): Promise<Record<string, unknown>> {
  return failOnError(await withConnection(socket, (c) => replyOrError(c, message, replyType, options.timeoutMs), options.client));
}
