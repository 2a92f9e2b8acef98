// Fuzzing the GUI socket: random bytes, partial lines, 1,000 connections at once and
// clients that never read. Throughout, a well-behaved client is served and no rule is lost.
// CI sends 2,000 fuzz messages; BASTION_FULL=1 sends 20,000.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { GuiDaemon } from '../support/guiDaemon.js';

const MESSAGES = process.env['BASTION_FULL'] ? 20_000 : 2_000;
const RULES = { '/usr/bin/curl:443': true, '/usr/bin/wget:*': false, '@name:python3:*': false };

function rng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n) => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % n;
  };
}

const TEMPLATES = [
  '{"type": "gui_response", "request_id": "x-1", "allow": true, "permanent": true, "all_ports": true, "duration": "always"}',
  '{"type": "add_rule", "app_name": "curl", "app_path": "/usr/bin/curl", "port": 443, "allow": true, "all_ports": false}',
  '{"type": "delete_rule", "key": "/usr/bin/curl:443"}',
  '{"type": "list_rules"}',
  '{"type": "clear_cache", "cache_key": "/usr/bin/curl:443"}',
  '{"type": "status"}',
];

/** A hostile or broken line: mutated templates, random bytes, deep nesting, odd types. */
function fuzzLine(rand: (n: number) => number): Buffer {
  switch (rand(6)) {
    case 0:
      return Buffer.from(Array.from({ length: rand(300) }, () => rand(256)));
    case 1: {
      const t = Buffer.from(TEMPLATES[rand(TEMPLATES.length)]!);
      for (let k = rand(6) + 1; k > 0; k--) t[rand(t.length)] = rand(256);
      return t;
    }
    case 2:
      return Buffer.from(TEMPLATES[rand(TEMPLATES.length)]!.slice(0, rand(60)));
    case 3:
      return Buffer.from('['.repeat(rand(5000)) + ']'.repeat(rand(5000)));
    case 4:
      return Buffer.from(
        JSON.stringify({
          type: ['add_rule', 'delete_rule', 'gui_response', 'set_mode'][rand(4)],
          key: rand(2) ? 5 : null,
          port: 'x',
          allow: 'yes',
          request_id: {},
        }),
      );
    default:
      return Buffer.from(`{"type": "${'A'.repeat(rand(2000))}"}`);
  }
}

describe('GUI socket fuzzing', () => {
  let daemon: GuiDaemon;
  before(async () => {
    // Learning mode: add/delete in the fuzz are authorized (root) but must never corrupt the file.
    daemon = await GuiDaemon.start({ rules: RULES, config: { mode: 'learning' } });
  });
  after(async () => daemon.stop());

  const serves = async (): Promise<void> => {
    const status = await daemon.request({ type: 'status' }, 'status');
    assert.equal(status['type'], 'status');
  };

  // (Giant lines: test/service/guiBadInput.test.ts.) A bound on each test: a hang must fail, not stall CI.
  it(`${MESSAGES.toLocaleString('en')} random and mutated lines, split at random points, never stop it serving others`, { timeout: 120_000 }, async () => {
    const rand = rng(0xf022);
    const clients = Array.from({ length: 20 }, () => net.connect(daemon.socket).on('error', () => undefined));
    await Promise.all(clients.map((c) => new Promise((r) => c.once('connect', r))));
    for (let i = 0; i < MESSAGES; i++) {
      const c = clients[rand(clients.length)]!;
      const line = Buffer.concat([fuzzLine(rand), Buffer.from(rand(10) ? '\n' : '')]);
      // Partial writes: the line arrives in pieces.
      const cut = rand(line.length + 1);
      c.write(line.subarray(0, cut));
      c.write(line.subarray(cut));
      if (i % 500 === 0) await serves();
    }
    await serves();
    for (const c of clients) c.destroy();
    // Whatever the fuzz added or deleted, once its last saves are done the file on disk parses
    // and holds exactly what is served.
    let rules = await daemon.rules();
    for (let i = 0; i < 50 && JSON.stringify(JSON.parse(daemon.rulesFile())) !== JSON.stringify(rules); i++) {
      await new Promise((r) => setTimeout(r, 100));
      rules = await daemon.rules();
    }
    assert.deepEqual(JSON.parse(daemon.rulesFile()), rules);
    assert.equal(rules['/usr/bin/wget:*'], false, 'a rule the fuzz never named was lost');
  });

  it('1,000 connections at once, half of them never reading, do not stop it serving a new client', { timeout: 120_000 }, async () => {
    const opened: net.Socket[] = [];
    try {
      for (let i = 0; i < 1000; i++) {
        const c = net.connect(daemon.socket).on('error', () => undefined);
        if (i % 2 === 0) c.pause(); // never reads: its stats_update and replies pile up
        opened.push(c);
      }
      await Promise.all(opened.map((c) => new Promise((r) => (c.readyState === 'open' ? r(null) : c.once('connect', r).once('error', r)))));
      // The non-readers ask for more than they read.
      for (let i = 0; i < opened.length; i += 2) for (let k = 0; k < 20; k++) opened[i]!.write('{"type": "list_rules"}\n');
      await serves();
      const status = await daemon.request({ type: 'status' }, 'status');
      assert.ok((status['clients'] as number) >= 1);
    } finally {
      for (const c of opened) c.destroy();
    }
    await serves();
    assert.equal(JSON.parse(daemon.rulesFile())['/usr/bin/wget:*'], false, 'a rule was lost');
  });
});
