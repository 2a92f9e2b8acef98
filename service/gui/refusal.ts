// A refused change must reach the person, not only the program: the Python tray and control
// panel ignore `error` messages (issue 12), so the refusal also goes out as a `notification`,
// which the tray shows as a balloon (gui-protocol.md, "Service -> client messages"). It is sent
// to the client that asked, whatever notifications_enabled says: it answers that client's own
// action. The daemon logs it too.
import type { Logger } from '../../common/log.js';
import type { GuiClient } from './guiServer.js';

export const REFUSED_TITLE = 'Bastion: change refused';

export function reportRefusal(client: GuiClient, log: Logger, request: string, error: string): void {
  client.send({ type: 'error', error, request });
  client.send({ type: 'notification', title: REFUSED_TITLE, message: error, level: 'warning' });
  log.warn({ client: client.id, peer: client.peer, request, error }, 'refused a change from a GUI client');
}

/** `always` without the right to edit rules: the answer stays, for this session and that uid only. */
export function reportDowngrade(client: GuiClient, log: Logger, key: string, uid: number, error: string): void {
  const message = `${error}. The answer for ${key} holds for this session only, for uid ${uid}'s programs; saving it as a rule needs an administrator.`;
  client.send({ type: 'error', error, request: 'gui_response' });
  client.send({ type: 'notification', title: 'Bastion: rule not saved', message, level: 'warning' });
  log.warn({ client: client.id, peer: client.peer, key, uid, error }, '"always" answer not authorized: kept as a session decision');
}
