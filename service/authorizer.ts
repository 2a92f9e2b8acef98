// Who may change rules or mode. polkit (issue 5) plugs in here; without it, only uid 0 may.
import type { PeerCredentials } from './gui/guiServer.js';

export type AuthorizationResult = { ok: true } | { ok: false; error: string };

export interface Authorizer {
  /** Checks a state-changing request from the peer process. */
  authorize(peer: PeerCredentials | null, action: string): Promise<AuthorizationResult>;
}

/** Minimal systems without polkit: edits only from root. */
export class RootOnlyAuthorizer implements Authorizer {
  async authorize(peer: PeerCredentials | null, action: string): Promise<AuthorizationResult> {
    if (peer && peer.uid === 0) return { ok: true };
    return { ok: false, error: `not authorized to ${action}: only root may change rules when polkit is disabled` };
  }
}
