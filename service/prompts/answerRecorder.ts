// What a prompt answer leaves behind besides the verdicts of the waiting connections: a session
// decision (`session`, timed) or a saved rule (`always`). Session decisions are bound to the uid
// whose process was asked about. Saving a rule is a rule change, so it is authorized for the
// answering peer (gui-protocol.md, "Authorization"); when that is refused, the answer still
// decides the waiting connections (answering needs only the socket) and stays as a session
// decision for that uid, and the client is told so (an error and a notification).
import type { Logger } from '../../common/log.js';
import type { Authorizer } from '../authorizer.js';
import type { GuiClient } from '../gui/guiServer.js';
import { reportDowngrade } from '../gui/refusal.js';
import { formatRuleKey, type RulePort } from '../rules/ruleKey.js';
import type { RulesStore } from '../rules/rulesStore.js';
import type { SessionDecisions } from '../sessions.js';
import type { AnswerScope } from './answerScope.js';

export interface AnswerRecorderDeps {
  sessions: SessionDecisions;
  rules: Pick<RulesStore, 'setRule'>;
  authorizer: Authorizer;
  log: Logger;
}

export interface Recorded {
  /** The session/rule key the answer is stored under; null for `once`. */
  key: string | null;
  /** Settles when a rule is saved or refused (at once for other scopes). */
  saved: Promise<void>;
}

export class AnswerRecorder {
  constructor(private readonly deps: AnswerRecorderDeps) {}

  /** `uid`: whose process was asked about; a session decision applies to that uid's processes only. */
  record(client: GuiClient, uid: number, subject: string, port: RulePort, allow: boolean, scope: AnswerScope): Recorded {
    if (scope.kind === 'once') return { key: null, saved: Promise.resolve() };
    const key = formatRuleKey(subject, port);
    // In memory first, synchronously: the program's next connection must already match, even
    // while a rule is still being authorized and written.
    this.deps.sessions.set(uid, subject, port, allow, scope.kind === 'timed' ? scope.ttlMs : null);
    if (scope.kind !== 'always') return { key, saved: Promise.resolve() };
    return { key, saved: this.saveRule(client, uid, subject, port, allow, key) };
  }

  private async saveRule(client: GuiClient, uid: number, subject: string, port: RulePort, allow: boolean, key: string): Promise<void> {
    let keepSession = false;
    try {
      const auth = await this.deps.authorizer.authorize(client.peer, 'add rules');
      if (!auth.ok) {
        keepSession = true;
        reportDowngrade(client, this.deps.log, key, uid, auth.error);
        return;
      }
      const saved = await this.deps.rules.setRule(subject, port, allow);
      if (!saved.ok) client.send({ type: 'error', error: saved.error, request: 'gui_response' });
      else this.deps.log.info({ key, allow }, 'rule saved from a prompt answer');
    } catch (err) {
      this.deps.log.error({ err, key }, 'saving a rule from a prompt answer failed');
      client.send({ type: 'error', error: 'internal error', request: 'gui_response' });
    } finally {
      // A saved rule decides from now on (and deleting it in the control panel must take
      // effect); a rule that failed to save leaves nothing. Only a refused one stays as a session.
      if (!keepSession) this.deps.sessions.forget(key, uid);
    }
  }
}
