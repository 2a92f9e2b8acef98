// Learning-mode popups on several trays, and the control panel, which only listens. The trays'
// answers are the fixture lines byte for byte, through the real dispatcher and rules store.
import { ExtendedRulesStore } from '../../service/rules/extendedRulesStore.js';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { ConfigStore, type BastionConfig } from '../../service/config.js';
import type { Connection } from '../../service/connection.js';
import { Decider } from '../../service/decider.js';
import { isControlPanel, isControlPanelArgv } from '../../service/gui/clientRole.js';
import { dispatchGuiMessage, type GuiContext } from '../../service/gui/guiMessages.js';
import { Policy } from '../../service/policy.js';
import { AnswerRecorder } from '../../service/prompts/answerRecorder.js';
import { GuiPromptBroker } from '../../service/prompts/promptBroker.js';
import { RulesStore } from '../../service/rules/rulesStore.js';
import { SessionDecisions } from '../../service/sessions.js';
import { Stats } from '../../service/stats.js';
import { Whitelist } from '../../service/whitelist.js';
import { tempDir } from '../support/bastion.js';
import { GuiDaemon } from '../support/guiDaemon.js';
import { TrayClient } from '../support/guiTray.js';
import { config, connection, FakeClock, FixedAuthorizer, RecordingClient, silentLog } from '../support/promptFakes.js';

const FIXTURE = readFileSync(new URL('../fixtures/tray-messages.jsonl', import.meta.url), 'utf8')
  .split('\n')
  .filter((l) => l !== '');
const fixture = (start: string): string => {
  const line = FIXTURE.find((l) => l.startsWith(start));
  assert.ok(line, `no fixture line starting ${start}`);
  return line;
};
const ADD_CURL = fixture('{"type": "add_rule", "app_name": "curl"');
const ADD_FIREFOX = fixture('{"type": "add_rule", "app_name": "firefox');
const ADD_UNKNOWN = fixture('{"type": "add_rule", "app_name": "unknown"');

async function setup(cfg: BastionConfig, clients: RecordingClient[], listensOnly?: (c: RecordingClient) => boolean) {
  const dir = tempDir('bastion-learning-');
  const clock = new FakeClock();
  const sessions = new SessionDecisions(() => clock.now());
  const rules = new RulesStore({ path: `${dir.path}/rules.json`, logger: silentLog });
  await rules.load();
  const authorizer = new FixedAuthorizer({ ok: true });
  const broker = new GuiPromptBroker({
    config: () => cfg,
    clients: () => clients,
    recorder: new AnswerRecorder({ sessions, rules, authorizer, log: silentLog }),
    log: silentLog,
    clock,
    ...(listensOnly && { listensOnly: (c) => listensOnly(c as RecordingClient) }),
  });
  for (const c of clients) broker.clientConnected(c);
  const policy = new Policy({ config: () => cfg, rules: () => rules.rules, sessions, whitelist: new Whitelist() });
  const decider = new Decider({ policy, stats: new Stats(), log: silentLog, sendVerdicts: () => undefined, holdMs: () => 65_000, logDecisions: () => false });
  decider.setPromptBroker(broker);
  decider.onDecision((event, conn) => {
    if (event.reason === 'learning') broker.inform(conn);
  });
  const ctx: GuiContext = {
    log: silentLog,
    rules,
    extended: new ExtendedRulesStore({ dir: `${dir.path}/rules.d`, importedPath: null }),
    config: new ConfigStore({ path: `${dir.path}/config.json` }),
    sessions,
    authorizer,
    status: () => assert.fail('status is not asked for here'),
    prompts: broker,
    feed: { subscribe: () => undefined, unsubscribe: () => undefined },
    inForce: () => cfg,
    onConfigChanged: () => undefined,
  };
  /** What the tray writes: one fixture line, parsed as the service's socket reader does. */
  const trayWrites = (client: RecordingClient, line: string) => dispatchGuiMessage(ctx, client, JSON.parse(line));
  return { broker, decider, clock, trayWrites, dir };
}

