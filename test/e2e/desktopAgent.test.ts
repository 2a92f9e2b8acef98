// `bastion agent` end to end: the real helper and service in test namespaces, a private session
// bus with a notification server the test runs, and the panel in a real browser (Debian's
// chromium through playwright-core). A curl prompt appears as a notification and in the page;
// "Allow always" from either saves the rule and the connection goes through; the keyboard alone
// answers; rules are listed and deleted; the history chart draws; the panel refuses requests
// without its secret or from another origin or host. Screenshots go to a temporary folder, or
// with BASTION_UPDATE_SCREENSHOTS=1 to docs/screenshots/ (which the docs show).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { askLoginUrl } from '../../cli/agent/agentCommand.js';
import { REPO, startBastion, type BastionProcess } from '../support/bastion.js';
import { TestBrowser } from '../support/browser.js';
import { TestFirewall } from '../support/firewall.js';
import { copyPrograms, fetchFrom } from '../support/guiPrograms.js';
import { TestNotificationServer } from '../support/notificationServer.js';
import { PrivateSessionBus } from '../support/sessionBus.js';

const SCREENSHOTS = process.env['BASTION_UPDATE_SCREENSHOTS'] === '1' ? join(REPO, 'docs', 'screenshots') : mkdtempSync(join(tmpdir(), 'bastion-panel-'));
const ASSETS = join(REPO, 'dist', 'ui');

let fw: TestFirewall;
let exe: Record<string, string>;
let bus: PrivateSessionBus;
let notifications: TestNotificationServer;
let agent: BastionProcess;
let browser: TestBrowser;
let page: Page;
let control: string;
let origin: string;
let openedUrls: string;

function rulesFile(): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(fw.rulesPath, 'utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
}

async function until(what: string, test: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One raw request to the panel, with the headers given (no browser). */
function rawRequest(path: string, headers: Record<string, string>, method = 'GET'): Promise<number> {
  const url = new URL(path, origin);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: url.port, path: url.pathname + url.search, method, headers, setHost: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end(method === 'POST' ? '{"type":"list_rules"}' : undefined);
  });
}

before(async () => {
  execFileSync(process.execPath, [join(REPO, 'scripts', 'build-ui.mjs'), ASSETS]);
  fw = new TestFirewall({ config: { mode: 'enforcement', timeout_seconds: 60 } });
  exe = copyPrograms(fw, ['curl-a', 'curl-b', 'curl-c']);
  // A program whose name is markup: the notification must show it as text.
  const marked = join(fw.dir.path, 'bin', 'x<i>&y');
  copyFileSync('/usr/bin/curl', marked);
  chmodSync(marked, 0o755);
  exe['marked'] = marked;
  await fw.start();

  // The agent's desktop: a desktop entry for curl-a, the test's own bus and runtime directory.
  const share = join(fw.dir.path, 'share');
  mkdirSync(join(share, 'applications'), { recursive: true });
  writeFileSync(
    join(share, 'applications', 'curl-alpha.desktop'),
    `[Desktop Entry]\nType=Application\nName=Curl Alpha\nIcon=curl-alpha\nExec=${exe['curl-a']} %u\n`,
  );
  const icons = join(share, 'icons', 'hicolor', 'scalable', 'apps');
  mkdirSync(icons, { recursive: true });
  copyFileSync(join(REPO, 'ui', 'bastion-firewall.svg'), join(icons, 'curl-alpha.svg'));
  const runtime = join(fw.dir.path, 'runtime');
  mkdirSync(runtime, { mode: 0o700 });
  bus = await PrivateSessionBus.start();
  notifications = await TestNotificationServer.start(bus.address);
  process.env['DBUS_SESSION_BUS_ADDRESS'] = bus.address;
  process.env['XDG_DATA_HOME'] = share;
  process.env['XDG_DATA_DIRS'] = join(fw.dir.path, 'no-system-share');
  process.env['XDG_RUNTIME_DIR'] = runtime;
  control = join(runtime, 'bastion-agent.sock');
  // The "browser" More… opens: a script that writes down the URL it was given.
  openedUrls = join(fw.dir.path, 'opened-urls');
  const opener = join(fw.dir.path, 'open-url');
  writeFileSync(opener, `#!/bin/sh\necho "$1" >> '${openedUrls}'\n`, { mode: 0o755 });
  agent = startBastion(['agent', '--socket', fw.guiSocket, '--history', join(fw.dir.path, 'history.sqlite'), '--assets', ASSETS, '--open-with', opener]);
  await agent.waitFor('agent started', 20_000);
  browser = await TestBrowser.launch();
  page = await browser.context.newPage();
  const login = await askLoginUrl(control);
  origin = new URL(login).origin;
  await page.goto(login);
  await page.waitForSelector('text=No connection is waiting');
});

