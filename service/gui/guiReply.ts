// What every GUI message handler shares: the error reply, typed field access and the
// authorization check with its refusal (refusal.ts).
import type { GuiContext } from './guiMessages.js';
import type { GuiClient } from './guiServer.js';
import { reportRefusal } from './refusal.js';

export type Msg = Record<string, unknown>;

export const fail = (client: GuiClient, request: string | null, error: string): void => client.send({ type: 'error', error, request });

export function field<T extends 'string' | 'boolean' | 'number'>(
  msg: Msg,
  name: string,
  kind: T,
  required: boolean,
): { ok: true; value: (T extends 'string' ? string : T extends 'boolean' ? boolean : number) | undefined } | { ok: false; error: string } {
  const v = msg[name];
  if (v === undefined || v === null) return required ? { ok: false, error: `missing field "${name}"` } : { ok: true, value: undefined };
  if (typeof v !== kind) return { ok: false, error: `field "${name}" must be a ${kind}` };
  return { ok: true, value: v as never };
}

/** A refusal is an `error` plus a `notification` the tray shows, and a log line (refusal.ts). */
export async function authorized(ctx: GuiContext, client: GuiClient, type: string, action: string): Promise<boolean> {
  const result = await ctx.authorizer.authorize(client.peer, action);
  if (!result.ok) reportRefusal(client, ctx.log, type, result.error);
  return result.ok;
}