function decide(decider: Decider, conn: Connection): void {
  decider.decideBatch([conn.record], 1);
}

describe('learning-mode popups on several trays', () => {
  const learning = config({ mode: 'learning', timeoutSeconds: 30 });

  it('"Always" on one tray (add_rule) closes that popup on every other tray, and on no other popup', async () => {
    const [a, b, c] = [new RecordingClient(), new RecordingClient(), new RecordingClient()];
    const { decider, trayWrites, dir } = await setup(learning, [a, b, c]);
    try {
      decide(decider, connection({ exe: '/usr/bin/curl', port: 443, dst: [192, 0, 2, 1] }));
      decide(decider, connection({ exe: '/usr/bin/wget', port: 443 }));
      const [curlReq, wgetReq] = b.ofType('connection_request');
      assert.equal(curlReq!['learning_mode'], true);
      await trayWrites(a, ADD_CURL);
      assert.deepEqual(b.ofType('cancel_popup'), [{ type: 'cancel_popup', request_id: curlReq!['request_id'] }]);
      assert.deepEqual(c.ofType('cancel_popup'), [{ type: 'cancel_popup', request_id: curlReq!['request_id'] }]);
      assert.deepEqual(a.ofType('cancel_popup'), [], 'the tray that answered was told to close its own popup');
      assert.notEqual(wgetReq!['request_id'], curlReq!['request_id']);
    } finally {
      dir.remove();
    }
  });

  it('an answer for a program without a path (display name with a host suffix) and for an unknown program closes theirs', async () => {
    const [a, b] = [new RecordingClient(), new RecordingClient()];
    const { decider, trayWrites, dir } = await setup(learning, [a, b]);
    try {
      decide(decider, connection({ exe: null, comm: 'firefox', port: 443, dst: [192, 0, 2, 9] }));
      decide(decider, connection({ exe: null, comm: null, port: 8443, dst: [192, 0, 2, 7] }));
      const [firefoxReq, unknownReq] = b.ofType('connection_request');
      await trayWrites(a, ADD_FIREFOX);
      await trayWrites(a, ADD_UNKNOWN);
      assert.deepEqual(
        b.ofType('cancel_popup').map((m) => m['request_id']),
        [firefoxReq!['request_id'], unknownReq!['request_id']],
      );
      assert.deepEqual(a.ofType('error'), []);
    } finally {
      dir.remove();
    }
  });

  it('unanswered, the popup closes everywhere after timeout_seconds', async () => {
    const [a, b] = [new RecordingClient(), new RecordingClient()];
    const { decider, clock, dir } = await setup(learning, [a, b]);
    try {
      decide(decider, connection({ exe: '/usr/bin/curl', port: 443 }));
      const [req] = a.ofType('connection_request');
      clock.advance(29_999);
      assert.deepEqual(a.ofType('cancel_popup'), []);
      clock.advance(1);
      for (const tray of [a, b]) assert.deepEqual(tray.ofType('cancel_popup'), [{ type: 'cancel_popup', request_id: req!['request_id'] }]);
    } finally {
      dir.remove();
    }
  });
});