after(async () => {
  await browser?.close();
  await agent?.stop();
  notifications?.stop();
  await bus?.stop();
  await fw?.close();
  if (!SCREENSHOTS.startsWith(REPO)) rmSync(SCREENSHOTS, { recursive: true, force: true });
});

describe('bastion agent', () => {
  it('shows a prompt as a notification with the desktop entry name and in the page; Allow always from the notification saves the rule', async () => {
    const fetch = fetchFrom(fw, exe['curl-a']!, 30);
    const n = await notifications.waitFor((x) => x.summary.includes('Curl Alpha'));
    assert.equal(n.summary, 'Curl Alpha wants to connect');
    assert.equal(n.icon, 'curl-alpha');
    assert.deepEqual(
      n.actions.map((a) => a[0]),
      ['allow-once', 'allow-always', 'deny', 'more', 'default'],
    );
    assert.ok(n.body.includes(`<b>${fw.net.serverV4}:80</b> TCP`), n.body);
    assert.ok(n.body.includes(exe['curl-a']!), n.body);
    assert.ok(n.body.includes('user: root'), n.body);
    const card = page.locator('article.prompt', { hasText: 'Curl Alpha' });
    await card.waitFor();
    assert.match(await card.innerText(), new RegExp(`${fw.net.serverV4}:80`));
    // The desktop entry's icon, found in the hicolor theme and served by the agent.
    await page.waitForFunction(() => {
      const img = (
        globalThis as unknown as { document: { querySelector(s: string): { complete: boolean; naturalWidth: number } | null } }
      ).document.querySelector('img.program-icon');
      return img !== null && img.complete && img.naturalWidth > 0;
    });
    await page.screenshot({ path: join(SCREENSHOTS, 'panel-prompts.png') });
    notifications.invoke(n.id, 'allow-always');
    assert.equal((await fetch).code, 0, 'curl-a did not get through');
    await until('the rule saved', () => rulesFile()[`${exe['curl-a']}:80`] === true);
    await card.waitFor({ state: 'detached' });
  });

  it('escapes a program name that is markup in the notification body; More… opens the panel; Deny denies', async () => {
    const fetch = fetchFrom(fw, exe['marked']!, 30);
    const n = await notifications.waitFor((x) => x.body.includes('x&#60;i&#62;&#38;y'));
    assert.ok(!n.body.includes('x<i>'), n.body);
    assert.equal(n.summary, 'x&#60;i&#62;&#38;y wants to connect');
    // More… opens the panel (a one-time login URL) and answers nothing.
    notifications.invoke(n.id, 'more');
    await until('the panel opened', () => existsSync(openedUrls) && /^http:\/\/127\.0\.0\.1:[0-9]+\/login\?t=/.test(readFileSync(openedUrls, 'utf8')));
    notifications.invoke(n.id, 'deny');
    assert.equal((await fetch).code, 7, 'the denied program connected');
  });

  it('answers a prompt with the keyboard alone: "a" on the focused prompt allows always; its notification is closed', async () => {
    const fetch = fetchFrom(fw, exe['curl-b']!, 30);
    const n = await notifications.waitFor((x) => x.summary.startsWith('curl-b'));
    const card = page.locator('article.prompt', { hasText: 'curl-b' });
    await card.waitFor();
    await page.locator('article.prompt:focus', { hasText: 'curl-b' }).waitFor();
    await page.keyboard.press('a');
    assert.equal((await fetch).code, 0, 'curl-b did not get through');
    await until('the rule saved', () => rulesFile()[`${exe['curl-b']}:80`] === true);
    await until('the notification closed', () => notifications.closed.includes(n.id));
  });

  it('lists the saved rules, adds a @host rule and deletes a rule', async () => {
    await page.click('#tab-Rules');
    const row = page.locator(`tr[data-key="${exe['curl-a']}:80"]`);
    await row.waitFor();
    await page.fill('input[aria-label=subject]', '@host:*.example.org');
    await page.fill('input[aria-label=port]', '443');
    await page.selectOption('select[aria-label=verdict]', 'deny');
    await page.click('button[type=submit]');
    await page.locator('tr[data-key="@host:*.example.org:443"]').waitFor();
    assert.equal(rulesFile()['@host:*.example.org:443'], false);
    await page.screenshot({ path: join(SCREENSHOTS, 'panel-rules.png') });
    await row.locator('button.danger').click();
    await row.waitFor({ state: 'detached' });
    assert.equal(rulesFile()[`${exe['curl-a']}:80`], undefined);
  });

  it('shows live decisions and draws the history chart of recorded decisions', async () => {
    await page.click('#tab-Live');
    assert.equal((await fetchFrom(fw, exe['curl-b']!, 10)).code, 0);
    await page.locator('table.live tr', { hasText: 'curl-b' }).first().waitFor();
    await page.screenshot({ path: join(SCREENSHOTS, 'panel-live.png') });
    await page.click('#tab-History');
    // The service writes the history every 500 ms: search until curl-b's decisions are in.
    for (let i = 0; ; i++) {
      await page.click('form.search button[type=submit]');
      const legend = await page
        .locator('.u-legend')
        .innerText({ timeout: 2000 })
        .catch(() => '');
      if (legend.includes('curl-b allowed')) break;
      if (i > 20) assert.fail(`no curl-b series in the chart legend: ${legend}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(await page.locator('.chart canvas').count(), 1);
    assert.ok((await page.locator('table.history tr', { hasText: exe['curl-b']! }).count()) > 0);
    await page.screenshot({ path: join(SCREENSHOTS, 'panel-history.png') });
    await page.click('#tab-Status');
    await page.locator('text=switch to').waitFor();
    await page.screenshot({ path: join(SCREENSHOTS, 'panel-status.png') });
  });

  it('refuses requests without the secret, with a foreign Origin or Host, and a login link used twice: 403', async () => {
    const cookies = await browser.context.cookies(origin);
    const session = cookies.find((c) => c.name === 'bastion_panel');
    assert.ok(session, 'no session cookie');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
    const host = new URL(origin).host;
    const cookie = `bastion_panel=${session.value}`;
    assert.equal(await rawRequest('/api/state', { Host: host, Cookie: cookie }), 200);
    assert.equal(await rawRequest('/api/state', { Host: host }), 403, 'no secret');
    assert.equal(await rawRequest('/api/state', { Host: host, Cookie: 'bastion_panel=guess' }), 403, 'a wrong secret');
    assert.equal(await rawRequest('/api/state', { Host: host, Cookie: cookie, Origin: 'http://evil.example' }), 403, 'a foreign Origin');
    assert.equal(await rawRequest('/api/send', { Host: host, Cookie: cookie, Origin: 'http://evil.example', 'Content-Type': 'application/json' }, 'POST'), 403);
    assert.equal(await rawRequest('/api/send', { Host: host, Cookie: cookie, 'Content-Type': 'application/json' }, 'POST'), 403, 'a POST without Origin');
    assert.equal(await rawRequest('/api/state', { Host: `evil.example:${new URL(origin).port}`, Cookie: cookie }), 403, 'DNS rebinding: a foreign Host');
    const login = new URL(await askLoginUrl(control));
    assert.equal(await rawRequest(login.pathname + login.search, { Host: host }), 303);
    assert.equal(await rawRequest(login.pathname + login.search, { Host: host }), 403, 'a login link used twice');
    // The page itself: a strict Content-Security-Policy.
    const res = await page.request.get(`${origin}/`);
    assert.match(res.headers()['content-security-policy'] ?? '', /default-src 'none'; script-src 'self'/);
  });
});

describe('bastion agent without a notification server', () => {
  it('opens the panel for a prompt (once, through --open-with), where it is answered', async () => {
    const dir = join(fw.dir.path, 'quiet');
    mkdirSync(dir, { mode: 0o700 });
    const opened = join(dir, 'opened');
    const opener = join(dir, 'open');
    writeFileSync(opener, `#!/bin/sh\necho "$1" >> '${opened}'\n`, { mode: 0o755 });
    const quiet = startBastion([
      'agent',
      '--socket',
      fw.guiSocket,
      '--no-notifications',
      '--control',
      join(dir, 'agent.sock'),
      '--assets',
      ASSETS,
      '--open-with',
      opener,
    ]);
    const second = await browser.context.newPage();
    try {
      await quiet.waitFor('agent started', 20_000);
      const fetch = fetchFrom(fw, exe['curl-c']!, 30);
      await until('the panel opened', () => existsSync(opened) && readFileSync(opened, 'utf8').includes('/login?t='), 20_000);
      await second.goto(readFileSync(opened, 'utf8').trim().split('\n')[0]!);
      await second.locator('article.prompt:focus', { hasText: 'curl-c' }).waitFor();
      await second.keyboard.press('Shift+O'); // deny once
      assert.equal((await fetch).code, 7, 'curl-c was not denied');
      assert.equal(readFileSync(opened, 'utf8').trim().split('\n').length, 1, 'the panel was opened more than once');
    } finally {
      await second.close();
      await quiet.stop();
    }
  });
});

describe('bastion agent across a service restart', () => {
  it('connects again when the service is back, and its next prompt is answered from the notification', async () => {
    await fw.daemon!.stop();
    await page.locator('.link.down').waitFor();
    await fw.startDaemon();
    await page.locator('.link.ok').waitFor({ timeout: 20_000 });
    const before = notifications.notified.length;
    const fetch = fetchFrom(fw, exe['curl-c']!, 30);
    const n = await notifications.waitFor((x) => x.id > before && x.summary.startsWith('curl-c'));
    notifications.invoke(n.id, 'allow-once');
    assert.equal((await fetch).code, 0, 'curl-c did not get through');
  });
});
