// Who may change rules or mode (gui-protocol.md, "Authorization"). By default polkit decides,
// for the peer process of the GUI socket; `bastion daemon --no-polkit` (minimal systems)
// allows edits only from uid 0.
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { parseStat, readProcessStartTime } from '../common/procStat.js';
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

/** The action of polkit/com.bastion.firewall.policy; its owner (user bastion) may check it for other users. */
export const MANAGE_RULES_ACTION = 'com.bastion.firewall.manage-rules';

export interface PolkitOptions {
  actionId: string;
  /** pkcheck(1), looked up in PATH unless absolute. */
  pkcheck: string;
  /**
   * Let polkit ask the peer's session (its authentication agent) for a password:
   * `auth_admin_keep` needs it. Without an agent polkit answers "not authorized" at once.
   */
  allowUserInteraction: boolean;
  /** How long one check may take, a password dialog included. */
  timeoutMs: number;
  procRoot: string;
}

export const DEFAULT_POLKIT_OPTIONS: Readonly<PolkitOptions> = Object.freeze({
  actionId: MANAGE_RULES_ACTION,
  pkcheck: 'pkcheck',
  allowUserInteraction: true,
  timeoutMs: 120_000,
  procRoot: '/proc',
});

/** How pkcheck ended: its exit code, or null when it could not run or was killed. */
export interface PkcheckOutcome {
  code: number | null;
  /** Why it did not run or finish (spawn error, timeout), or its stderr. */
  detail: string;
  /** ENOENT: pkcheck is not installed. */
  missing: boolean;
}

export type PkcheckRunner = (file: string, args: readonly string[], timeoutMs: number) => Promise<PkcheckOutcome>;

/**
 * Asks polkit (through pkcheck) whether the peer process may perform `actionId`. The subject
 * is `pid,start-time,uid`: the start time, read when the client connected, ties the check to
 * the very process that connected. A client may hand its socket to another process and exit,
 * and its pid may then name a new process: so the pid must still have that start time when a
 * request comes, or the request is refused. The uid is the one SO_PEERCRED reported, not
 * whatever owns the pid now. Root is authorized without asking, as polkit itself always does: that keeps
 * `sudo bastion rules add` working where polkitd is not running.
 */
export class PolkitAuthorizer implements Authorizer {
  private readonly options: PolkitOptions;

  constructor(
    options: Partial<PolkitOptions> = {},
    private readonly run: PkcheckRunner = runPkcheck,
  ) {
    this.options = { ...DEFAULT_POLKIT_OPTIONS, ...options };
  }

  /** Whether pkcheck can be found: the daemon warns at start when it cannot. */
  pkcheckAvailable(path = process.env['PATH'] ?? ''): boolean {
    return findExecutable(this.options.pkcheck, path) !== null;
  }

  async authorize(peer: PeerCredentials | null, action: string): Promise<AuthorizationResult> {
    const refuse = (why: string): AuthorizationResult => ({ ok: false, error: `not authorized to ${action}: ${why}` });
    if (!peer) return refuse('the requesting process is unknown (no peer credentials)');
    if (peer.uid === 0) return { ok: true };
    if (peer.startTime === null) return refuse(`the process that connected (pid ${peer.pid}) was gone before it was accepted`);
    const startTime = readProcessStartTime(peer.pid, this.options.procRoot);
    if (startTime !== peer.startTime) {
      return refuse(`the process that connected (pid ${peer.pid}) is gone${startTime === null ? '' : '; its pid now names another process'}`);
    }
    const { actionId } = this.options;
    const args = [
      '--action-id',
      actionId,
      '--process',
      `${peer.pid},${startTime},${peer.uid}`,
      ...(this.options.allowUserInteraction ? ['--allow-user-interaction'] : []),
    ];
    const outcome = await this.run(this.options.pkcheck, args, this.options.timeoutMs);
    // pkcheck(1): 0 authorized, 1 not, 2 needs authentication that could not happen, 3 dialog dismissed.
    switch (outcome.code) {
      case 0:
        return { ok: true };
      case 1:
        return refuse(`polkit denied ${actionId} to uid ${peer.uid}`);
      case 2:
        return refuse(`${actionId} needs authentication and no polkit authentication agent of uid ${peer.uid} answered`);
      case 3:
        return refuse('the authentication dialog was dismissed');
      default:
        if (outcome.missing) return refuse('pkcheck is not installed (install polkitd, or run the service with --no-polkit)');
        return refuse(`the polkit check failed (${outcome.detail || `pkcheck exit code ${outcome.code}`}); is polkitd running?`);
    }
  }
}

/** Runs pkcheck with a time limit; never rejects. */
export function runPkcheck(file: string, args: readonly string[], timeoutMs: number): Promise<PkcheckOutcome> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 }, (err, _stdout, stderr) => {
      if (!err) return resolve({ code: 0, detail: '', missing: false });
      const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean };
      if (e.code === 'ENOENT') return resolve({ code: null, detail: `${file} not found`, missing: true });
      if (e.killed) return resolve({ code: null, detail: `no answer within ${formatMs(timeoutMs)}`, missing: false });
      if (typeof e.code === 'number') return resolve({ code: e.code, detail: lastLine(stderr), missing: false });
      resolve({ code: null, detail: e.message, missing: false });
    });
  });
}

function formatMs(ms: number): string {
  return ms >= 1000 ? `${Math.round(ms / 1000)} s` : `${ms} ms`;
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return lines[lines.length - 1]?.trim() ?? '';
}

export { readProcessStartTime };

export function parseStartTime(stat: string): number | null {
  return parseStat(stat)?.startTime ?? null;
}

function findExecutable(name: string, path: string): string | null {
  const candidates = name.includes('/')
    ? [name]
    : path
        .split(delimiter)
        .filter(Boolean)
        .map((dir) => join(dir, name));
  for (const file of candidates) {
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return null;
}
