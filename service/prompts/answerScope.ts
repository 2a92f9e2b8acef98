// How long a prompt answer lasts (gui-protocol.md, gui_response): `once` = this connection
// only, `session` = until the service restarts, `always` = saved as a rule (as is
// `permanent: true` with an empty duration), and the extension "30s" / "5m" / "1h" / "2d".
export type AnswerScope = { kind: 'once' } | { kind: 'session' } | { kind: 'timed'; ttlMs: number } | { kind: 'always' };

export type ParsedScope = { ok: true; scope: AnswerScope } | { ok: false; error: string };

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
/** Longer than this is not "for a while" any more: that is what `always` is for. */
export const MAX_TIMED_MS = 365 * UNIT_MS.d;
const TIMED = /^([0-9]{1,6})([smhd])$/;

export const DURATION_ERROR = 'field "duration" must be "once", "session", "always" or a time such as "30s", "5m", "1h"';

export function parseAnswerScope(duration: string, permanent: boolean): ParsedScope {
  switch (duration) {
    case '':
      // The tray's older popups send only `permanent`.
      return { ok: true, scope: permanent ? { kind: 'always' } : { kind: 'once' } };
    case 'once':
    case 'session':
    case 'always':
      return { ok: true, scope: { kind: duration } };
  }
  const m = TIMED.exec(duration);
  if (!m) return { ok: false, error: DURATION_ERROR };
  const ttlMs = Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  if (ttlMs <= 0 || ttlMs > MAX_TIMED_MS) return { ok: false, error: `field "duration" must be between 1s and 365d, got "${duration}"` };
  return { ok: true, scope: { kind: 'timed', ttlMs } };
}

/** A `gui_response` as the dispatcher validated it (defaults applied). */
export interface PromptAnswer {
  requestId: string;
  allow: boolean;
  permanent: boolean;
  allPorts: boolean;
  duration: string;
}
