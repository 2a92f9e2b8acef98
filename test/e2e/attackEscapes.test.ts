// Issue 18, items 3 and 4: a program's path and comm are its own user's choice. As an
// unprivileged user, two copies of curl connect: one under a directory whose name holds a
// newline, ESC [2K, ESC [1G, an OSC 0 window title, CR, C1 NEL, U+202E, `) -> 10.9.9.9:443 `,
// `" dst="`, `[RULE:ALLOW]` and a backslash, itself named with ESC [2K, CR, NEL and U+202E
// (which its comm holds too); one under a name with bytes that are not UTF-8. The real helper
// and service decide; `bastion prompt` (answering), `bastion monitor` and `bastion log` run as
// child processes, and the service's journal lines go to a datagram socket bound here. None of
// their output may hold a raw control or bidi character, the Logs tab's own patterns must read
// the true fields from the journal lines, and the GUI socket must still carry the real path
// (the rule an "always" answer saves is keyed by it).
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GuiConnection } from '../../cli/guiClient.js';
import { REPO } from '../support/bastion.js';
import { DatagramReceiver, parseNativeEntry } from '../support/datagramReceiver.js';
import { TestFirewall } from '../support/firewall.js';
import { guiParse, journalctlLine } from '../support/guiLogParser.js';
import { LocalUser } from '../support/localUser.js';
import { rawControls } from '../support/rawControl.js';

const TSX = join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs');
const CLI = join(REPO, 'cli', 'bastion.ts');

/** Directory and file names of the two programs, as bytes (the second is not UTF-8). */
const EVIL_DIR = 'A fire\nfox\x1b[2K\x1b[1G\x1b]0;firefox\x07\r\u0085\u202e) -> 10.9.9.9:443 " dst="10.9.9.9:443 [RULE:ALLOW] \\';
const EVIL_NAME = 'ff\x1b[2K\r\u0085\u202e';
const BAD_DIR = Buffer.concat([Buffer.from('B'), Buffer.from([0xff]), Buffer.from('\x1b]0;title\x07')]);
const BAD_NAME = Buffer.concat([Buffer.from('gg'), Buffer.from([0xfe])]);

/** What the terminal shows of them (common/visibleText.ts). */
const EVIL_DIR_SHOWN = 'A fire\\x0afox\\x1b[2K\\x1b[1G\\x1b]0;firefox\\x07\\x0d\\u0085\\u202e) -> 10.9.9.9:443 " dst="10.9.9.9:443 [RULE:ALLOW] \\\\';
const EVIL_NAME_SHOWN = 'ff\\x1b[2K\\x0d\\u0085\\u202e';
const BAD_DIR_SHOWN = 'B\\ufffd\\x1b]0;title\\x07';
const BAD_NAME_SHOWN = 'gg\\ufffd';
/** What a journal line shows: also `"`, `[`, `(`, `)` escaped. */
const EVIL_DIR_LINE =
  'A fire\\x0afox\\x1b\\x5b2K\\x1b\\x5b1G\\x1b]0;firefox\\x07\\x0d\\u0085\\u202e\\x29 -> 10.9.9.9:443 \\x22 dst=\\x2210.9.9.9:443 \\x5bRULE:ALLOW] \\\\';
const EVIL_NAME_LINE = 'ff\\x1b\\x5b2K\\x0d\\u0085\\u202e';

/** A CLI child (stdout and stderr piped, no colours), with everything it wrote. */
class Cli {
  out = '';
  readonly exited: Promise<number | null>;
  private readonly waiters: { text: string; resolve: () => void }[] = [];

  constructor(readonly child: ChildProcess) {
    const collect = (d: string): void => {
      this.out += d;
      for (let i = this.waiters.length - 1; i >= 0; i--) if (this.out.includes(this.waiters[i]!.text)) this.waiters.splice(i, 1)[0]!.resolve();
    };
    child.stdout!.setEncoding('utf8').on('data', collect);
    child.stderr!.setEncoding('utf8').on('data', collect);
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  static start(args: string[]): Cli {
    return new Cli(spawn(process.execPath, ['--import', TSX, CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } }));
  }

