// Decisions and opened prompts to the journal (decisionLine.ts says in which words), while
// config.json's journal_decisions is true (the default).
import type { Connection } from '../connection.js';
import type { DecisionEvent } from '../decider.js';
import { decisionEntry, promptEntry } from './decisionLine.js';
import type { JournalSink } from './journald.js';

export class DecisionJournal {
  constructor(
    private readonly sink: JournalSink,
    private readonly enabled: () => boolean,
  ) {}

  decision(event: DecisionEvent): void {
    if (this.enabled()) this.sink.write(decisionEntry(event));
  }

  promptOpened(conn: Connection): void {
    if (this.enabled()) this.sink.write(promptEntry(conn));
  }
}
