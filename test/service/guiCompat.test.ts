// The existing Python GUI against the real service over a real Unix socket: the tray's and the
// control panel's lines byte for byte, and a rules.json as the old Rust daemon wrote it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { GuiDaemon } from '../support/guiDaemon.js';
import { controlPanelSend, pyDumps, TrayClient } from '../support/guiTray.js';

const TRAY_LINES = readFileSync(new URL('../fixtures/tray-messages.jsonl', import.meta.url), 'utf8')
  .split('\n')
  .filter((l) => l !== '');
const RUST_RULES = readFileSync(new URL('../fixtures/rules-rust-daemon.json', import.meta.url), 'utf8');

/** The fixture as the store writes it back: sorted, pretty-printed, `:0` as `:*`. */
function normalizedRustRules(extra: Record<string, boolean> = {}): string {
  const parsed = JSON.parse(RUST_RULES) as Record<string, unknown>;
  delete parsed['/usr/bin/wget:0'];
  const all: Record<string, unknown> = { ...parsed, '/usr/bin/wget:*': true, ...extra };
  const sorted: Record<string, unknown> = {};
  for (const k of Object.keys(all).sort()) sorted[k] = all[k];
  return JSON.stringify(sorted, null, 2) + '\n';
}

describe("the tray's own bytes", () => {
  it("pyDumps writes every fixture line exactly as Python's json.dumps did", () => {
    for (const line of TRAY_LINES) assert.equal(pyDumps(JSON.parse(line)), line);
  });
});

describe('the Python tray and control panel against the service', () => {
  let daemon: GuiDaemon;
  before(async () => {
    daemon = await GuiDaemon.start({ rules: { '/usr/bin/curl:443': true, '/usr/bin/curl:*': false } });
  });
  after(async () => {
    await daemon?.stop();
  });

  it('on connect the tray gets stats_update first, with the fields it reads', async () => {
    const tray = await TrayClient.connect(daemon.socket);
    const first = await tray.waitFor(() => true, 'any message');
    assert.deepEqual(first, {
      type: 'stats_update',
      stats: { total_connections: 0, allowed_connections: 0, blocked_connections: 0, learning_mode: false },
    });
    await tray.close();
  });

  it('every fixture line is accepted: answers to unknown prompts are ignored, edits applied, replies typed', async () => {
    const tray = await TrayClient.connect(daemon.socket);
    for (const line of TRAY_LINES) tray.writeRaw(line + '\n');
    const list = await tray.waitFor((m) => m['type'] === 'rules_list', 'rules_list');
    assert.deepEqual(tray.ofType('rule_deleted'), [
      { type: 'rule_deleted', key: '/usr/bin/curl:443', success: true },
      { type: 'rule_deleted', key: '/usr/bin/curl:*', success: true },
      { type: 'rule_deleted', key: 'applications', success: false },
    ]);
    assert.deepEqual(list['rules'], {
      '@dest:192.0.2.7:8443:*': true,
      '@name:firefox:443': true,
      applications: {},
      services: {},
    });
    assert.deepEqual(tray.ofType('error'), []);
    assert.deepEqual(tray.violations, [], 'a message without "type" would disconnect the tray');
    await tray.close();
  });

  it('the control panel writes one delete_rule and closes at once: 60 such deletes in parallel all happen', async () => {
    const keys = Array.from({ length: 60 }, (_, i) => `/opt/app${i}:${1000 + i}`);
    const conn = await TrayClient.connect(daemon.socket);
    for (const key of keys) {
      const [path, port] = key.split(':');
      conn.writeLine({ type: 'add_rule', app_name: 'x', app_path: path, port: Number(port), allow: true, all_ports: false });
    }
    conn.writeLine({ type: 'list_rules' });
    const listed = await conn.waitFor((m) => m['type'] === 'rules_list', 'rules_list');
    for (const key of keys) assert.equal((listed['rules'] as Record<string, unknown>)[key], true);
    await conn.close();

    await Promise.all(keys.map((key) => controlPanelSend(daemon.socket, { type: 'delete_rule', key })));
    // The deletes were buffered before each EOF; wait until the service has acted on all of them.
    let rules: Record<string, unknown> = {};
    // Each delete is an fsync'd rewrite of rules.json, one after another: allow for a slow disk.
    for (let i = 0; i < 300; i++) {
      rules = await daemon.rules();
      if (keys.every((k) => !(k in rules))) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(
      keys.filter((k) => k in rules),
      [],
    );
    const file = JSON.parse(daemon.rulesFile()) as Record<string, unknown>;
    assert.deepEqual(
      keys.filter((k) => k in file),
      [],
    );
    assert.equal(daemon.proc!.count('GUI message handler failed'), 0);
  });
});

describe('rules.json as the old Rust daemon wrote it', () => {
  let daemon: GuiDaemon;
  before(async () => {
    daemon = await GuiDaemon.start({ rules: RUST_RULES });
  });
  after(async () => {
    await daemon?.stop();
  });

  it('list_rules over the socket gives all 10 rules, :0 as :*, and the meta keys', async () => {
    const rules = await daemon.rules();
    assert.equal(JSON.stringify(rules, null, 2) + '\n', normalizedRustRules());
    assert.equal(Object.keys(rules).filter((k) => k !== 'applications' && k !== 'services').length, 10);
  });

  it('round-trips: an add and a delete over the socket leave the file as the old daemon would have it, sorted', async () => {
    const tray = await TrayClient.connect(daemon.socket);
    tray.writeLine({ type: 'add_rule', app_name: 'nc', app_path: '/usr/bin/nc', port: 9000, allow: false, all_ports: false });
    tray.writeLine({ type: 'list_rules' });
    await tray.waitFor((m) => m['type'] === 'rules_list', 'rules_list');
    assert.equal(daemon.rulesFile(), normalizedRustRules({ '/usr/bin/nc:9000': false }));
    tray.writeLine({ type: 'delete_rule', key: '/usr/bin/nc:9000' });
    await tray.waitFor((m) => m['type'] === 'rule_deleted', 'rule_deleted');
    assert.equal(daemon.rulesFile(), normalizedRustRules());
    await tray.close();
  });
});
