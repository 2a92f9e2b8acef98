// The helper's half of inbound protection: the service says whether it is wanted
// (config.json inbound_protection); the helper finds whether another inbound firewall drops,
// installs its own chains only when none does, re-checks while it is wanted (a firewall
// enabled later takes over, a chain someone flushed comes back), reports each state, and
// removes its chains when it is no longer wanted and at stop.
import type { Logger } from '../../common/log.js';
import type { InboundState } from '../../common/wire.js';
import type { OtherFirewall } from './inboundDetect.js';
import type { InboundRules } from './inboundRules.js';

/** What this needs of InboundRules (tests give a fake). */
export type InboundChains = Pick<InboundRules, 'chain' | 'install' | 'remove' | 'allInstalled' | 'anyInstalled'>;

export interface InboundProtectionDeps {
  rules: InboundChains;
  detect: () => Promise<OtherFirewall | null>;
  report: (state: InboundState) => void;
  log: Logger;
  /** How often the state is re-checked while protection is wanted. */
  recheckMs: number;
}

export class InboundProtection {
  private wanted = false;
  private ours = false;
  private last: InboundState | null = null;
  private timer: NodeJS.Timeout | null = null;
  private tail: Promise<void> = Promise.resolve();

  constructor(private readonly deps: InboundProtectionDeps) {}

  get state(): InboundState | null {
    return this.last;
  }

  /** The service's policy; the state is reported afterwards, changed or not. */
  apply(enabled: boolean): Promise<void> {
    this.wanted = enabled;
    if (enabled && !this.timer) {
      this.timer = setInterval(() => void this.serialized(() => this.reconcile(false)), this.deps.recheckMs);
      this.timer.unref();
    }
    if (!enabled && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
    return this.serialized(() => this.reconcile(true));
  }

  /** Helper stopping: our chains go with it (the old daemon's bastion-cleanup-inbound). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.wanted = false;
    await this.serialized(async () => {
      if (this.ours) await this.removeOurs();
    });
  }

  private async reconcile(alwaysReport: boolean): Promise<void> {
    let next: InboundState;
    try {
      next = await this.decide();
    } catch (err) {
      const detail = err instanceof Error ? err.message : String(err);
      next = { state: 'error', firewall: '', detail };
    }
    const changed = JSON.stringify(next) !== JSON.stringify(this.last);
    if (changed) {
      const level = next.state === 'error' ? 'error' : 'info';
      this.deps.log[level]({ inbound: next }, `inbound protection: ${next.state}`);
    }
    this.last = next;
    if (changed || alwaysReport) this.deps.report(next);
  }

  private async decide(): Promise<InboundState> {
    if (!this.wanted) {
      if (this.ours || (await this.deps.rules.anyInstalled())) await this.removeOurs();
      return { state: 'off', firewall: '', detail: 'inbound_protection is false' };
    }
    const other = await this.deps.detect();
    if (other) {
      if (this.ours) await this.removeOurs();
      return { state: 'other', firewall: other.kind, detail: other.detail };
    }
    if (!this.ours || !(await this.deps.rules.allInstalled())) {
      await this.deps.rules.install();
      this.ours = true;
    }
    return { state: 'bastion', firewall: '', detail: `chain ${this.deps.rules.chain} at the end of INPUT` };
  }

  private async removeOurs(): Promise<void> {
    await this.deps.rules.remove();
    this.ours = false;
  }

  private serialized(task: () => Promise<void>): Promise<void> {
    const run = this.tail.then(task);
    this.tail = run.catch((err: unknown) => this.deps.log.error({ err }, 'inbound protection failed'));
    return this.tail;
  }
}