  waitFor(text: string, timeoutMs = 20_000): Promise<void> {
    if (this.out.includes(text)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${JSON.stringify(text)} within ${timeoutMs} ms in:\n${JSON.stringify(this.out)}`)), timeoutMs);
      this.waiters.push({ text, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    await this.exited;
  }
}

function bastionLog(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', TSX, CLI, 'log', ...args], { timeout: 30_000, env: { ...process.env, NO_COLOR: '1' } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`bastion log failed: ${stderr}`));
      else resolve(stdout);
    });
  });
}

describe('text a program controls is shown escaped, and the journal keeps its fields', () => {
  let receiver: DatagramReceiver;
  let fw: TestFirewall;
  let user: LocalUser;
  let history: string;
  let evilPath: string;
  let evilShown: string;
  let badShown: string;
  before(async () => {
    receiver = await DatagramReceiver.bind();
    history = join(receiver.dir, 'history.sqlite');
    user = LocalUser.create();
    fw = new TestFirewall({ config: { mode: 'enforcement', timeout_seconds: 60 }, daemonArgs: ['--journal-socket', receiver.path, '--history', history] });
    // The user's own copies of curl (root makes them in the user's directory and hands them over).
    const home = Buffer.from(user.home);
    const slash = Buffer.from('/');
    for (const [dir, name] of [
      [Buffer.from(EVIL_DIR), Buffer.from(EVIL_NAME)],
      [BAD_DIR, BAD_NAME],
    ] as const) {
      const d = Buffer.concat([home, slash, dir]);
      const f = Buffer.concat([d, slash, name]);
      mkdirSync(d);
      copyFileSync('/usr/bin/curl', f);
      chmodSync(f, 0o755);
      chownSync(d, user.uid, user.uid);
      chownSync(f, user.uid, user.uid);
    }
    evilPath = `${user.home}/${EVIL_DIR}/${EVIL_NAME}`;
    evilShown = `${user.home}/${EVIL_DIR_SHOWN}/${EVIL_NAME_SHOWN}`;
    badShown = `${user.home}/${BAD_DIR_SHOWN}/${BAD_NAME_SHOWN}`;
    await fw.start();
  });
  after(async () => {
    await fw?.close();
    await user?.remove();
    receiver?.close();
  });

  /** The program under `glob` (in the user's directory) fetches from the server, as the user. */
  const fetchAs = (glob: string): Promise<string> =>
    user
      .run(fw.net.client, `for f in ${glob}; do exec "$f" -s -o /dev/null -m 20 -w '%{http_code}' http://${fw.net.serverV4}/; done`, 40_000)
      .then((r) => r.stdout);

  it('prompt, monitor, log and the journal: no raw control character, the true fields, the real path on the GUI socket', async () => {
    const gui = await GuiConnection.connect(fw.guiSocket, { client: 'test tray', answersPrompts: true });
    const requests: Record<string, unknown>[] = [];
    gui.onMessage((m) => {
      if (m['type'] === 'connection_request') requests.push(m);
    });
    const monitor = Cli.start(['monitor', '--socket', fw.guiSocket]);
    const prompt = Cli.start(['prompt', '--socket', fw.guiSocket]);
    try {
      await monitor.waitFor('watching decisions');
      await prompt.waitFor('waiting for connection requests');

      // The program with escapes in its path and comm: asked about, allowed always.
      const evil = fetchAs('./A*/ff*');
      await prompt.waitFor(`${EVIL_NAME_SHOWN} wants to connect`);
      await prompt.waitFor(`  path         ${evilShown}\n`);
      prompt.child.stdin!.write('a');
      assert.equal(await evil, '200');
      await prompt.waitFor('→ allowed always');
      await monitor.waitFor(`ALLOW ${EVIL_NAME_SHOWN} ${evilShown} → ${fw.net.serverV4}:80 TCP  [answered ${evilShown}:80]\n`);

      // The program whose path is not UTF-8: never verified, asked about, denied once.
      const bad = fetchAs('./B*/gg*');
      await prompt.waitFor(`${BAD_NAME_SHOWN} wants to connect`);
      await prompt.waitFor(`  path         ${badShown} (other mount namespace: exe does not match path)\n`);
      prompt.child.stdin!.write('O');
      assert.notEqual(await bad, '200');
      await prompt.waitFor('→ denied once');
      await monitor.waitFor(`DENY  ${BAD_NAME_SHOWN} ${badShown} (other mount namespace: exe does not match path) → ${fw.net.serverV4}:80 TCP  [answered]`);

      // The GUI socket carries the real values, and the rule is keyed by the real path.
      const evilRequest = requests.find((r) => String(r['app_path']).includes('fire\nfox'));
      assert.equal(evilRequest?.['app_path'], evilPath);
      assert.equal(evilRequest?.['app_name'], EVIL_NAME);
      let rules: Record<string, unknown> = {};
      for (let i = 0; i < 50 && rules[`${evilPath}:80`] === undefined; i++) {
        rules = JSON.parse(readFileSync(fw.rulesPath, 'utf8')) as Record<string, unknown>;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(rules[`${evilPath}:80`], true);

      // The journal: every line of these two programs, through the Logs tab's patterns.
      const mine = (): Record<string, string>[] =>
        receiver.received.map(parseNativeEntry).filter((f) => f['BASTION_COMM'] === EVIL_NAME_SHOWN || f['BASTION_COMM'] === BAD_NAME_SHOWN);
      for (let i = 0; i < 100 && mine().length < 4; i++) await new Promise((r) => setTimeout(r, 100));
      const entries = mine();
      const messages = entries.map((f) => f['MESSAGE']!);
      const parsed = entries.map((f) => guiParse(journalctlLine(f)));
      // A denied curl's retransmitted SYNs are decided again (the same USER:BLOCK line each time).
      const distinct = [...new Map(parsed.map((p) => [JSON.stringify(p), p])).values()];
      console.log(`# journal lines: ${messages.length}, raw control characters in them: ${messages.reduce((n, m) => n + rawControls(m), 0)}`);
      console.log(`# parsed by the Logs tab: ${JSON.stringify(distinct)}`);
      const evilLine = `${user.home}/${EVIL_DIR_LINE}/${EVIL_NAME_LINE}`;
      const uid = String(user.uid);
      const ip = fw.net.serverV4;
      assert.deepEqual(distinct.slice(0, 2), [
        { type: 'POPUP', app: EVIL_NAME_LINE, path: evilLine, ip, port: '80' },
        { type: 'USER', action: 'ALLOW', app: EVIL_NAME_LINE, ip, port: '80', user: uid },
      ]);
      assert.deepEqual(distinct.slice(2), [
        { type: 'POPUP', app: 'gg\\ufffd', path: 'unknown', ip, port: '80' },
        { type: 'USER', action: 'BLOCK', app: 'gg\\ufffd', ip, port: '80', user: uid },
      ]);
      assert.equal(
        messages.reduce((n, m) => n + rawControls(m), 0),
        0,
      );
      assert.equal(
        entries.flatMap((f) => Object.values(f)).reduce((n, v) => n + rawControls(v), 0),
        0,
        'a raw control in a BASTION_* field',
      );

      // bastion log, as text and as JSON (the history is written every 500 ms).
      let text = '';
      for (let i = 0; i < 40 && !(text.includes(EVIL_NAME_SHOWN) && text.includes(BAD_NAME_SHOWN)); i++) {
        await new Promise((r) => setTimeout(r, 250));
        text = await bastionLog(['--history', history]);
      }
      assert.ok(text.includes(`ALLOW ${EVIL_NAME_SHOWN} ${evilShown} → ${ip}:80 TCP  [answered ${evilShown}:80]\n`), text);
      assert.ok(text.includes(`DENY  ${BAD_NAME_SHOWN} ${badShown} (other mount namespace: exe does not match path) → ${ip}:80 TCP  [answered]`), text);
      const json = await bastionLog(['--history', history, '--json']);
      const rows = json
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.ok(
        rows.some((r) => r['app_path'] === evilPath && r['app_name'] === EVIL_NAME),
        'bastion log --json lost the real path',
      );

      // The service's own log (pino JSON lines): the prompt it opened names the path escaped.
      const opened = fw.daemon!.lines.find((l) => l.msg === 'prompt opened' && String(l['exe']).includes('fire'));
      assert.equal(opened?.['exe'], evilShown);
      const strings = (v: unknown): string[] => (typeof v === 'string' ? [v] : v && typeof v === 'object' ? Object.values(v).flatMap(strings) : []);
      const serviceLog = fw.daemon!.lines.flatMap(strings).join('\n');

      const counts = {
        prompt: rawControls(prompt.out),
        monitor: rawControls(monitor.out),
        log: rawControls(text),
        logJson: rawControls(json),
        serviceLog: rawControls(serviceLog),
      };
      console.log(`# raw control characters printed: ${JSON.stringify(counts)}`);
      assert.deepEqual(counts, { prompt: 0, monitor: 0, log: 0, logJson: 0, serviceLog: 0 });
      prompt.child.stdin!.write('q');
      assert.equal(await prompt.exited, 0);
    } finally {
      gui.close();
      await prompt.stop();
      await monitor.stop();
    }
  });
});
