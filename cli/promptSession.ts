// The logic of `bastion prompt`, apart from the terminal and the socket: a queue of connection
// requests shown one at a time with a countdown, answered by single keys. The service closes a
// request (cancel_popup) when another client answered it first or it timed out.
import type { ServiceMessage } from '../common/guiProtocol.js';
import { visible } from '../common/visibleText.js';
import type { Colors } from './colors.js';
import { actionForKey, describeAnswer, replyFor, TIMED_CHOICES, type ConnectionRequest, type Duration } from './promptKeys.js';
import { keysLine, requestLines } from './promptView.js';

export interface PromptSessionDeps {
  send(message: Record<string, unknown>): void;
  write(text: string): void;
  /** A terminal: the countdown line is redrawn in place. Otherwise every line is final. */
  tty: boolean;
  colors: Colors;
  /** The service's timeout_seconds, for the countdown. */
  timeoutSeconds: number;
  now(): number;
}

interface Queued {
  req: ConnectionRequest;
  receivedAt: number;
}

const CLEAR_LINE = '\r\x1b[2K';

export class PromptSession {
  private readonly queue: Queued[] = [];
  private allPorts = false;
  /** Which of TIMED_CHOICES `t`/`T` answer with; `w` steps on. */
  private timeIndex = 0;
  /** Whether the current request's keys line is on screen, unterminated (TTY only). */
  private lineOpen = false;

  constructor(private readonly deps: PromptSessionDeps) {}

  start(): void {
    this.showWaiting();
  }

  /** A message from the service, checked by common/guiProtocol.ts. */
  onMessage(m: ServiceMessage): void {
    switch (m.type) {
      case 'connection_request': {
        if (this.queue.some((q) => q.req.request_id === m.request_id)) return;
        this.queue.push({ req: m, receivedAt: this.deps.now() });
        if (this.queue.length === 1) this.show();
        else if (this.deps.tty) this.redraw(); // the "+N waiting" count
        return;
      }
      case 'cancel_popup': {
        const i = this.queue.findIndex((q) => q.req.request_id === m.request_id);
        if (i < 0) return;
        this.queue.splice(i, 1);
        if (i === 0) {
          this.finishLine(this.deps.colors.dim('→ decided elsewhere, or no answer in time'));
          this.showNext();
        }
        return;
      }
      case 'error':
        this.note(this.deps.colors.red(`service: ${visible(m.error)}`));
        return;
      default:
        return;
    }
  }

  /** Handles one key; returns 'quit' when the user wants out. */
  onKey(key: string): 'quit' | undefined {
    const action = actionForKey(key);
    const current = this.queue[0];
    switch (action.kind) {
      case 'quit':
        if (this.lineOpen) this.deps.write('\n');
        this.lineOpen = false;
        return 'quit';
      case 'toggle-all-ports':
        this.allPorts = !this.allPorts;
        if (current) this.redraw();
        return undefined;
      case 'skip':
        if (current?.req.learning_mode) {
          this.queue.shift();
          this.finishLine(this.deps.colors.dim('→ skipped'));
          this.showNext();
        }
        return undefined;
      case 'next-time':
        this.timeIndex = (this.timeIndex + 1) % TIMED_CHOICES.length;
        if (current) this.redraw();
        return undefined;
      case 'answer':
        if (current) this.answer(current.req, action.allow, action.duration);
        return undefined;
      case 'answer-timed':
        if (current) this.answer(current.req, action.allow, TIMED_CHOICES[this.timeIndex]!);
        return undefined;
      case 'none':
        return undefined;
    }
  }

  private answer(req: ConnectionRequest, allow: boolean, duration: Duration): void {
    const reply = replyFor(req, allow, duration, this.allPorts);
    if (reply) this.deps.send(reply);
    this.queue.shift();
    const said = req.learning_mode && !reply ? 'skipped (learning mode allowed it already)' : describeAnswer(allow, duration, this.allPorts);
    this.finishLine((allow ? this.deps.colors.green : this.deps.colors.red)(`→ ${said}`));
    this.showNext();
  }

  /** Once a second: the countdown. */
  tick(): void {
    if (this.deps.tty && this.queue[0] && !this.queue[0].req.learning_mode) this.redraw();
  }

  get waiting(): number {
    return this.queue.length;
  }

  private show(): void {
    const current = this.queue[0];
    if (!current) return;
    const c = this.deps.colors;
    this.deps.write('\n' + requestLines(current.req, c).join('\n') + '\n');
    this.deps.write(this.keys(current));
    if (this.deps.tty) this.lineOpen = true;
    else this.deps.write('\n');
  }

  private showNext(): void {
    this.allPorts = false;
    if (this.queue.length > 0) this.show();
    else this.showWaiting();
  }

  private showWaiting(): void {
    this.deps.write(this.deps.colors.dim('waiting for connection requests (q quits)') + '\n');
  }

  private redraw(): void {
    const current = this.queue[0];
    if (!current) return;
    if (this.deps.tty) this.deps.write(CLEAR_LINE + this.keys(current));
    else this.deps.write(this.keys(current) + '\n');
  }

  private keys(q: Queued): string {
    const left = q.req.learning_mode ? null : Math.ceil(this.deps.timeoutSeconds - (this.deps.now() - q.receivedAt) / 1000);
    return keysLine(q.req, left, this.allPorts, this.queue.length - 1, this.deps.colors, TIMED_CHOICES[this.timeIndex]!);
  }

  private finishLine(text: string): void {
    this.deps.write((this.lineOpen ? CLEAR_LINE : '') + `  ${text}\n`);
    this.lineOpen = false;
  }

  /** A message between prompts, keeping the current prompt's keys line intact below it. */
  private note(text: string): void {
    if (this.lineOpen) this.deps.write(CLEAR_LINE);
    this.deps.write(`  ${text}\n`);
    if (this.lineOpen && this.queue[0]) this.deps.write(this.keys(this.queue[0]));
  }
}
