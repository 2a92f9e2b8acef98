import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { LOGIN_TOKEN_MS, PanelAuth } from '../../../cli/agent/panelAuth.js';

function request(method: string, headers: Record<string, string>): IncomingMessage {
  return { method, headers } as unknown as IncomingMessage;
}

describe('panel authentication', () => {
  const host = { host: '127.0.0.1:8123' };

  it('accepts its own Host and Origin, and refuses every other', () => {
    const auth = new PanelAuth(8123);
    const cases: [method: string, headers: Record<string, string>, ok: boolean | string][] = [
      ['GET', host, true],
      ['GET', { host: 'localhost:8123', origin: 'http://localhost:8123' }, true],
      ['POST', { ...host, origin: 'http://127.0.0.1:8123' }, true],
      ['GET', { host: 'evil.example:8123' }, 'wrong Host'],
      ['GET', { host: '127.0.0.1:8124' }, 'wrong Host'],
      ['GET', { ...host, origin: 'http://evil.example' }, 'foreign Origin'],
      ['GET', { ...host, origin: 'null' }, 'foreign Origin'],
      ['POST', host, 'no Origin'],
      ['GET', { ...host, 'sec-fetch-site': 'cross-site' }, 'Sec-Fetch-Site cross-site'],
    ];
    for (const [method, headers, ok] of cases) {
      const v = auth.checkOrigin(request(method, headers));
      assert.deepEqual(v, ok === true ? { ok: true } : { ok: false, why: ok }, `${method} ${JSON.stringify(headers)}`);
    }
  });

  it('a login token works once, and not after its time', () => {
    let now = 1000;
    const auth = new PanelAuth(8123, () => now);
    const token = (url: string): string => new URL(url).searchParams.get('t')!;
    const first = token(auth.loginUrl());
    assert.equal(auth.redeem(first), true);
    assert.equal(auth.redeem(first), false);
    const late = token(auth.loginUrl());
    now += LOGIN_TOKEN_MS + 1;
    assert.equal(auth.redeem(late), false);
    assert.equal(auth.redeem('made-up'), false);
  });

  it('wants the session secret in its cookie, among others', () => {
    const auth = new PanelAuth(8123);
    assert.match(auth.setCookie(), /^bastion_panel=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/$/);
    assert.deepEqual(auth.checkCookie(request('GET', { cookie: `a=b; bastion_panel=${auth.secret}` })), { ok: true });
    assert.deepEqual(auth.checkCookie(request('GET', { cookie: `bastion_panel=${auth.secret}x` })), { ok: false, why: 'no session' });
    assert.deepEqual(auth.checkCookie(request('GET', {})), { ok: false, why: 'no session' });
  });
});
