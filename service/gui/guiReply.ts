// What every GUI message handler shares: its type (it receives its message already parsed and
// checked by common/guiProtocol.ts), the error reply and the authorization check with its
// refusal (refusal.ts).
import type { ClientMessageOf, ClientMessageType } from '../../common/guiProtocol.js';
import type { GuiContext } from './guiMessages.js';
import type { GuiClient } from './guiServer.js';
import { reportRefusal } from './refusal.js';

export type Handler<T extends ClientMessageType> = (ctx: GuiContext, client: GuiClient, msg: ClientMessageOf<T>) => Promise<void> | void;

/** One handler per client message type, each given its own message's type. */
export type Handlers<T extends ClientMessageType = ClientMessageType> = { [K in T]: Handler<K> };

export const fail = (client: GuiClient, request: string | null, error: string): void => client.send({ type: 'error', error, request });

/** A refusal is an `error` plus a `notification` the tray shows, and a log line (refusal.ts). */
export async function authorized(ctx: GuiContext, client: GuiClient, type: string, action: string): Promise<boolean> {
  const result = await ctx.authorizer.authorize(client.peer, action);
  if (!result.ok) reportRefusal(client, ctx.log, type, result.error);
  return result.ok;
}
