// Who may use the panel: the browser of the user the agent runs as. The server listens on
// 127.0.0.1 only, where every local user can connect, so every request must carry the agent's
// per-session secret as a cookie (HttpOnly: no script reads it; SameSite=Strict: no other site's
// page sends it). The secret reaches the browser once, through a one-time login URL that only the
// user can get (`bastion ui` asks over a socket in the user's 0700 runtime directory). Host and
// Origin are checked too: a page of another site that points a DNS name at 127.0.0.1 (DNS
// rebinding) has the wrong Host, and a request another site's page makes has its Origin.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const COOKIE = 'bastion_panel';
/** A login URL works once, within this time. */
export const LOGIN_TOKEN_MS = 60_000;

export type Verdict = { ok: true } | { ok: false; why: string };

export class PanelAuth {
  readonly secret = randomBytes(32).toString('base64url');
  private readonly tokens = new Map<string, number>();

  constructor(
    private port: number,
    private readonly now: () => number = Date.now,
  ) {}

  setPort(port: number): void {
    this.port = port;
  }

  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** A URL that logs the browser in once. */
  loginUrl(): string {
    const token = randomBytes(24).toString('base64url');
    this.tokens.set(token, this.now() + LOGIN_TOKEN_MS);
    return `${this.origin}/login?t=${token}`;
  }

  /** Takes a login token: true once per token, within its time. */
  redeem(token: string): boolean {
    const until = this.tokens.get(token);
    this.tokens.delete(token);
    for (const [t, u] of this.tokens) if (u < this.now()) this.tokens.delete(t);
    return until !== undefined && until >= this.now();
  }

  setCookie(): string {
    return `${COOKIE}=${this.secret}; HttpOnly; SameSite=Strict; Path=/`;
  }

  /** Host and Origin: this server's own, and no other. */
  checkOrigin(req: IncomingMessage): Verdict {
    const host = req.headers.host;
    if (host !== `127.0.0.1:${this.port}` && host !== `localhost:${this.port}`) return { ok: false, why: 'wrong Host' };
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${host}`) return { ok: false, why: 'foreign Origin' };
    // A request that changes something must say where it comes from (browsers always do).
    if (req.method !== 'GET' && req.method !== 'HEAD' && origin === undefined) return { ok: false, why: 'no Origin' };
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') return { ok: false, why: `Sec-Fetch-Site ${String(site)}` };
    return { ok: true };
  }

  /** The session cookie, compared in constant time. */
  checkCookie(req: IncomingMessage): Verdict {
    const header = req.headers.cookie ?? '';
    for (const part of header.split(';')) {
      const [name, ...rest] = part.trim().split('=');
      if (name !== COOKIE) continue;
      const given = Buffer.from(rest.join('='));
      const want = Buffer.from(this.secret);
      if (given.length === want.length && timingSafeEqual(given, want)) return { ok: true };
    }
    return { ok: false, why: 'no session' };
  }
}

/** Sent with every response: nothing loads from elsewhere, nothing runs inline, no framing. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Cache-Control': 'no-store',
};