describe('the control panel only listens', () => {
  let panel: ChildProcess;
  const dir = tempDir('bastion-panel-');
  before(async () => {
    // The control panel as it runs: a Python script named bastion-control-panel.
    const script = `${dir.path}/bastion-control-panel`;
    writeFileSync(script, 'import sys, time\nprint("up", flush=True)\ntime.sleep(120)\n');
    panel = spawn('python3', [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((resolve) => panel.stdout!.once('data', resolve));
  });
  after(() => {
    panel?.kill('SIGKILL');
    dir.remove();
  });

  it("tells the panel from a tray by the peer process's command line", () => {
    assert.equal(isControlPanel({ pid: panel.pid!, uid: 0, gid: 0, startTime: null }), true);
    assert.equal(isControlPanel({ pid: process.pid, uid: 0, gid: 0, startTime: null }), false);
    assert.equal(isControlPanelArgv(['/usr/bin/python3', '/usr/bin/bastion-gui']), false);
    assert.equal(isControlPanelArgv(['/usr/bin/python3', '-m', 'bastion.gui.dashboard.main_window']), true);
    assert.equal(isControlPanelArgv(['python3', '/usr/share/bastion-firewall/bastion_control_panel.py']), true);
  });

  it('with only the panel connected, an unknown connection gets the default at once instead of waiting', async () => {
    const panelClient = new RecordingClient({ pid: panel.pid!, uid: 1000, gid: 1000, startTime: null });
    const { decider, dir: d } = await setup(config({ timeoutSeconds: 60 }), [panelClient], (c) => isControlPanel(c.peer));
    try {
      const r = connection({ exe: '/usr/bin/curl', port: 443 }).record;
      assert.deepEqual(decider.decideBatch([r], 1), [{ packetId: r.packetId, action: 'drop' }]);
      assert.deepEqual(panelClient.ofType('connection_request'), []);
    } finally {
      d.remove();
    }
  });

  it('with a tray beside the panel, the connection is held and only the tray is asked', async () => {
    const panelClient = new RecordingClient({ pid: panel.pid!, uid: 1000, gid: 1000, startTime: null });
    const tray = new RecordingClient({ pid: process.pid, uid: 1000, gid: 1000, startTime: null });
    const { decider, broker, dir: d } = await setup(config({ timeoutSeconds: 60 }), [panelClient, tray], (c) => isControlPanel(c.peer));
    try {
      const r = connection({ exe: '/usr/bin/curl', port: 443 }).record;
      assert.equal(decider.decideBatch([r], 1)[0]!.action, 'hold');
      assert.equal(tray.ofType('connection_request').length, 1);
      assert.deepEqual(panelClient.ofType('connection_request'), []);
      assert.equal(broker.answeringCount, 1);
    } finally {
      d.remove();
    }
  });
});

describe("the real service with the Python control panel's stats connection", () => {
  it('counts the panel as a client, not as one that could answer; a tray is one', async () => {
    const daemon = await GuiDaemon.start();
    const dir = tempDir('bastion-panel-');
    // DashboardWindow.connect_to_daemon: connect, never write, read stats_update lines.
    const script = `${dir.path}/bastion-control-panel`;
    writeFileSync(
      script,
      [
        'import json, socket, sys',
        's = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)',
        's.connect(sys.argv[1])',
        'buf = ""',
        'while True:',
        '    data = s.recv(4096).decode()',
        '    if not data: break',
        '    buf += data',
        '    while "\\n" in buf:',
        '        line, buf = buf.split("\\n", 1)',
        '        print(json.loads(line)["type"], flush=True)',
        '',
      ].join('\n'),
    );
    const panel = spawn('python3', [script, daemon.socket], { stdio: ['ignore', 'pipe', 'inherit'] });
    let tray: TrayClient | null = null;
    try {
      const firstLine = await new Promise<string>((resolve) => panel.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim())));
      assert.equal(firstLine, 'stats_update');
      const status = async () => (await daemon.request({ type: 'status' }, 'status')) as { clients: number; prompts: { answering: number } };
      let s = await status();
      assert.equal(s.prompts.answering, 0);
      assert.equal(s.clients, 2, 'the panel and this status request');
      tray = await TrayClient.connect(daemon.socket);
      await tray.waitFor((m) => m['type'] === 'stats_update', 'stats_update');
      s = await status();
      assert.equal(s.prompts.answering, 1);
    } finally {
      await tray?.close();
      panel.kill('SIGKILL');
      dir.remove();
      await daemon.stop();
    }
  });
});
